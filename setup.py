"""Build: compile csrc/ through cffi (out-of-line API mode) into pyinfer._native.

All metadata lives in pyproject.toml; the cffi builder is build_native.py.
Every C file is compiled with the same portable flags; ISA-specific functions
carry ``__attribute__((target(...)))`` and are picked at run time
(csrc/pi_dispatch.c), so what is built never depends on ``-march=native``.
"""
import os
import sys

from setuptools import find_packages, setup
from setuptools.command.build_ext import build_ext

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from build_native import link_kernels_library  # noqa: E402


class ParallelBuildExt(build_ext):
    """Compile the C sources on every core (pip's build has no -j switch)."""

    def finalize_options(self):
        super().finalize_options()
        if not self.parallel:
            self.parallel = os.cpu_count() or 1

    def run(self):
        super().run()
        link_kernels_library(self)  # libpyinfer_kernels.so for C hosts


# Every package under pyinfer/, plus kernels/ installed as pyinfer.kernels (found,
# not listed, so a new subpackage can never be left out of a wheel).
PACKAGES = find_packages(include=["pyinfer", "pyinfer.*"]) + [
    "pyinfer.kernels" + p[len("kernels"):] for p in find_packages(include=["kernels", "kernels.*"])]

setup(packages=PACKAGES,
      package_dir={"pyinfer.kernels": "kernels"},
      cffi_modules=["build_native.py:ffibuilder"], cmdclass={"build_ext": ParallelBuildExt})
