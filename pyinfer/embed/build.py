"""Build libpyinfer_embed.so (cffi's embedding API) for the running environment.

Why here and not at ``pip install``: the embedded interpreter must find this
environment's packages (a venv, the user site, an editable checkout) and its
standard library, and only a process running *in* that environment knows
them; pip builds wheels in an isolated environment whose site directories are
deleted afterwards, and a wheel may be installed into another venv than the
one that built it.  So the library is built on first request
(``python -m pyinfer config --embed``, or ``library_path()``) by the Python
that will run it, recording that Python's home and the folders holding
pyinfer and its dependencies.  Everything that shapes the library goes into a
key; a library whose stamp carries another key is rebuilt, atomically (a
process already using the old file keeps its mapping).

Where: ``<cache>/embed-<key>/`` (``$PYINFER_CACHE_DIR``, else
``$XDG_CACHE_HOME/pyinfer``, else ``~/.cache/pyinfer``), never inside the
installed package: ``pip uninstall`` removes only the files it installed, and
a leftover ``site-packages/pyinfer/lib/`` would then shadow a later (editable)
install as a namespace package.  One folder per key also keeps environments
apart, and read-only installs work alike.

The library's public functions are small C wrappers (``C_SOURCE``): they check
pointers, keep the per-thread error message in C (so ``pi_last_error`` works
even if Python cannot start) and call ``extern "Python"`` functions that
``pyinfer/embed/host.py`` implements.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import site
import sys
import sysconfig
import tempfile

LIBRARY_NAME = "libpyinfer_embed.so"
MODULE_NAME = "_pyinfer_embed"
BUILDER_VERSION = 1  # bump when this file changes what it builds

PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HEADER = os.path.join(PACKAGE_DIR, "include", "pyinfer_embed.h")

# Declarations Python needs beyond the public header: the functions host.py
# implements (each returns status + 1, see C_SOURCE) and the error setter.
INTERNAL_CDEF = """
extern "Python" int pi_py_load(const char *, const char *, pi_model **);
extern "Python" int pi_py_free(pi_model *);
extern "Python" int pi_py_count(const pi_model *, int, int *);
extern "Python" int pi_py_info(const pi_model *, int, int, const char **, int *, int *,
                               long long *);
extern "Python" int pi_py_run(pi_model *, int, const pi_tensor *, int, pi_tensor *);
extern "Python" int pi_py_output_dims(pi_model *, int, const pi_tensor *, int, int *,
                                      long long *);
void pi_embed_set_error(const char *message);
"""

C_SOURCE = r"""
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "pyinfer_embed.h"

#define PI_API __attribute__((visibility("default")))

/* ---- per-thread error message ------------------------------------------- */
static __thread char pi_error[2048];

static void pi_embed_set_error(const char *message)
{
    snprintf(pi_error, sizeof pi_error, "%s", message ? message : "");
}

static int pi_fail(int status, const char *message)
{
    pi_embed_set_error(message);
    return status;
}

PI_API const char *pi_last_error(void) { return pi_error; }

PI_API const char *pi_embed_status_string(int status)
{
    switch (status) {
    case PI_OK: return "ok";
    case PI_ERR_ARG: return "invalid argument";
    case PI_ERR_UNSUPPORTED: return "unsupported";
    case PI_ERR_SHAPE: return "wrong shape";
    case PI_ERR_DTYPE: return "wrong dtype";
    case PI_ERR_MODEL: return "model file missing, unreadable or invalid";
    case PI_ERR_HANDLE: return "invalid or freed model handle";
    case PI_ERR_INTERNAL: return "internal error";
    default: return "unknown status";
    }
}

/* ---- starting Python ----------------------------------------------------
 * Before cffi's first call we start the interpreter ourselves, with the home
 * and module path of the environment that built this library (Python's own
 * search from the host's executable would not find a venv, and could pick
 * another Python's standard library).  PYTHONHOME / PYTHONPATH still win. */
static pthread_once_t pi_boot_once = PTHREAD_ONCE_INIT;
static char pi_boot_error[1024];

