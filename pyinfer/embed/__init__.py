"""Run pyinfer from any C host: ``libpyinfer_embed.so`` and ``pyinfer_embed.h``.

``build.library_path()`` builds the library for the running environment (once)
and returns its path; ``host`` is what its entry points do inside the embedded
interpreter.  Most users reach both through ``python -m pyinfer config --embed``.
"""
from .build import LIBRARY_NAME, library_dir, library_path

__all__ = ["LIBRARY_NAME", "library_dir", "library_path"]
