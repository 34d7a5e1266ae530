"""The exceptions pyinfer raises.  Each names the argument (or node) at fault,
what was expected and what was received, so a caller never has to guess."""


class PyinferError(Exception):
    """Base class of every error pyinfer raises on purpose."""


class ShapeError(PyinferError, ValueError):
    """An argument has a shape (or a value such as an axis or eps) that the op cannot take."""


class DTypeError(PyinferError, TypeError):
    """An argument has a dtype the op cannot take."""


class BackendUnavailableError(PyinferError, RuntimeError):
    """A backend was asked for that is not installed or not usable here."""


class UnsupportedError(PyinferError, ValueError):
    """The chosen backend has no kernel for this op with these arguments; the message says why."""


class UnsupportedOperatorError(UnsupportedError):
    """A model uses an operator (op type, domain, opset) or a form of one that pyinfer cannot import."""


class ModelError(PyinferError, ValueError):
    """A model file is corrupt, truncated, inconsistent or refers to data it may not read."""


class MissingDependencyError(PyinferError, ImportError):
    """An optional dependency is missing; the message names the extra that brings it."""


def shape_error(arg: str, expected, received, op: str | None = None) -> ShapeError:
    where = f"{op}: " if op else ""
    return ShapeError(f"{where}argument '{arg}' expected {expected}, received {received}")


def dtype_error(arg: str, expected, received, op: str | None = None) -> DTypeError:
    where = f"{op}: " if op else ""
    return DTypeError(f"{where}argument '{arg}' expected dtype {expected}, received {received}")
