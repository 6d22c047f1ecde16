"""PyTensor backends by name: compile modes and the registration of our Ops' native kernels.

Names: ``python`` (the NumPy ``perform`` reference, for tests), ``c`` (CVM linker with C code),
``numba`` (PyTensor 3's default), ``jax`` (CPU or GPU, wherever JAX runs) and ``pytorch``.
"""
import importlib
import importlib.util

from pytensor.compile.mode import Mode
from pytensor.compile.mode import get_mode as pytensor_get_mode

BACKENDS = ("c", "numba", "jax", "pytorch")
ALL = ("python",) + BACKENDS

# package that must import for a backend, and the module registering our Ops' kernels for it
_REQUIRES = {"python": None, "c": None, "numba": "numba", "jax": "jax", "pytorch": "torch"}
_DISPATCH = {"c": None, "python": None, "numba": "lib.dispatch.numba",
             "jax": "lib.dispatch.jax", "pytorch": "lib.dispatch.pytorch"}
_registered = set()


def available(name):
    """True if ``name``'s package is installed (the C backend needs only a C compiler)."""
    pkg = _REQUIRES[name]
    return pkg is None or importlib.util.find_spec(pkg) is not None


def register(name):
    """Import the module that registers our Ops for backend ``name`` (idempotent)."""
    module = _DISPATCH[name]
    if module is not None and name not in _registered:
        importlib.import_module(module)
        _registered.add(name)


def get_mode(name="numba"):
    """A PyTensor ``Mode`` for backend ``name``, with our Ops' kernels registered."""
    name = name.lower()
    if name not in ALL:
        raise ValueError(f"--backend={name!r}: expected one of {', '.join(ALL)}")
    if not available(name):
        raise RuntimeError(f"--backend={name}: the package {_REQUIRES[name]!r} is not installed")
    register(name)
    if name == "python":
        return Mode(linker="py", optimizer="fast_run")
    if name == "c":
        # PORT: PyTensor 3's pure "c" linker asserts on trivial graphs; "cvm" runs C code per node.
        return Mode(linker="cvm", optimizer="fast_run")
    # PyTensor's own modes for these linkers carry the rewrites each backend needs.
    return pytensor_get_mode({"numba": "NUMBA", "jax": "JAX", "pytorch": "PYTORCH"}[name])
