"""The C ABI from a real C host: examples/c/ compiled with gcc and run.

* kernel_demo (libpyinfer_kernels.so, no Python) prints GEMM and softmax
  results that must equal pyinfer.ops.<op>(backend="c") bit for bit (same
  kernel, same thread count), and runs clean under valgrind.
* embed_demo (libpyinfer_embed.so) loads tiny.onnx (MatMul + Add + Relu) and
  must print what pyinfer.Interpreter computes, bit for bit, from 1 and from 4
  host threads sharing one model; built with ASan + UBSan (valgrind on an
  embedded CPython + Numba/LLVM takes minutes and reports thousands of errors
  inside CPython and ld.so, so it is impractical here), LeakSanitizer on, with
  suppressions only for Python and its extension modules (tests/c_abi/lsan.supp).
* tests/c_abi/embed_errors.c feeds every bad input a C host can make and each
  must come back as the right status and message, never a crash, never a
  Python traceback on stderr.
"""
from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess

import numpy as np
import pytest

import pyinfer
from pyinfer import config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = os.path.join(ROOT, "examples", "c")
HERE = os.path.join(ROOT, "tests", "c_abi")
GCC = shutil.which("gcc")
VALGRIND = shutil.which("valgrind")

pytestmark = pytest.mark.skipif(GCC is None, reason="gcc is not installed: the C ABI tests "
                                                   "compile C hosts with it")

# The error codes of pyinfer_embed.h.
OK, ERR_ARG, ERR_UNSUPPORTED = 0, 1, 2
ERR_SHAPE, ERR_DTYPE, ERR_MODEL, ERR_HANDLE = 32, 33, 34, 35
SANITIZE = ["-O1", "-g", "-fsanitize=address,undefined", "-fno-omit-frame-pointer",
            "-fno-sanitize-recover=undefined"]


def _compile(src: str, out: str, flags: list[str], extra: list[str] = ()) -> str:
    cmd = [GCC, "-std=c99", "-Wall", "-Wextra", "-Werror", *extra, src, "-o", out, *flags,
           "-pthread"]
    done = subprocess.run(cmd, capture_output=True, text=True)
    assert done.returncode == 0, f"{' '.join(cmd)}\n{done.stderr}"
    return out


def _env(**extra) -> dict:
    env = dict(os.environ)
    env["OMP_NUM_THREADS"] = str(pyinfer.get_num_threads())  # the same as this process
    env.update(extra)
    return env


def _run(cmd: list[str], timeout: int = 120, **env) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=_env(**env))


def _floats(line: str) -> np.ndarray:
    # "%.9g" round-trips float32, so parsing gives back the exact bits
    return np.array([np.float32(float(v)) for v in line.split()], np.float32)


def _assert_bit_equal(got: np.ndarray, want: np.ndarray, what: str) -> None:
    assert got.shape == want.shape, what
    diff = np.flatnonzero(got.view(np.uint32) != want.astype(np.float32).view(np.uint32))
    assert diff.size == 0, f"{what}: {diff.size} elements differ, first at {diff[0]}: " \
                           f"{got.flat[diff[0]]!r} vs {want.flat[diff[0]]!r}"


@pytest.fixture(scope="module")
def build(tmp_path_factory):
    return tmp_path_factory.mktemp("c_abi")


@pytest.fixture(scope="module")
def kernel_demo(build):
    return _compile(os.path.join(EXAMPLES, "kernel_demo.c"), str(build / "kernel_demo"),
                    config.cflags() + config.libs())


@pytest.fixture(scope="module")
def embed_flags():
    try:
        return config.cflags() + config.libs(embed=True)  # builds libpyinfer_embed.so if needed
    except pyinfer.UnsupportedError as exc:  # a Python without libpython cannot be embedded
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def tiny_model(build):
    spec = importlib.util.spec_from_file_location("make_model", os.path.join(EXAMPLES,
                                                                             "make_model.py"))
    make_model = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_model)
    import onnx
    path = str(build / "tiny.onnx")
    onnx.save(make_model.tiny_model(), path)
    return path


# ---- the kernels library --------------------------------------------------------------

def _kernel_inputs(m, n, k):
    """kernel_demo's formulas (a_value, b_value, bias_value)."""
    i, p, j = np.arange(m)[:, None], np.arange(k), np.arange(n)
    a = ((i * 7 + p[None, :] * 3) % 17 - 8).astype(np.float32) / np.float32(16)
    b = ((p[:, None] * 5 + j[None, :] * 11) % 13 - 6).astype(np.float32) / np.float32(8)
    bias = (j % 5 - 2).astype(np.float32) / np.float32(4)
    return a, b, bias


