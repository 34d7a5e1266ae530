"""``pyinfer compress MODEL.onnx [--int8 dynamic|static] [--prune S] [--low-rank E] -o OUT.onnx``

Applies the chosen compression methods (``pyinfer.compress``), saves the result
as ONNX (``pyinfer.save``) and prints one table: a row for the fp32 model, a
row per method applied alone and, with several methods, the combined model
that is saved.  Per row: the layers the method changed, the accuracy against
the fp32 model on the same inputs (max abs error, max error relative to the
largest fp32 output, cosine of the flattened outputs), the size of the ONNX
file and of the weights as pyinfer stores them (BSR for pruned layers, int8
for quantized ones), and the latency (pyinfer Interpreter, median over
``--rounds`` runs after a warm-up) with its speed-up over fp32.

Methods combine in the order low-rank, prune, int8, each on the MatMul/Gemm
layers the previous one left (a pruned layer is a SPARSE_GEMM, which int8
does not quantize); int8 also quantizes Conv layers (all of them with
``--int8-min-macs 0``; by default the tiny ones stay float, each with a
printed note saying why).  Inputs: ``--inputs FILE.npz`` (arrays by input name),
else random, symbolic dims set by ``--batch`` (axis 0) and ``--seq`` (others).
Bad input gives one line on stderr and exit status 2.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from ..errors import PyinferError, ShapeError


class CompressUsageError(ShapeError):
    """A command-line value the compress command cannot take."""


def add_parser(subparsers) -> None:
    """Add the ``compress`` subcommand to pyinfer's CLI (pyinfer/cli.py)."""
    p = subparsers.add_parser(
        "compress", help="int8-quantize, prune or low-rank-factor a model; save it as ONNX",
        description="Apply the chosen compression methods to MODEL.onnx, save the result as "
                    "ONNX (-o) and print, per method, the accuracy against the fp32 model, "
                    "the model size and the measured latency of fp32 and compressed.")
    p.add_argument("model", metavar="MODEL.onnx", help="the fp32 ONNX model")
    p.add_argument("-o", "--output", required=True, metavar="OUT.onnx",
                   help="where to write the compressed model")
    p.add_argument("--int8", choices=("dynamic", "static"), default=None,
                   help="int8 MatMul/Gemm/Conv layers: activations quantized at run time "
                        "(dynamic) or with ranges calibrated on --calibration (static)")
    p.add_argument("--int8-min-macs", type=int, default=None, metavar="N",
                   help="--int8: convs with fewer multiply-adds per image stay float (default "
                        "pyinfer.compress.quantize.CONV_MIN_MACS; 0 quantizes every conv)")
    p.add_argument("--calibration", metavar="FILE.npz", default=None,
                   help="--int8 static: inputs (arrays by input name) to calibrate on")
    p.add_argument("--calibration-method", default="minmax",
                   choices=("minmax", "percentile", "entropy"),
                   help="--int8 static: how a range is chosen (default minmax)")
    p.add_argument("--prune", type=float, default=None, metavar="SPARSITY",
                   help="magnitude-prune MatMul/Gemm weights to this sparsity in [0, 1)")
    p.add_argument("--structure", choices=("block", "unstructured"), default="unstructured",
                   help="--prune: single weights or whole blocks (default unstructured)")
    p.add_argument("--low-rank", type=float, default=None, metavar="ENERGY",
                   help="factor weights by truncated SVD keeping this share in (0, 1] of the "
                        "squared singular values")
    p.add_argument("--inputs", metavar="FILE.npz", default=None,
                   help="inputs to compare on (arrays by input name; default random)")
    p.add_argument("--batch", type=int, default=1, metavar="N",
                   help="value of a symbolic dim on axis 0 for random inputs (default 1)")
    p.add_argument("--seq", type=int, default=16, metavar="N",
                   help="value of any other symbolic dim for random inputs (default 16)")
    p.add_argument("--rounds", type=int, default=20, metavar="N",
                   help="timed runs per model (default 20)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random inputs")
    p.add_argument("--opset", type=int, default=None, metavar="N",
                   help="ONNX opset of the saved model (default 17)")
    p.add_argument("--threads", type=int, default=None, metavar="N", help="pyinfer threads")
    p.set_defaults(run_command=run)


# ---- checking the command line -------------------------------------------------------------

