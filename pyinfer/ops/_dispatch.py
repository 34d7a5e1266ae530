"""Select a kernel, provide ``out``, run.  The one path every eager op takes."""
from __future__ import annotations

import numpy as np

from .. import registry
from ._args import check_backend, check_out, needs_temporary


def run(op: str, backend, args: tuple, attrs: dict, out, shape: tuple, dtype,
        *, alias_ok: bool, out_dtype_name=None):
    """Run ``op`` on validated ``args`` into ``out`` (allocated when None).

    ``alias_ok``: the kernel may write into an input that is exactly ``out``
    (streaming ops); otherwise any overlap goes through a temporary.
    """
    check_backend(backend, op)
    out = check_out(out, shape, np.dtype(dtype), op, out_dtype_name)
    if out is None:
        out = np.empty(shape, dtype=dtype)
        if out.size == 0:
            return out
        target = out
    else:
        if out.size == 0:
            return out
        target = out
        if needs_temporary(out, args, alias_ok):
            target = np.empty(shape, dtype=dtype)
    kernel = registry.select(op, backend, *args, out=target, **attrs)
    kernel.fn(*args, out=target, **attrs)
    if target is not out:
        np.copyto(out, target)
    return out