def _parse_blocks(stdout: str) -> dict:
    """{("gemm", m, n, k) or ("softmax", r, c): rows as a float32 matrix}."""
    blocks, key, rows = {}, None, []
    for line in stdout.splitlines():
        head = line.split()
        if head and head[0] in ("gemm", "softmax"):
            if key:
                blocks[key] = np.stack(rows)
            key, rows = (head[0], *map(int, head[1:])), []
        elif key and head:
            rows.append(_floats(line))
    if key:
        blocks[key] = np.stack(rows)
    return blocks


@pytest.mark.parametrize("m,n,k", [(1, 1, 1), (3, 5, 4), (17, 13, 9), (67, 45, 33),
                                   (6, 16, 256), (130, 7, 61)])
def test_kernel_demo_gemm_is_bit_equal_to_python(kernel_demo, m, n, k):
    done = _run([kernel_demo, "gemm", str(m), str(n), str(k)])
    assert done.returncode == 0, done.stderr
    got = _parse_blocks(done.stdout)[("gemm", m, n, k)]
    a, b, bias = _kernel_inputs(m, n, k)
    out = np.full((m, n), np.nan, np.float32)  # poisoned: an unwritten element fails
    want = pyinfer.ops.gemm(a, b, bias, activation="relu", out=out, backend="c")
    _assert_bit_equal(got, want, f"gemm {m}x{n}x{k}")


def test_kernel_demo_gemm_on_two_threads_is_bit_equal_to_python(kernel_demo):
    # the suite runs one thread per xdist worker: cover the parallel split too
    before = pyinfer.get_num_threads()
    pyinfer.set_num_threads(2)
    try:
        done = _run([kernel_demo, "gemm", "131", "67", "300"])
        a, b, bias = _kernel_inputs(131, 67, 300)
        want = pyinfer.ops.gemm(a, b, bias, activation="relu", backend="c")
    finally:
        pyinfer.set_num_threads(before)
    assert done.returncode == 0, done.stderr
    _assert_bit_equal(_parse_blocks(done.stdout)[("gemm", 131, 67, 300)], want, "gemm 2 threads")


def test_kernel_demo_default_run_is_bit_equal_to_python(kernel_demo):
    done = _run([kernel_demo])
    assert done.returncode == 0, done.stderr
    from pyinfer.backends import _native
    assert done.stdout.startswith(f"pyinfer kernels: isa {_native.isa()}")
    blocks = _parse_blocks(done.stdout)
    a, b, bias = _kernel_inputs(3, 5, 4)
    _assert_bit_equal(blocks[("gemm", 3, 5, 4)],
                      pyinfer.ops.gemm(a, b, bias, activation="relu", backend="c"), "gemm")
    x = _kernel_inputs(2, 1, 6)[0] * np.float32(4)
    _assert_bit_equal(blocks[("softmax", 2, 6)], pyinfer.ops.softmax(x, backend="c"), "softmax")


