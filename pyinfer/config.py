"""Compile a C program against pyinfer: headers, libraries and their flags.

    pyinfer.get_include()       folder holding pyinfer.h (kernels) and pyinfer_embed.h
    pyinfer.get_library_dir()   folder holding libpyinfer_kernels.so
    python -m pyinfer config --cflags --libs            kernels: no Python at run time
    python -m pyinfer config --embed --cflags --libs    embedding: load and run models

The flags are pkg-config style and carry an rpath, so a program built with
them runs without LD_LIBRARY_PATH.  ``--embed`` builds libpyinfer_embed.so
for this environment first if needed, into pyinfer's cache folder (see
pyinfer/embed/build.py for why then and there, not at install).
"""
from __future__ import annotations

import os
import shlex
import sys

PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
KERNELS_LIBRARY = "libpyinfer_kernels.so"


def get_include() -> str:
    """The folder holding ``pyinfer.h`` and ``pyinfer_embed.h``."""
    return os.path.join(PACKAGE_DIR, "include")


def get_library_dir() -> str:
    """The folder holding ``libpyinfer_kernels.so`` (built by ``pip install`` or
    ``python build_native.py``)."""
    return os.path.join(PACKAGE_DIR, "lib")


def kernels_library() -> str:
    """Path of libpyinfer_kernels.so; raises BackendUnavailableError if it was not built."""
    path = os.path.join(get_library_dir(), KERNELS_LIBRARY)
    if not os.path.exists(path):
        from .errors import BackendUnavailableError
        raise BackendUnavailableError(
            f"{KERNELS_LIBRARY} is not built (expected at {path}); reinstall with "
            f"'pip install .' or, in a checkout, run 'python build_native.py'")
    return path


def embed_library(rebuild: bool = False) -> str:
    """Path of libpyinfer_embed.so for this environment, built first if needed."""
    from .embed import library_path
    return library_path(rebuild=rebuild)


def cflags() -> list[str]:
    return [f"-I{get_include()}"]


def libs(embed: bool = False) -> list[str]:
    """Linker flags: -L, an rpath to the same folder, and the library."""
    if embed:
        folder, name = os.path.dirname(embed_library()), "pyinfer_embed"
    else:
        folder, name = os.path.dirname(kernels_library()), "pyinfer_kernels"
    return [f"-L{folder}", f"-Wl,-rpath,{folder}", f"-l{name}"]


# ---- ``python -m pyinfer config`` -----------------------------------------------------

def add_cli(subparsers) -> None:
    """Add the ``config`` subcommand to pyinfer's CLI (pyinfer/cli.py)."""
    p = subparsers.add_parser(
        "config", help="compiler flags for C programs using pyinfer's C libraries",
        description="Print what a C build needs to use libpyinfer_kernels.so (the kernels, "
                    "no Python at run time) or, with --embed, libpyinfer_embed.so (load and "
                    "run models). With no option, print a summary.")
    p.add_argument("--cflags", action="store_true", help="-I flag for pyinfer.h / pyinfer_embed.h")
    p.add_argument("--libs", action="store_true", help="-L, rpath and -l flags")
    p.add_argument("--embed", action="store_true",
                   help="the embedding library (built for this environment on first use)")
    p.add_argument("--rebuild", action="store_true", help="with --embed: rebuild the library")
    p.add_argument("--include-dir", action="store_true", help="print pyinfer.get_include()")
    p.add_argument("--library-dir", action="store_true",
                   help="print the folder of the library (kernels, or embed with --embed)")
    p.set_defaults(run_command=run_cli)


def run_cli(args) -> int:
    from .errors import PyinferError
    try:
        if args.embed and args.rebuild:
            embed_library(rebuild=True)
        if args.include_dir:
            print(get_include())
            return 0
        if args.library_dir:
            print(os.path.dirname(embed_library() if args.embed else kernels_library()))
            return 0
        if args.cflags or args.libs:
            flags = (cflags() if args.cflags else []) + (libs(args.embed) if args.libs else [])
            print(" ".join(shlex.quote(f) for f in flags))
            return 0
        return _summary(args.embed)
    except (PyinferError, OSError) as exc:
        print(f"pyinfer config: {exc}", file=sys.stderr)
        return 1


def _summary(embed: bool) -> int:
    out = print
    out(f"include dir:   {get_include()}")
    kernels = os.path.join(get_library_dir(), KERNELS_LIBRARY)
    out(f"kernels:       {kernels}" + ("" if os.path.exists(kernels) else "  (not built)"))
    if embed:
        out(f"embed:         {embed_library()}")
    else:
        from .embed import LIBRARY_NAME, library_dir
        path = os.path.join(library_dir(), LIBRARY_NAME)
        out(f"embed:         {path}" + ("" if os.path.exists(path) else
                                        "  (built by the first 'config --embed')"))
    out("compile:       cc prog.c $(python -m pyinfer config --cflags --libs)")
    out("               cc prog.c $(python -m pyinfer config --embed --cflags --libs)")
    return 0
