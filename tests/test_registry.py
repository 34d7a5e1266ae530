"""The registry's choice under backend=None: the highest-ranked kernel that
supports the call, a tie going to the kernel registered first, computed
priorities weighed like fixed ones; and it stops asking lower fixed-priority
backends once one ranks above them."""
import pytest

from pyinfer import registry
from pyinfer.errors import UnsupportedError


@pytest.fixture
def fresh_op(monkeypatch):
    """A private op name whose table the test fills (removed afterwards)."""
    name = "test_registry_op"
    monkeypatch.setitem(registry._KERNELS, name, {})
    monkeypatch.setattr(registry, "_ORDER", {})
    return name


def _add(op, backend, priority, supported=True, asked=None):
    def supports(x, **attrs):
        if asked is not None:
            asked.append(backend)
        return None if supported else f"{backend} refuses"

    registry.register(op, backend, supports=supports, priority=priority)(lambda *a, **k: backend)


def test_highest_fixed_priority_that_supports_wins_and_lower_ones_are_not_asked(fresh_op):
    asked = []
    _add(fresh_op, "numpy", 0, asked=asked)
    _add(fresh_op, "c", 20, supported=False, asked=asked)
    _add(fresh_op, "numba", 10, asked=asked)
    _add(fresh_op, "blas", 25, supported=False, asked=asked)
    assert registry.select(fresh_op, None, 1).backend == "numba"
    assert asked == ["blas", "c", "numba"]  # numpy (0) ranks below numba's 10: never asked


def test_tie_goes_to_the_kernel_registered_first(fresh_op):
    _add(fresh_op, "numba", 10)
    _add(fresh_op, "c", 10)
    assert registry.select(fresh_op, None, 1).backend == "numba"


def test_computed_priority_competes_with_fixed_ones(fresh_op):
    _add(fresh_op, "c", 20)
    _add(fresh_op, "numba", lambda x, **attrs: 30 if x > 5 else 5)
    assert registry.select(fresh_op, None, 9).backend == "numba"
    assert registry.select(fresh_op, None, 1).backend == "c"
    _add(fresh_op, "numpy", lambda x, **attrs: 20)   # ties c's 20; c registered first
    assert registry.select(fresh_op, None, 1).backend == "c"


def test_nothing_supports_the_call_names_every_reason(fresh_op):
    _add(fresh_op, "numpy", 0, supported=False)
    _add(fresh_op, "c", 20, supported=False)
    with pytest.raises(UnsupportedError, match="c: c refuses; numpy: numpy refuses"):
        registry.select(fresh_op, None, 1)


def test_a_kernel_registered_later_is_seen(fresh_op):
    _add(fresh_op, "numpy", 0)
    assert registry.select(fresh_op, None, 1).backend == "numpy"
    _add(fresh_op, "c", 20)
    assert registry.select(fresh_op, None, 1).backend == "c"


def test_a_swapped_table_or_entry_is_seen(fresh_op, monkeypatch):
    import dataclasses
    _add(fresh_op, "numpy", 0)
    _add(fresh_op, "c", 20)
    assert registry.select(fresh_op, None, 1).backend == "c"
    table = registry._KERNELS[fresh_op]
    monkeypatch.setitem(table, "c", dataclasses.replace(table["c"], priority=-1))
    assert registry.select(fresh_op, None, 1).backend == "numpy"
    monkeypatch.setitem(registry._KERNELS, fresh_op, {"numba": dataclasses.replace(
        table["numpy"], backend="numba")})
    assert registry.select(fresh_op, None, 1).backend == "numba"
