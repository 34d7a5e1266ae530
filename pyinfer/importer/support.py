"""ONNX conformance: run the official ONNX backend *node* test cases for every
operator pyinfer imports, through ``pyinfer.onnx_backend``, and write the
support table ``docs/onnx-support.md`` from the results::

    python -m pyinfer.importer.support            # rewrite docs/onnx-support.md
    python -m pyinfer.importer.support --check    # exit 1 if it is out of date

The cases are the ones shipped inside the ``onnx`` package: the data files
``onnx/backend/test/data/node/<case>/`` where the wheel has them, else the
same cases generated from their definitions in ``onnx.backend.test.case.node``
(newer wheels ship only those).  Only the case modules of supported operators
are imported, so collecting stays cheap.

Every case ends in one of three outcomes: ``pass`` (outputs equal ONNX's
expected ones within the case's own rtol/atol), ``unsupported`` (refused at
load with ``UnsupportedOperatorError`` — a float16 input, an attribute value
pyinfer does not implement, ...) or ``fail`` (anything else).  ``EXPECTED``
lists, with the reason, every case that does not pass; the conformance test
fails when a case's outcome differs from this table in either direction, so
the table can neither hide a regression nor go stale.
"""
from __future__ import annotations

import glob
import importlib
import os
import re
import sys
import warnings
from dataclasses import dataclass
from typing import Optional

import numpy as np

DOC_PATH = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), "docs", "onnx-support.md")


@dataclass
class Case:
    name: str
    op_type: str
    model: object          # onnx.ModelProto
    data_sets: list        # [(inputs, outputs)], lists of ndarrays
    rtol: float = 1e-3
    atol: float = 1e-7


@dataclass
class Outcome:
    status: str            # "pass" | "unsupported" | "fail"
    detail: str = ""


# ---- collecting ----------------------------------------------------------------------------

def _module_key(name: str) -> str:
    return {"rangeop": "range", "batchnormalization": "batchnormalization"}.get(
        name.replace("_", "").lower(), name.replace("_", "").lower())


def supported_op_types() -> list:
    from .convert import registered
    return sorted(registered(""))


def _data_dir() -> Optional[str]:
    import onnx
    d = os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data", "node")
    return d if glob.glob(os.path.join(d, "*", "model.onnx")) else None


def _read_pb(path):
    import onnx
    from onnx import numpy_helper
    t = onnx.TensorProto()
    with open(path, "rb") as f:
        t.ParseFromString(f.read())
    return numpy_helper.to_array(t)


def _op_of(model, name: str, ops: set) -> Optional[str]:
    """The operator a case tests: its single node's op (expanded-function cases
    are named after the op they expand)."""
    types = {n.op_type for n in model.graph.node}
    if len(types) == 1:
        return next(iter(types))
    stem = name[len("test_"):].replace("_", "").lower()
    best = None
    for op in ops:
        if stem.startswith(op.lower()) and (best is None or len(op) > len(best)):
            best = op
    return best


def _array(x):
    """A case's input/output as an ndarray (special element types come as TensorProtos)."""
    from onnx import TensorProto, numpy_helper
    return numpy_helper.to_array(x) if isinstance(x, TensorProto) else np.asarray(x)


def collect(op_types=None) -> list:
    """The node test cases of the given (default: all supported) ONNX op types."""
    ops = set(op_types or supported_op_types())
    d = _data_dir()
    cases = []
    if d is not None:
        import onnx
        for path in sorted(glob.glob(os.path.join(d, "*", "model.onnx"))):
            name = os.path.basename(os.path.dirname(path))
            model = onnx.load(path, load_external_data=False)
            op = _op_of(model, name, ops)
            if op not in ops:
                continue
            sets = []
            for ds in sorted(glob.glob(os.path.join(os.path.dirname(path), "test_data_set_*"))):
                ins = [_read_pb(p) for p in sorted(glob.glob(os.path.join(ds, "input_*.pb")))]
                outs = [_read_pb(p) for p in sorted(glob.glob(os.path.join(ds, "output_*.pb")))]
                sets.append((ins, outs))
            cases.append(Case(name, op, model, sets))
        return cases
    cached = _load_cache(ops)
    if cached is not None:
        return cached
    cases = _generate(ops)
    _save_cache(ops, cases)
    return cases


def _cache_path(ops) -> str:
    import hashlib

    import onnx
    from ..plan.select import _cache_dir
    key = hashlib.sha1(",".join(sorted(ops)).encode()).hexdigest()[:12]
    return os.path.join(_cache_dir(), f"onnx-node-cases-{onnx.__version__}-{key}.pkl")


def _load_cache(ops):
    """Generating the cases runs ONNX's Python pooling references (~10 s); the
    result, per onnx version and operator set, is kept in pyinfer's cache dir."""
    import pickle

    import onnx
    try:
        with open(_cache_path(ops), "rb") as f:
            rows = pickle.load(f)
        return [Case(n, op, onnx.load_from_string(m), sets, rtol, atol)
                for n, op, m, sets, rtol, atol in rows]
    except Exception:
        return None


