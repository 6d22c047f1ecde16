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
# fixes to PyTensor's own dispatch for a backend, imported before our Ops' kernels
_FIXES = {"pytorch": "lib.dispatch.pytorch_fixes"}
_registered = set()


def available(name):
    """True if ``name``'s package is installed (the C backend needs only a C compiler)."""
    pkg = _REQUIRES[name]
    return pkg is None or importlib.util.find_spec(pkg) is not None


def register(name):
    """Import the module that registers our Ops for backend ``name`` (idempotent)."""
    if name not in _registered:
        for module in (_FIXES.get(name), _DISPATCH[name]):
            if module is not None:
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
        # no elementwise fusion: a fused Composite's Python perform loops over elements
        return Mode(linker="py", optimizer="fast_run").excluding("fusion")
    if name == "c":
        import lib.reduce_ops  # noqa: F401  (registers the dcgan_fast rewrites)

        # PORT: PyTensor 3's pure "c" linker asserts on trivial graphs; "cvm" runs C code per node.
        return Mode(linker="cvm", optimizer="fast_run").including("dcgan_fast")
    # PyTensor's own modes for these linkers carry the rewrites each backend needs.
    mode = pytensor_get_mode({"numba": "NUMBA", "jax": "JAX", "pytorch": "PYTORCH"}[name])
    if name == "pytorch":
        # our shape rewrites (lib/dispatch/host_shape.py) are tagged; PyTensor's PYTORCH mode
        # does not include the tag by itself, and without them torch.compile breaks the graph
        return mode.including("pytorch")
    return mode


# The default when a script is given no --backend: the fastest backend that is correct for every
# script (bench/train_step.py on 2 cores: C 13.6/14.7 s per G/D update at paper scale, Numba
# 14.4/16.8). The PyTorch backend trains faster still (10.1/11.6 s) but recompiles for every new
# batch shape, which makes feature extraction and sampling slow: choose it with --backend=pytorch.
DEFAULT_ORDER = ("c", "numba")


def resolve_backend(name=""):
    """``name``, or the default backend for this machine when it is empty."""
    if name:
        if name.lower() not in ALL:
            raise SystemExit(f"error: --backend={name}: expected one of {', '.join(ALL)}")
        return name.lower()
    return next(n for n in DEFAULT_ORDER if available(n))


def describe_mode(name):
    """One line naming the backend and the library versions behind it."""
    import pytensor

    detail = {"c": "CVM linker, C code", "python": "Python perform (reference, slow)"}
    if name in ("numba", "jax", "pytorch"):
        pkg = importlib.import_module(_REQUIRES[name])
        device = ""
        if name == "jax":
            device = f", device {pkg.devices()[0].platform}"
        detail[name] = f"{_REQUIRES[name]} {pkg.__version__}{device}"
    return f"{name} (PyTensor {pytensor.__version__}, {detail[name]})"
