"""Build: compile csrc/ through cffi (out-of-line API mode) into pyinfer._native.

All metadata lives in pyproject.toml; the cffi builder is build_native.py.
Every C file is compiled with the same portable flags; ISA-specific functions
carry ``__attribute__((target(...)))`` and are picked at run time
(csrc/pi_dispatch.c), so what is built never depends on ``-march=native``.
"""
from setuptools import setup

setup(cffi_modules=["build_native.py:ffibuilder"])
