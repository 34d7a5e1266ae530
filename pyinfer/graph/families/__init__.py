"""Op families defined through ``pyinfer.graph.opdefs`` (one module each).

Importing this package registers them all: adding a family is adding a module
here (modules whose names start with '_' are helpers, not families).
"""
import importlib
import pkgutil

# Every module in this package is a family; import order does not matter.
for _info in pkgutil.iter_modules(__path__):
    if not _info.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_info.name}")