def _save_cache(ops, cases):
    import pickle
    path = _cache_path(ops)
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "wb") as f:
            pickle.dump([(c.name, c.op_type, c.model.SerializeToString(), c.data_sets, c.rtol,
                          c.atol) for c in cases], f, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only cache dir only costs time


def _generate(ops) -> list:
    from onnx.backend.test.case import node as case_node
    cases = []
    keys = {op.lower(): op for op in ops}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with np.errstate(all="ignore"):
            case_node._TargetOpType = None
            pkg_dir = os.path.dirname(case_node.__file__)
            for fname in sorted(os.listdir(pkg_dir)):
                mod, ext = os.path.splitext(fname)
                if ext != ".py" or mod.startswith("_") or _module_key(mod) not in keys:
                    continue
                importlib.import_module(f"{case_node.__name__}.{mod}")
    for tc in case_node._NodeTestCases:
        op = _op_of(tc.model, tc.name, ops)
        if op not in ops:
            continue
        sets = [([_array(x) for x in ins], [_array(y) for y in outs])
                for ins, outs in tc.data_sets]
        cases.append(Case(tc.name, op, tc.model, sets, tc.rtol, tc.atol))
    return sorted(cases, key=lambda c: c.name)


# ---- running ---------------------------------------------------------------------------------

def run_case(case: Case) -> Outcome:
    from .. import onnx_backend
    from ..errors import UnsupportedOperatorError
    try:
        rep = onnx_backend.prepare(case.model)
    except UnsupportedOperatorError as e:
        return Outcome("unsupported", _short(str(e)))
    except Exception as e:
        return Outcome("fail", f"load: {type(e).__name__}: {_short(str(e))}")
    for ins, expected in case.data_sets:
        try:
            with warnings.catch_warnings(), np.errstate(all="ignore"):
                warnings.simplefilter("ignore")
                got = rep.run(ins)
        except Exception as e:
            return Outcome("fail", f"run: {type(e).__name__}: {_short(str(e))}")
        if len(got) != len(expected):
            return Outcome("fail", f"{len(got)} outputs, expected {len(expected)}")
        for i, (g, e) in enumerate(zip(got, expected)):
            why = _compare(np.asarray(g), np.asarray(e), case.rtol, case.atol)
            if why:
                return Outcome("fail", f"output {i}: {why}")
    return Outcome("pass")


def _compare(got, exp, rtol, atol) -> str:
    if got.shape != exp.shape:
        return f"shape {got.shape}, expected {exp.shape}"
    if exp.dtype != got.dtype:
        return f"dtype {got.dtype}, expected {exp.dtype}"
    if exp.dtype.kind in "fc":
        ok = np.isclose(got, exp, rtol=rtol, atol=atol, equal_nan=True)
    else:
        ok = got == exp
    if not np.all(ok):
        bad = int(np.size(ok) - np.count_nonzero(ok))
        return f"{bad} of {ok.size} elements differ"
    return ""


def _short(text: str, n: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[:n - 3] + "..."


def run_all(cases=None) -> dict:
    """``{case name: Outcome}`` for every collected case."""
    cases = collect() if cases is None else cases
    return {c.name: run_case(c) for c in cases}


# ---- the support table -----------------------------------------------------------------------

def render(cases, outcomes) -> str:
    from .convert import registered
    from .expected import EXPECTED
    ops = registered("")
    per_op: dict = {}
    for c in cases:
        row = per_op.setdefault(c.op_type, {"pass": 0, "unsupported": 0, "fail": 0})
        row[outcomes[c.name].status] += 1
    total = {k: sum(r[k] for r in per_op.values()) for k in ("pass", "unsupported", "fail")}
    n = sum(total.values())
    lines = [
        "# ONNX operator support",
        "",
        "Generated by `python -m pyinfer.importer.support` from the ONNX backend node test",
        "cases shipped with the `onnx` package (the same run as",
        "`tests/test_onnx_conformance.py`); do not edit by hand.",
        "",
        f"**{len(ops)} operators** (domain ai.onnx, opsets 11-21; newer model opsets where the "
        f"operator did not change). Conformance: **{total['pass']} of {n} node test cases "
        f"pass**, {total['unsupported']} are refused at load as unsupported (a named "
        f"`UnsupportedOperatorError`), {total['fail']} fail (each listed below with the reason).",
        "",
        "| operator | opsets | cases | pass | unsupported | fail |",
        "|---|---|---|---|---|---|",
    ]
    for op in sorted(ops):
        r = per_op.get(op, {"pass": 0, "unsupported": 0, "fail": 0})
        rng = ", ".join(f"{a}-{b}" for a, b in ops[op])
        lines.append(f"| {op} | {rng} | {sum(r.values())} | {r['pass']} | {r['unsupported']} "
                     f"| {r['fail']} |")
    lines += ["", "## Cases that do not pass", "",
              "| case | outcome | reason |", "|---|---|---|"]
    for c in cases:
        o = outcomes[c.name]
        if o.status != "pass":
            reason = EXPECTED.get(c.name, ("", "NOT IN THE EXPECTED TABLE: " + o.detail))[1]
            lines.append(f"| {c.name} | {o.status} | {reason.replace('|', '/')} |")
    return "\n".join(lines) + "\n"


def summary_numbers(doc: str) -> Optional[tuple]:
    """(passing, total) as the doc states them (for the README check)."""
    m = re.search(r"\*\*(\d+) of (\d+) node test cases pass\*\*", doc)
    return (int(m.group(1)), int(m.group(2))) if m else None


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    cases = collect()
    outcomes = run_all(cases)
    doc = render(cases, outcomes)
    if "--check" in argv:
        try:
            with open(DOC_PATH) as f:
                current = f.read()
        except OSError:
            current = ""
        if current != doc:
            print(f"{DOC_PATH} is out of date: run python -m pyinfer.importer.support")
            return 1
        return 0
    os.makedirs(os.path.dirname(DOC_PATH), exist_ok=True)
    with open(DOC_PATH, "w") as f:
        f.write(doc)
    p, n = summary_numbers(doc)
    print(f"wrote {DOC_PATH}: {p} of {n} cases pass")
    return 0


if __name__ == "__main__":
    sys.exit(main())