def _check(args) -> None:
    if args.int8 is None and args.prune is None and args.low_rank is None:
        raise CompressUsageError("choose at least one method: --int8 dynamic|static, "
                                 "--prune SPARSITY, --low-rank ENERGY")
    if args.prune is not None and not 0.0 <= args.prune < 1.0:
        raise CompressUsageError(f"--prune expected a sparsity in [0, 1), received {args.prune}")
    if args.low_rank is not None and not 0.0 < args.low_rank <= 1.0:
        raise CompressUsageError(f"--low-rank expected an energy in (0, 1], "
                                 f"received {args.low_rank}")
    if args.int8 == "static" and args.calibration is None:
        raise CompressUsageError("--int8 static needs --calibration FILE.npz (inputs to "
                                 "calibrate the activation ranges on)")
    if args.calibration is not None and args.int8 != "static":
        raise CompressUsageError("--calibration is used only with --int8 static")
    if args.int8_min_macs is not None and (args.int8 is None or args.int8_min_macs < 0):
        raise CompressUsageError("--int8-min-macs expected an int >= 0 with --int8, received "
                                 f"{args.int8_min_macs}")
    for key in ("batch", "seq", "rounds", "threads"):
        value = getattr(args, key)
        if value is not None and value < 1:
            raise CompressUsageError(f"--{key} expected an int >= 1, received {value}")
    if os.path.abspath(args.output) == os.path.abspath(args.model):
        raise CompressUsageError("-o must not overwrite MODEL")


# ---- inputs --------------------------------------------------------------------------------

def _npz(path: str, what: str) -> dict:
    try:
        with np.load(path, allow_pickle=False) as f:
            return {k: f[k] for k in f.files}
    except FileNotFoundError:
        raise FileNotFoundError(f"{what} file '{path}' does not exist") from None
    except (OSError, ValueError) as e:
        raise CompressUsageError(f"{what} file '{path}' is not a readable .npz: {e}") from None


def _feeds(graph, given: dict, batch: int, seq: int, seed: int, what: str) -> dict:
    rng = np.random.default_rng(seed)
    unknown = sorted(set(given) - {v.name for v in graph.inputs})
    if unknown:
        raise CompressUsageError(f"{what}: {unknown} are not inputs of the model (inputs: "
                                 f"{[v.name for v in graph.inputs]})")
    feeds = {}
    for v in graph.inputs:
        if v.name in given:
            x = np.asarray(given[v.name])
            if x.ndim != v.ndim or any(isinstance(d, int) and d != s
                                       for d, s in zip(v.shape, x.shape)):
                raise CompressUsageError(f"{what}: input '{v.name}' expected shape {v.shape}, "
                                         f"received {x.shape}")
            feeds[v.name] = x.astype(v.dtype, copy=False)
            continue
        shape = tuple(d if isinstance(d, int) else (batch if i == 0 else seq)
                      for i, d in enumerate(v.shape))
        if v.dtype.kind == "f":
            feeds[v.name] = rng.standard_normal(shape).astype(v.dtype)
        elif v.dtype.kind == "b":
            feeds[v.name] = rng.random(shape) < 0.5
        else:   # ids, indices: small non-negative values every table has
            feeds[v.name] = rng.integers(0, 2, shape).astype(v.dtype)
    return feeds


# ---- measuring -------------------------------------------------------------------------------

@dataclass
class Row:
    method: str
    graph: object
    layers: str = "-"
    outputs: list = field(default_factory=list)
    onnx_bytes: int = 0
    weight_bytes: int = 0
    seconds: float = 0.0
    notes: list = field(default_factory=list)


def weight_bytes(graph) -> int:
    """Bytes of the constants the graph's nodes read, as pyinfer stores them: a
    SPARSE_GEMM weight in its block-sparse (BSR) form, everything else as is."""
    from ..graph.ir import Op
    from .bsr import to_bsr
    seen, total = set(), 0
    for node in graph.nodes:
        for i, v in enumerate(node.inputs):
            if v is None or not v.is_constant or id(v) in seen:
                continue
            seen.add(id(v))
            if node.op is Op.SPARSE_GEMM and i == 1:
                b = to_bsr(v.data, node.attrs.get("block", (1, 16)))
                total += b.data.nbytes + b.indices.nbytes + b.indptr.nbytes
            else:
                total += v.data.nbytes
    return total


