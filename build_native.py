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

# The same kernels as a plain C shared library with no Python inside, for C hosts
# (pyinfer.get_library_dir(), examples/c/).  It links the very object files compiled
# for pyinfer._native, so a kernel called from C is the same machine code as from Python.
KERNELS_LIBRARY = os.path.join("pyinfer", "lib", "libpyinfer_kernels.so")


def link_kernels_library(cmd) -> None:
    """Link KERNELS_LIBRARY under ``cmd.build_lib`` (and beside the sources when
    building in place) from the csrc/ objects of ``cmd`` (a finished build_ext)."""
    if sys.platform == "win32":
        return
    from setuptools.modified import newer, newer_group
    ext = next(e for e in cmd.extensions if e.name == "pyinfer._native")
    sources = _sources()
    objects = cmd.compiler.object_filenames(sources, output_dir=cmd.build_temp)
    stale = [s for s, o in zip(sources, objects) if cmd.force or newer(s, o)]
    if stale:  # e.g. _native was up to date but build/ was removed
        cmd.compiler.compile(stale, output_dir=cmd.build_temp, include_dirs=ext.include_dirs,
                             extra_postargs=ext.extra_compile_args)
    target = os.path.join(cmd.build_lib, KERNELS_LIBRARY)
    if cmd.force or newer_group(objects, target):
        cmd.mkpath(os.path.dirname(target))
        cmd.compiler.link_shared_object(  # libm: a Python extension gets it from python itself
            objects, target, libraries=["m"],
            extra_postargs=_link_args() + ["-Wl,-soname,libpyinfer_kernels.so"])
    if cmd.inplace or getattr(cmd, "editable_mode", False):
        cmd.mkpath(os.path.join(HERE, "pyinfer", "lib"))
        cmd.copy_file(target, os.path.join(HERE, KERNELS_LIBRARY))


if __name__ == "__main__":
    # Development build: compile the extension beside the sources (pyinfer/_native*.so).
    import subprocess
    raise SystemExit(subprocess.call(
        [sys.executable, "setup.py", "-q", "build_ext", "--inplace", "-j", "2"], cwd=HERE))