static void pi_boot(void)
{
    PyStatus status;
    PyConfig config;
    const char *env_path = getenv("PYTHONPATH");
    char *path = NULL;

    if (Py_IsInitialized())
        return;  /* the host runs Python itself: cffi attaches to it */
    PyConfig_InitPythonConfig(&config);
    config.install_signal_handlers = 0;
    config.parse_argv = 0;
    status = PyConfig_SetBytesString(&config, &config.program_name, PI_EMBED_PROGRAM);
    if (!PyStatus_Exception(status) && !getenv("PYTHONHOME") && PI_EMBED_HOME[0])
        status = PyConfig_SetBytesString(&config, &config.home, PI_EMBED_HOME);
    if (!PyStatus_Exception(status)) {
        size_t n = strlen(PI_EMBED_PATH) + (env_path ? strlen(env_path) + 1 : 0) + 1;
        path = malloc(n);
        if (path == NULL) {
            snprintf(pi_boot_error, sizeof pi_boot_error, "out of memory");
            PyConfig_Clear(&config);
            return;
        }
        snprintf(path, n, "%s%s%s", env_path ? env_path : "", env_path ? ":" : "",
                 PI_EMBED_PATH);
        status = PyConfig_SetBytesString(&config, &config.pythonpath_env, path);
        free(path);
    }
    if (!PyStatus_Exception(status))
        status = Py_InitializeFromConfig(&config);
    PyConfig_Clear(&config);
    if (PyStatus_Exception(status)) {
        snprintf(pi_boot_error, sizeof pi_boot_error,
                 "pyinfer: the embedded Python interpreter could not start: %s%s%s",
                 status.func ? status.func : "", status.func ? ": " : "",
                 status.err_msg ? status.err_msg : "unknown error");
        return;
    }
    PyEval_SaveThread();  /* release the GIL: every call takes it in its own thread */
}

static int pi_booted(void)
{
    pthread_once(&pi_boot_once, pi_boot);
    if (pi_boot_error[0])
        return pi_fail(PI_ERR_INTERNAL, pi_boot_error), 0;
    return 1;
}

/* Python returns status + 1; cffi answers 0 for a call Python never ran
 * (its startup failed), which must not read as PI_OK. */
static int pi_answer(int r)
{
    if (r <= 0)
        return pi_fail(PI_ERR_INTERNAL, "pyinfer: the embedded Python interpreter could not "
                                        "run pyinfer (is pyinfer importable by the Python "
                                        "that built libpyinfer_embed.so?)");
    return r - 1;
}

static int pi_py_load(const char *, const char *, pi_model **);
static int pi_py_free(pi_model *);
static int pi_py_count(const pi_model *, int, int *);
static int pi_py_info(const pi_model *, int, int, const char **, int *, int *, long long *);
static int pi_py_run(pi_model *, int, const pi_tensor *, int, pi_tensor *);
static int pi_py_output_dims(pi_model *, int, const pi_tensor *, int, int *, long long *);

/* ---- the API (pyinfer_embed.h) ------------------------------------------ */
PI_API int pi_model_load(const char *path, const char *options, pi_model **model)
{
    if (model == NULL)
        return pi_fail(PI_ERR_ARG, "pi_model_load: argument 'model' is NULL (expected the "
                                   "address of a pi_model * to receive the handle)");
    *model = NULL;
    if (path == NULL)
        return pi_fail(PI_ERR_ARG, "pi_model_load: argument 'path' is NULL");
    if (!pi_booted())
        return PI_ERR_INTERNAL;
    return pi_answer(pi_py_load(path, options, model));
}

PI_API int pi_model_free(pi_model *model)
{
    if (model == NULL)
        return PI_OK;
    if (!pi_booted())
        return PI_ERR_INTERNAL;
    return pi_answer(pi_py_free(model));
}

static int pi_count(const pi_model *model, int which, const char *fn)
{
    int count = -1;
    char message[128];
    if (model == NULL) {
        snprintf(message, sizeof message, "%s: argument 'model' is NULL", fn);
        return pi_fail(PI_ERR_ARG, message), -1;
    }
    if (!pi_booted() || pi_answer(pi_py_count(model, which, &count)) != PI_OK)
        return -1;
    return count;
}

PI_API int pi_model_num_inputs(const pi_model *model)
{
    return pi_count(model, 0, "pi_model_num_inputs");
}

PI_API int pi_model_num_outputs(const pi_model *model)
{
    return pi_count(model, 1, "pi_model_num_outputs");
}

