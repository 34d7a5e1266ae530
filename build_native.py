"""cffi builder for pyinfer._native: the C kernels of csrc/ behind csrc/pyinfer.h.

The public header is handed to ``cdef`` unchanged, so the Python binding can never
drift from what C hosts see.  Run directly (``python build_native.py``) to build
the extension in place for development.
"""
import glob
import os
import sys
import warnings

from cffi import FFI

HERE = os.path.dirname(os.path.abspath(__file__))
CSRC = os.path.join(HERE, "csrc")


def _sources():
    return sorted(glob.glob(os.path.join("csrc", "*.c"), root_dir=HERE))


def _compile_args():
    if sys.platform == "win32":
        return ["/O2", "/openmp"]
    # -fno-math-errno lets GCC inline sqrt; no -ffast-math: NaN/Inf must survive.
    args = ["-O3", "-fopenmp", "-std=c11", "-fno-math-errno", "-fvisibility=hidden",
            "-Wall", "-Wextra", "-Wno-unused-parameter"]
    if os.environ.get("PYINFER_DEBUG_BUILD"):
        args += ["-O1", "-g", "-fsanitize=address,undefined", "-fno-omit-frame-pointer",
                 "-DPI_DEBUG=1"]
    return args


def _link_args():
    if sys.platform == "win32":
        return []
    args = ["-fopenmp"]
    if os.environ.get("PYINFER_DEBUG_BUILD"):
        args += ["-fsanitize=address,undefined"]
    return args


ffibuilder = FFI()
with open(os.path.join(CSRC, "pyinfer.h")) as f:
    with warnings.catch_warnings():
        # The header starts with '#pragma once', which cdef ignores by design.
        warnings.simplefilter("ignore", UserWarning)
        ffibuilder.cdef(f.read())

ffibuilder.set_source(
    "pyinfer._native",
    '#include "pyinfer.h"\n',
    sources=_sources(),
    include_dirs=[CSRC],
    extra_compile_args=_compile_args(),
    extra_link_args=_link_args(),
)

if __name__ == "__main__":
    # Development build: compile the extension beside the sources (pyinfer/_native*.so).
    import subprocess
    raise SystemExit(subprocess.call(
        [sys.executable, "setup.py", "-q", "build_ext", "--inplace", "-j", "2"], cwd=HERE))