def test_kernels_library_needs_no_python(kernel_demo):
    lib = os.path.join(config.get_library_dir(), config.KERNELS_LIBRARY)
    for path in (lib, kernel_demo):
        needed = subprocess.run(["readelf", "-d", path], capture_output=True, text=True).stdout
        assert "libpyinfer_kernels" in needed or path == lib
        assert "libpython" not in needed, path
    # only the documented pi_ entry points are exported
    symbols = subprocess.run(["nm", "-D", "--defined-only", lib], capture_output=True,
                             text=True).stdout
    exported = {s.split()[-1] for s in symbols.splitlines() if " T " in s}
    assert exported and all(s.startswith("pi_") for s in exported), sorted(exported)[:10]
    # runs with a bare environment: the rpath finds the library, no PYTHON* needed
    done = subprocess.run([kernel_demo, "gemm", "2", "2", "2"], capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr


@pytest.mark.skipif(VALGRIND is None, reason="valgrind is not installed")
def test_kernel_demo_is_clean_under_valgrind(kernel_demo):
    done = _run([VALGRIND, "--error-exitcode=9", "--leak-check=full",
                 "--errors-for-leak-kinds=definite",
                 f"--suppressions={os.path.join(HERE, 'valgrind.supp')}",
                 kernel_demo, "gemm", "37", "29", "70"], timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "ERROR SUMMARY: 0 errors" in done.stderr
    assert ("definitely lost: 0 bytes" in done.stderr
            or "All heap blocks were freed" in done.stderr), done.stderr[-2000:]
    assert "gemm 37 29 70" in done.stdout


def test_headers_parse_and_compile_together(build):
    import warnings

    import cffi
    inc = config.get_include()
    for name in ("pyinfer.h", "pyinfer_embed.h"):
        ffi = cffi.FFI()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # '#pragma once'
            ffi.cdef(open(os.path.join(inc, name)).read())
    src = build / "both.c"
    src.write_text('#include "pyinfer.h"\n#include "pyinfer_embed.h"\n'
                   "int main(void) { return PI_OK + PI_ERR_ARG - 1; }\n")
    done = subprocess.run([GCC, "-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic",
                           f"-I{inc}", "-fsyntax-only", str(src)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_config_command_prints_usable_flags(capsys):
    from pyinfer.cli import main
    assert main(["config", "--cflags", "--libs"]) == 0
    inc, libdir = pyinfer.get_include(), pyinfer.get_library_dir()
    assert capsys.readouterr().out.split() == [f"-I{inc}", f"-L{libdir}", f"-Wl,-rpath,{libdir}",
                                               "-lpyinfer_kernels"]
    assert main(["config", "--embed", "--libs"]) == 0
    embed_dir = os.path.dirname(pyinfer.config.embed_library())
    assert capsys.readouterr().out.split() == [f"-L{embed_dir}", f"-Wl,-rpath,{embed_dir}",
                                               "-lpyinfer_embed"]
    assert os.path.exists(os.path.join(inc, "pyinfer.h"))
    assert os.path.exists(os.path.join(inc, "pyinfer_embed.h"))
    assert os.path.exists(os.path.join(libdir, "libpyinfer_kernels.so"))


# ---- the embedding library ------------------------------------------------------------

def _embed_input(thread: int, shape) -> np.ndarray:
    """embed_demo's input_value formula for host thread ``thread``."""
    i = np.arange(int(np.prod(shape)))
    return (((i * 7 + thread * 5) % 17 - 8).astype(np.float32) / np.float32(16)).reshape(shape)


def _thread_outputs(stdout: str) -> dict:
    """{thread: {output name: float32 array}} from embed_demo's output."""
    found, cur = {}, None
    for line in stdout.splitlines():
        m = re.match(r"thread (\d+) output (\S+)((?: \d+)*)$", line)
        if m:
            dims = tuple(int(d) for d in m.group(3).split())
            cur = (int(m.group(1)), m.group(2), dims, [])
            found.setdefault(cur[0], {})[cur[1]] = cur
        elif cur is not None and line.strip():
            cur[3].append(_floats(line))
    return {t: {name: np.concatenate(rows).reshape(dims) for name, (_, _, dims, rows) in outs.items()}
            for t, outs in found.items()}


def _check_against_python(stdout: str, model_path: str, threads: int) -> None:
    interp = pyinfer.Interpreter(pyinfer.load(model_path))
    outs = _thread_outputs(stdout)
    assert sorted(outs) == list(range(threads))
    for t in range(threads):
        x = _embed_input(t, interp.inputs[0].shape)
        want = interp.run([x])
        for info, w in zip(interp.outputs, want):
            _assert_bit_equal(outs[t][info.name], w, f"thread {t} output {info.name}")


def test_embed_demo_is_bit_equal_to_python(build, embed_flags, tiny_model):
    exe = _compile(os.path.join(EXAMPLES, "embed_demo.c"), str(build / "embed_demo"), embed_flags)
    done = _run([exe, tiny_model])
    assert done.returncode == 0, done.stderr
    assert "input 0: x dtype 1 dims 2 4" in done.stdout
    assert "output 0: y dtype 1 dims 2 3" in done.stdout
    assert "Traceback" not in done.stderr
    _check_against_python(done.stdout, tiny_model, 1)


def test_embed_demo_sizes_outputs_of_a_symbolic_batch_model(build, embed_flags, tiny_model):
    # tiny.onnx with batch dim "N": embed_demo takes N = 1, pi_model_output_dims sizes y
    import onnx
    sym = onnx.load(tiny_model)
    sym.graph.input[0].type.tensor_type.shape.dim[0].dim_param = "N"
    sym.graph.output[0].type.tensor_type.shape.dim[0].dim_param = "N"
    path = str(build / "tiny_batch_n.onnx")
    onnx.save(sym, path)
    exe = _compile(os.path.join(EXAMPLES, "embed_demo.c"), str(build / "embed_demo_sym"),
                   embed_flags)
    done = _run([exe, path])
    assert done.returncode == 0, done.stderr
    assert "input 0: x dtype 1 dims -1 4" in done.stdout
    assert "thread 0 output y 1 3" in done.stdout
    want = pyinfer.Interpreter(pyinfer.load(path)).run([_embed_input(0, (1, 4))])[0]
    _assert_bit_equal(_thread_outputs(done.stdout)[0]["y"], want, "symbolic batch")


def test_embedded_python_that_cannot_import_pyinfer_reports_it(build, embed_flags, tiny_model):
    # PYTHONPATH comes first on the embedded sys.path: shadow pyinfer with a broken one
    fake = build / "broken_site" / "pyinfer"
    fake.mkdir(parents=True, exist_ok=True)
    (fake / "__init__.py").write_text("raise RuntimeError('this pyinfer is broken')\n")
    exe = _compile(os.path.join(EXAMPLES, "embed_demo.c"), str(build / "embed_demo_broken"),
                   embed_flags)
    done = _run([exe, tiny_model], PYTHONPATH=str(fake.parent))
    assert done.returncode == 1
    assert "could not import pyinfer: RuntimeError: this pyinfer is broken" in done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""


def _sanitized_env() -> dict:
    return {"ASAN_OPTIONS": "detect_leaks=1:abort_on_error=0:exitcode=23",
            "LSAN_OPTIONS": f"suppressions={os.path.join(HERE, 'lsan.supp')}:print_suppressions=0",
            "UBSAN_OPTIONS": "print_stacktrace=1"}


def test_embed_demo_four_threads_under_asan(build, embed_flags, tiny_model):
    exe = _compile(os.path.join(EXAMPLES, "embed_demo.c"), str(build / "embed_demo_asan"),
                   embed_flags, SANITIZE)
    done = _run([exe, tiny_model, "4", "25"], **_sanitized_env())
    assert done.returncode == 0, done.stderr[-4000:]
    assert "ERROR: AddressSanitizer" not in done.stderr
    assert "ERROR: LeakSanitizer" not in done.stderr
    assert "runtime error" not in done.stderr
    _check_against_python(done.stdout, tiny_model, 4)


# name -> (status, words the message must contain); counts report -1 as their status
BAD_INPUTS = {
    "load_null_out": (ERR_ARG, ["pi_model_load", "'model' is NULL"]),
    "load_null_path": (ERR_ARG, ["'path' is NULL"]),
    "load_missing": (ERR_MODEL, ["missing.onnx", "No such file"]),
    "load_corrupt": (ERR_MODEL, ["corrupt.onnx", "corrupt"]),
    "load_bad_option": (ERR_ARG, ["unknown option 'colour'"]),
    "load_bad_threads": (ERR_ARG, ["'threads'", ">= 1", "'0'"]),
    "load_bad_syntax": (ERR_ARG, ["key=value", "'threads'"]),
    "load_bad_backend": (ERR_ARG, ["'backend'", "'abacus'"]),
    "load_ok": (OK, []),
    "load_ok2": (OK, []),
    "num_inputs_null": (-1, ["pi_model_num_inputs", "'model' is NULL"]),
    "num_inputs": (1, []),
    "num_outputs": (1, []),
    "input_info_null_model": (ERR_ARG, ["pi_model_input_info", "'model' is NULL"]),
    "input_info_index_high": (ERR_ARG, ["'index'", "0 <= index < 1", "received 1"]),
    "input_info_index_negative": (ERR_ARG, ["'index'", "received -1"]),
    "output_info_index_high": (ERR_ARG, ["pi_model_output_info", "received 7"]),
    "input_info_null_results": (OK, []),
    "input_info": (OK, []),
    "run_null_model": (ERR_ARG, ["pi_model_run", "'model' is NULL"]),
    "run_null_inputs": (ERR_ARG, ["'inputs' is NULL"]),
    "run_null_outputs": (ERR_ARG, ["'outputs' is NULL"]),
    "run_negative_count": (ERR_ARG, ["'n_inputs'", ">= 0"]),
    "run_too_few_inputs": (ERR_ARG, ["'n_inputs' expected 1, received 0"]),
    "run_too_many_inputs": (ERR_ARG, ["'n_inputs' expected 1, received 2"]),
    "run_too_few_outputs": (ERR_ARG, ["'n_outputs' expected 1, received 0"]),
    "run_input_dtype": (ERR_DTYPE, ["inputs[0] ('x')", "PI_DTYPE_FLOAT32", "PI_DTYPE_FLOAT64"]),
    "run_input_dtype_unknown": (ERR_DTYPE, ["inputs[0]", "code 99"]),
    "run_input_rank": (ERR_SHAPE, ["inputs[0]", "rank 2, received 3"]),
    "run_input_rank_huge": (ERR_SHAPE, ["rank 2, received 99"]),
    "run_input_dims": (ERR_SHAPE, ["inputs[0]", "[2, 4]", "[2, 5]"]),
    "run_input_negative_dim": (ERR_SHAPE, ["[2, -4]"]),
    "run_input_null_data": (ERR_ARG, ["inputs[0]", "data is NULL"]),
    "run_input_unaligned": (ERR_ARG, ["inputs[0]", "not aligned"]),
    "run_output_dims": (ERR_SHAPE, ["outputs[0] ('y')", "[2, 3]", "[3, 3]"]),
    "run_output_dtype": (ERR_DTYPE, ["outputs[0]", "PI_DTYPE_INT32"]),
    "run_output_null_data": (ERR_ARG, ["outputs[0]", "data is NULL"]),
    "output_dims_null_rank": (ERR_ARG, ["pi_model_output_dims", "'rank'"]),
    "output_dims_null_inputs": (ERR_ARG, ["pi_model_output_dims", "'inputs' is NULL"]),
    "output_dims_wrong_count": (ERR_ARG, ["'n_inputs' expected 1, received 2"]),
    "output_dims_index_high": (ERR_ARG, ["'index'", "received 1"]),
    "output_dims_input_dims": (ERR_SHAPE, ["inputs[0]", "[3, 4]"]),
    "output_dims": (OK, []),
    "run_fake_handle": (ERR_HANDLE, ["pi_model_run", "not a live model handle"]),
    "run_ok": (OK, []),
    "free_null": (OK, []),
    "free": (OK, []),
    "run_after_free": (ERR_HANDLE, ["pi_model_run", "not a live model handle"]),
    "num_inputs_after_free": (-1, ["pi_model_num_inputs", "not a live model handle"]),
    "input_info_after_free": (ERR_HANDLE, ["pi_model_input_info", "not a live"]),
    "free_twice": (ERR_HANDLE, ["pi_model_free", "already freed"]),
    "main_thread_error": (ERR_ARG, ["pi_model_input_info", "received 5"]),
    "other_thread": (-1, ["pi_model_num_inputs", "not a live model handle"]),
    # still this thread's own message, not the other thread's
    "main_thread_error_again": (ERR_ARG, ["pi_model_input_info", "received 5"]),
    "run_second_model": (OK, []),
    "free_second_model": (OK, []),
}


def test_bad_inputs_give_status_and_message_under_asan(build, embed_flags, tiny_model):
    exe = _compile(os.path.join(HERE, "embed_errors.c"), str(build / "embed_errors"),
                   embed_flags, SANITIZE)
    corrupt = build / "corrupt.onnx"
    corrupt.write_bytes(b"\x08\x07\x12\x04not an onnx model\xff\xfe" * 3)
    missing = build / "missing.onnx"
    done = _run([exe, tiny_model, str(corrupt), str(missing)], **_sanitized_env())
    assert done.returncode == 0, done.stderr[-4000:]
    # nothing on stderr: no traceback, no sanitizer report, no warning
    assert done.stderr.strip() == "", done.stderr[-4000:]

    seen = {}
    for line in done.stdout.splitlines():
        m = re.match(r"case (\S+) status (-?\d+) \| (.*)$", line)
        if m:
            seen[m.group(1)] = (int(m.group(2)), m.group(3))
    assert sorted(seen) == sorted(BAD_INPUTS)
    for name, (status, words) in BAD_INPUTS.items():
        got, message = seen[name]
        assert got == status, f"{name}: status {got}, expected {status} ({message})"
        for w in words:
            assert w in message, f"{name}: {w!r} not in {message!r}"

    # no failed run wrote into the caller's output buffer
    untouched = re.findall(r"untouched (\S+) (\d)", done.stdout)
    assert untouched and all(flag == "1" for _, flag in untouched), untouched
    assert done.stdout.count("handle_after_failed_load 1") == 2
    assert "info x 1 2 2 4" in done.stdout
    assert "output_dims 2 2 3" in done.stdout

    # the good run after all the bad ones still computes the right answer
    values = _floats(re.search(r"^output (.*)$", done.stdout, re.M).group(1))
    interp = pyinfer.Interpreter(pyinfer.load(tiny_model))
    x = (np.arange(8) % 5).astype(np.float32).reshape(2, 4) / np.float32(4)
    _assert_bit_equal(values.reshape(2, 3), interp.run([x])[0], "run_ok output")