static int pi_info(const pi_model *model, int which, int index, const char **name, int *dtype,
                   int *rank, long long *dims, const char *fn)
{
    char message[128];
    if (model == NULL) {
        snprintf(message, sizeof message, "%s: argument 'model' is NULL", fn);
        return pi_fail(PI_ERR_ARG, message);
    }
    if (!pi_booted())
        return PI_ERR_INTERNAL;
    return pi_answer(pi_py_info(model, which, index, name, dtype, rank, dims));
}

PI_API int pi_model_input_info(const pi_model *model, int index, const char **name,
                               int *dtype, int *rank, long long *dims)
{
    return pi_info(model, 0, index, name, dtype, rank, dims, "pi_model_input_info");
}

PI_API int pi_model_output_info(const pi_model *model, int index, const char **name,
                                int *dtype, int *rank, long long *dims)
{
    return pi_info(model, 1, index, name, dtype, rank, dims, "pi_model_output_info");
}

PI_API int pi_model_output_dims(pi_model *model, int n_inputs, const pi_tensor *inputs,
                                int index, int *rank, long long *dims)
{
    if (model == NULL)
        return pi_fail(PI_ERR_ARG, "pi_model_output_dims: argument 'model' is NULL");
    if (n_inputs < 0 || (n_inputs > 0 && inputs == NULL))
        return pi_fail(PI_ERR_ARG, "pi_model_output_dims: argument 'inputs' is NULL or "
                                   "'n_inputs' < 0");
    if (rank == NULL || dims == NULL)
        return pi_fail(PI_ERR_ARG, "pi_model_output_dims: arguments 'rank' and 'dims' must "
                                   "not be NULL");
    if (!pi_booted())
        return PI_ERR_INTERNAL;
    return pi_answer(pi_py_output_dims(model, n_inputs, inputs, index, rank, dims));
}

PI_API int pi_model_run(pi_model *model, int n_inputs, const pi_tensor *inputs,
                        int n_outputs, pi_tensor *outputs)
{
    if (model == NULL)
        return pi_fail(PI_ERR_ARG, "pi_model_run: argument 'model' is NULL");
    if (n_inputs < 0 || n_outputs < 0)
        return pi_fail(PI_ERR_ARG, "pi_model_run: arguments 'n_inputs' and 'n_outputs' "
                                   "must be >= 0");
    if (n_inputs > 0 && inputs == NULL)
        return pi_fail(PI_ERR_ARG, "pi_model_run: argument 'inputs' is NULL");
    if (n_outputs > 0 && outputs == NULL)
        return pi_fail(PI_ERR_ARG, "pi_model_run: argument 'outputs' is NULL");
    if (!pi_booted())
        return PI_ERR_INTERNAL;
    return pi_answer(pi_py_run(model, n_inputs, inputs, n_outputs, outputs));
}
"""

# Runs inside the embedded interpreter on the first call.  It must never raise:
# a failure here would be printed by cffi and leave every call answering 0.
INIT_CODE = r"""
import sys
from _pyinfer_embed import ffi, lib

try:
    if not getattr(sys, "argv", None):
        sys.argv = [""]
    import site
    for _d in SITE_DIRS:  # .pth files of the building environment (editable installs)
        if _d not in sys.path:
            site.addsitedir(_d)
    from pyinfer.embed import host as _host
    _host.install(ffi, lib)
except BaseException as _exc:
    _message = ("pyinfer: the embedded Python could not import pyinfer: %s: %s (sys.path: %s)"
                % (type(_exc).__name__, _exc, sys.path)).encode("utf-8", "replace")

    def _failed(*args):
        lib.pi_embed_set_error(_message)
        return 36 + 1  # PI_ERR_INTERNAL, answered

    for _name in ("pi_py_load", "pi_py_free", "pi_py_count", "pi_py_info", "pi_py_run",
                  "pi_py_output_dims"):
        ffi.def_extern(name=_name)(_failed)
"""


def _search_path() -> list[str]:
    """The folders the embedded interpreter needs on sys.path: pyinfer's own
    parent (a checkout for editable installs), the site directories, and
    wherever pyinfer's dependencies were imported from."""
    import importlib.util
    dirs = [os.path.dirname(PACKAGE_DIR)]
    dirs += site.getsitepackages()
    if site.ENABLE_USER_SITE:
        dirs.append(site.getusersitepackages())
    for mod in ("_cffi_backend", "numpy", "numba", "llvmlite", "threadpoolctl", "onnx"):
        spec = importlib.util.find_spec(mod)
        if spec is not None and spec.origin:
            top = os.path.dirname(spec.origin)
            dirs.append(top if mod == "_cffi_backend" else os.path.dirname(top))
    seen, out = set(), []
    for d in dirs:
        d = os.path.abspath(d)
        if d not in seen and os.path.isdir(d):
            seen.add(d)
            out.append(d)
    return out