def _latency(interp, feeds: dict, rounds: int) -> float:
    interp.run(feeds)   # warm-up: the plan is built (kernels compiled) here
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        interp.run(feeds)
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def _measure(row: Row, feeds: dict, rounds: int, opset: int) -> None:
    import pyinfer
    from ..export import to_onnx
    row.onnx_bytes = len(to_onnx(row.graph, opset=opset).SerializeToString())
    row.weight_bytes = weight_bytes(row.graph)
    interp = pyinfer.Interpreter(row.graph)
    row.outputs = [np.asarray(o) for o in interp.run(feeds)]
    row.seconds = _latency(interp, feeds, rounds)


def accuracy(outputs: list, reference: list) -> tuple:
    """(max abs error, max abs error / max |reference|, cosine) over the float outputs."""
    pairs = [(np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel())
             for a, b in zip(outputs, reference) if np.asarray(b).dtype.kind == "f"]
    if not pairs:
        return float("nan"), float("nan"), float("nan")
    a = np.concatenate([p[0] for p in pairs])
    b = np.concatenate([p[1] for p in pairs])
    err = float(np.max(np.abs(a - b))) if a.size else 0.0
    scale = float(np.max(np.abs(b))) if b.size else 0.0
    rel = err / scale if scale > 0 else (0.0 if err == 0 else float("inf"))
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    cos = float(np.dot(a, b) / (na * nb)) if na > 0 and nb > 0 else (1.0 if na == nb else 0.0)
    return err, rel, cos


# ---- the methods -----------------------------------------------------------------------------

def _count(graph, op_names) -> int:
    return sum(1 for n in graph.nodes if n.op.name in op_names)


def _low_rank(graph, energy):
    from .low_rank import low_rank
    g, report = low_rank(graph, energy=energy, measure=False)
    done = sum(1 for layer in report.layers if layer.factored)
    return g, f"{done}/{len(report.layers)}"


def _prune(graph, sparsity, structure):
    from .prune import linear_layers, prune
    total = len(linear_layers(graph))
    g = prune(graph, sparsity, structure=structure)
    return g, f"{_count(g, {'SPARSE_GEMM'}) - _count(graph, {'SPARSE_GEMM'})}/{total}"


def _int8(graph, mode, calibration, method, notes, min_macs=None):
    from .prune import linear_layers
    from .quantize import quantize_dynamic
    total = len(linear_layers(graph)) + _count(graph, {"CONV"})
    if mode == "dynamic":
        g = quantize_dynamic(graph, min_macs=min_macs)
    else:
        g = _quantize_static(graph, calibration, method, notes, min_macs)
    notes.extend(f"int8: {', '.join(names)}: {why[len('quantize: '):]}" for names, why in g.notes
                 if why.startswith("quantize: kept in float") and (names, why) not in graph.notes)
    done = _count(g, {"QGEMM", "QCONV"}) - _count(graph, {"QGEMM", "QCONV"})
    return g, f"{done}/{total}"


def _quantize_static(graph, calibration, method, notes, min_macs=None):
    from .quantize import quantize_static
    symbolic = any(isinstance(d, str) for v in graph.inputs for d in v.shape)
    try:
        return quantize_static(graph, [calibration], method=method, min_macs=min_macs)
    except (TypeError, ValueError):
        if not symbolic:
            raise
    # quantize_static evaluates the graph with NumPy, which needs concrete shapes: calibrate
    # (and save) the graph specialised to the calibration batch's shapes.
    from ..plan.plan import specialize
    shapes = [np.shape(calibration[v.name]) for v in graph.inputs]
    notes.append(f"int8 static: shapes fixed to the calibration batch's {shapes} "
                 f"(quantize_static could not calibrate the symbolic graph)")
    return quantize_static(specialize(graph, shapes), [calibration], method=method,
                           min_macs=min_macs)


def _apply(name: str, graph, args, calibration, notes):
    if name == "low-rank":
        return _low_rank(graph, args.low_rank)
    if name == "prune":
        return _prune(graph, args.prune, args.structure)
    return _int8(graph, args.int8, calibration, args.calibration_method, notes,
                 args.int8_min_macs)


def _label(name: str, args) -> str:
    if name == "low-rank":
        return f"low-rank energy {args.low_rank:g}"
    if name == "prune":
        return f"prune {args.prune:g} {args.structure}"
    return f"int8 {args.int8}"


# ---- the table -------------------------------------------------------------------------------

def _size(n: int) -> str:
    return f"{n / 1e6:.2f} MB" if n >= 1e6 else f"{n / 1e3:.1f} kB"


