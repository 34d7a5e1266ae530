"""ONNX backend node test cases (shipped with the ``onnx`` package) for every
operator pyinfer imports, run through ``pyinfer.onnx_backend``.

Each case must pass unless ``pyinfer.importer.expected.EXPECTED`` lists it with
its outcome and reason; a listed case must still end that way (so the table
never hides a regression nor goes stale).  docs/onnx-support.md must be what
``python -m pyinfer.importer.support`` generates from this same run.
"""
import functools

import pytest

pytest.importorskip("onnx", reason="the conformance cases ship with the onnx package (test extra)")

from pyinfer.importer import support  # noqa: E402
from pyinfer.importer.expected import EXPECTED  # noqa: E402


@functools.lru_cache(maxsize=None)
def _cases():
    return tuple(support.collect())


@functools.lru_cache(maxsize=None)
def _outcome(name):
    # One case at a time, so that pytest-xdist workers share the work.
    return support.run_case(next(c for c in _cases() if c.name == name))


def _outcomes():
    return {c.name: _outcome(c.name) for c in _cases()}


def _names():
    return [c.name for c in _cases()]


def test_cases_were_found():
    ops = set(support.supported_op_types())
    covered = {c.op_type for c in _cases()}
    assert len(_cases()) > 400
    # Every supported operator has official cases (Dropout's are at old opsets: still cases).
    assert ops - covered == set(), f"no node test cases for {sorted(ops - covered)}"


@pytest.mark.parametrize("name", _names())
def test_node_case(name):
    outcome = _outcome(name)
    if name in EXPECTED:
        status, reason = EXPECTED[name]
        assert outcome.status == status, (
            f"{name}: expected '{status}' ({reason}), got '{outcome.status}' "
            f"({outcome.detail or 'passes now: remove it from EXPECTED'})")
    else:
        assert outcome.status == "pass", f"{name}: {outcome.status}: {outcome.detail}"


def test_expected_table_names_real_cases():
    stale = sorted(set(EXPECTED) - set(_names()))
    assert not stale, f"EXPECTED lists cases that do not exist: {stale[:10]}"


def test_support_doc_is_generated_from_this_run():
    doc = support.render(list(_cases()), _outcomes())
    with open(support.DOC_PATH) as f:
        current = f.read()
    assert current == doc, ("docs/onnx-support.md is out of date: "
                            "run python -m pyinfer.importer.support")
    passing, total = support.summary_numbers(doc)
    assert passing == sum(o.status == "pass" for o in _outcomes().values())
    assert total == len(_cases())