def _settings() -> dict:
    """Everything that decides what the library does; its hash is the key."""
    import cffi
    from .. import __version__
    with open(HEADER) as f:
        header = f.read()
    path = _search_path()
    return {"builder": BUILDER_VERSION, "pyinfer": __version__, "cffi": cffi.__version__,
            "python": sys.version, "home": sys.base_prefix,
            "program": sys.executable, "path": path,
            "site_dirs": [d for d in path if os.path.basename(d) in
                          ("site-packages", "dist-packages")],
            "header": header, "c": C_SOURCE, "init": INIT_CODE}


def _key(settings: dict) -> str:
    blob = json.dumps(settings, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def _cache_dir() -> str:
    return os.environ.get("PYINFER_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "pyinfer")


def library_dir(key: str | None = None) -> str:
    """Where the embedding library lives (or will be built) for this environment."""
    return os.path.join(_cache_dir(), f"embed-{key or _key(_settings())}")


def _c_string(s: str) -> str:
    return json.dumps(s)  # a JSON string is a valid C string literal for these paths


def _compile(settings: dict, target: str) -> None:
    import warnings

    import cffi
    if not sysconfig.get_config_var("Py_ENABLE_SHARED"):
        from ..errors import UnsupportedError
        raise UnsupportedError("libpyinfer_embed.so needs a Python built with --enable-shared "
                               "(libpython); this one links Python statically")
    ffi = cffi.FFI()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # '#pragma once' is ignored by design
        ffi.cdef(settings["header"])
    ffi.cdef(INTERNAL_CDEF)
    ffi.embedding_init_code(f"SITE_DIRS = {settings['site_dirs']!r}\n" + INIT_CODE)
    libdir = sysconfig.get_config_var("LIBDIR")
    ffi.set_source(
        MODULE_NAME, C_SOURCE,
        include_dirs=[os.path.dirname(HEADER)],
        define_macros=[("PI_EMBED_HOME", _c_string(settings["home"])),
                       ("PI_EMBED_PROGRAM", _c_string(settings["program"])),
                       ("PI_EMBED_PATH", _c_string(os.pathsep.join(settings["path"])))],
        library_dirs=[libdir] if libdir else [],
        extra_compile_args=["-O2", "-Wall"],
        extra_link_args=([f"-Wl,-rpath,{libdir}"] if libdir else [])
        + [f"-Wl,-soname,{LIBRARY_NAME}", "-pthread"])
    with tempfile.TemporaryDirectory(prefix="pyinfer-embed-") as tmp:
        with contextlib.redirect_stdout(sys.stderr):  # distutils' chatter stays off stdout
            built = ffi.compile(tmpdir=tmp, target=LIBRARY_NAME, verbose=False)
        staged = os.path.join(os.path.dirname(target), f".{LIBRARY_NAME}.{os.getpid()}")
        shutil.copy2(built, staged)
        os.replace(staged, target)  # atomic: a running host keeps the old mapping


@contextlib.contextmanager
def _locked(folder: str):
    import fcntl
    with open(os.path.join(folder, ".embed.lock"), "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def library_path(rebuild: bool = False) -> str:
    """The path of libpyinfer_embed.so for this environment, built first if it
    is missing or was built for other settings (a few seconds, once)."""
    settings = _settings()
    key = _key(settings)
    folder = library_dir(key)
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as exc:
        from ..errors import PyinferError
        raise PyinferError(f"cannot create {folder} for {LIBRARY_NAME} ({exc.strerror}); set "
                           f"PYINFER_CACHE_DIR to a writable folder") from None
    target = os.path.join(folder, LIBRARY_NAME)
    stamp = target + ".key"
    with _locked(folder):
        current = None
        if os.path.exists(stamp) and os.path.exists(target):
            with open(stamp) as f:
                current = f.read().strip()
        if rebuild or current != key:
            _compile(settings, target)
            with open(stamp, "w") as f:
                f.write(key + "\n")
    return target