def format_table(rows: list, base: Row) -> str:
    head = ("method", "layers", "max abs err", "max rel err", "cosine", "ONNX size",
            "weights", "latency", "speed-up")
    lines = []
    for r in rows:
        if r is base:
            err = rel = "-"
            cos = "1"
        else:
            e, q, c = accuracy(r.outputs, base.outputs)
            err, rel, cos = f"{e:.3g}", f"{q:.3g}", f"{c:.6f}"
        lines.append((r.method, r.layers, err, rel, cos, _size(r.onnx_bytes),
                      _size(r.weight_bytes), f"{r.seconds * 1e3:.3f} ms",
                      f"{base.seconds / r.seconds:.2f}x" if r.seconds > 0 else "-"))
    widths = [max(len(str(x)) for x in col) for col in zip(head, *lines)]
    fmt = "  ".join(f"{{:<{w}}}" if i == 0 else f"{{:>{w}}}" for i, w in enumerate(widths))
    out = [fmt.format(*head), fmt.format(*("-" * w for w in widths))]
    out += [fmt.format(*line) for line in lines]
    return "\n".join(out)


def compress(args) -> int:
    import pyinfer
    from ..export import DEFAULT_OPSET, save
    _check(args)
    if args.threads:
        pyinfer.set_num_threads(args.threads)
    opset = DEFAULT_OPSET if args.opset is None else args.opset
    graph = pyinfer.load(args.model)
    given = _npz(args.inputs, "--inputs") if args.inputs else {}
    feeds = _feeds(graph, given, args.batch, args.seq, args.seed, "--inputs")
    calibration = None
    if args.int8 == "static":
        calibration = _feeds(graph, _npz(args.calibration, "--calibration"), args.batch,
                             args.seq, args.seed + 1, "--calibration")
    methods = [m for m, on in (("low-rank", args.low_rank is not None),
                               ("prune", args.prune is not None),
                               ("int8", args.int8 is not None)) if on]
    notes: list = []
    base = Row("fp32", graph)
    rows = [base]
    for m in methods:
        g, layers = _apply(m, graph, args, calibration, notes)
        rows.append(Row(_label(m, args), g, layers))
    saved = rows[-1]
    if len(methods) > 1:
        g, counts = graph, []
        for m in methods:
            g, layers = _apply(m, g, args, calibration, notes)
            counts.append(layers)
        saved = Row("combined: " + " + ".join(_label(m, args) for m in methods), g,
                    "+".join(counts))
        rows.append(saved)
    for r in rows:
        _measure(r, feeds, args.rounds, opset)
    save(saved.graph, args.output, opset=opset)
    shapes = ", ".join(f"{k} {tuple(v.shape)}" for k, v in feeds.items())
    source = f"'{args.inputs}'" if args.inputs else f"random (seed {args.seed})"
    print(f"pyinfer compress {args.model} -> {args.output} ({saved.method}, ONNX opset {opset})")
    print(f"inputs: {source}: {shapes}; threads {pyinfer.get_num_threads()}; latency: pyinfer "
          f"Interpreter, median of {args.rounds} runs after a warm-up")
    print()
    print(format_table(rows, base))
    print()
    print("layers: MatMul/Gemm (and for int8 Conv) layers the method changed, of those it found "
          "(combined: per method, in order low-rank, prune, int8); rel err: "
          "max abs error / max |fp32 output|; weights: constants as pyinfer stores them "
          "(pruned layers block-sparse, int8 layers 1 byte a weight); speed-up: fp32 latency / "
          "this row's.")
    for n in dict.fromkeys(notes):
        print(f"note: {n}")
    return 0


def run(args) -> int:
    """The ``compress`` command: 0 on success, 2 (one line on stderr) on bad input."""
    try:
        return compress(args)
    except (PyinferError, FileNotFoundError, IsADirectoryError, PermissionError) as exc:
        kind = "" if isinstance(exc, (CompressUsageError, FileNotFoundError)) \
            else f"{type(exc).__name__}: "
        msg = " ".join(str(exc).split())
        print(f"pyinfer compress: {kind}{msg}", file=sys.stderr)
        return 2


def main(argv: Optional[list] = None) -> int:
    parser = argparse.ArgumentParser(prog="pyinfer")
    add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["compress", *(sys.argv[1:] if argv is None else argv)])
    return run(args)


if __name__ == "__main__":
    sys.exit(main())


__all__ = ["add_parser", "run", "compress", "accuracy", "weight_bytes", "format_table"]
