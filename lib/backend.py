"""PyTensor backends by name: compile modes and the registration of our Ops' native kernels.

Names: ``python`` (the NumPy ``perform`` reference, for tests), ``c`` (CVM linker with C code),
``numba`` (PyTensor 3's default), ``jax`` (CPU or GPU, wherever JAX runs) and ``pytorch``.
"""
import importlib
import importlib.metadata
import importlib.util
import os
import warnings

import pytensor
from pytensor.compile.mode import Mode
from pytensor.compile.mode import get_mode as pytensor_get_mode

from lib import flags, graph_cache

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
    """Import the module that registers our Ops for backend ``name`` (idempotent). Nothing
    process-wide changes; an entry point may choose lib/speed.py's settings."""
    if name not in _registered:
        for module in (_FIXES.get(name), _DISPATCH[name]):
            if module is not None:
                importlib.import_module(module)
        _registered.add(name)


def get_mode(name="numba"):
    """A PyTensor ``Mode`` for backend ``name``, with our Ops' kernels registered, whose rewritten
    graphs are cached on disk (lib/graph_cache.py)."""
    return graph_cache.cached(_get_mode(name))


def _probe_blas():
    """PyTensor's ``blas__ldflags``: the BLAS its own C GEMM Ops link to, probed once.

    A pip-installed PyTensor finds none and warns in five lines that operations "will be
    severely degraded". Not here: our convolutions run one GEMM per call through NumPy's own
    OpenBLAS (lib/conv_ops.py), and without ldflags PyTensor computes its dot products with
    NumPy (the same BLAS). So the probe runs with that warning silenced; an ldflags found or
    set by the user is used as before.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="PyTensor could not link to a BLAS",
                                category=UserWarning)
        return pytensor.config.blas__ldflags


def _get_mode(name):
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

        _probe_blas()

        # PORT: PyTensor 3's pure "c" linker asserts on trivial graphs; "cvm" runs C code per node.
        return Mode(linker="cvm", optimizer="fast_run").including("dcgan_fast")
    # PyTensor's own modes for these linkers carry the rewrites each backend needs.
    mode = pytensor_get_mode({"numba": "NUMBA", "jax": "JAX", "pytorch": "PYTORCH"}[name])
    if name == "numba":
        from lib.dispatch.numba_linker import PausedNumbaLinker

        # PyTensor's NumbaLinker, with Numba's compile run without garbage collections
        # (lib/dispatch/numba_linker.py: the same compiled code, 10% less compile time).
        return Mode(linker=PausedNumbaLinker(), optimizer=mode.provided_optimizer)
    if name == "pytorch":
        from lib.dispatch.pytorch_linker import AotPytorchLinker

        # PyTensor's PytorchLinker runs torch.compile in every process; ours exports each graph
        # and compiles it ahead of time with AOTInductor, keeping the package
        # (lib/dispatch/pytorch_linker.py). Our shape rewrites (lib/dispatch/host_shape.py) are
        # tagged; PyTensor's PYTORCH mode does not include the tag by itself, and without them
        # the conv gradients' sizes would be read from tensors.
        return Mode(linker=AotPytorchLinker(), optimizer=mode.provided_optimizer).including(
            "pytorch")
    return mode


# The default when a script is given no --backend: the fastest backend on a 2-core CPU for what
# the script does (bench/train_step.py, paper scale, 2 idle cores; eager PyTorch 3.7/4.3 s):
# - training the unconditional DCGANs (faces, svhn, imagenet), where the time is in thousands of
#   identical updates: PyTorch 3.0/3.8 s per G/D update, C 6.0/6.8 (small scale: Numba 0.92x
#   C's time, JAX 4 to 6x). Its compile costs 25 to 30 s cold (2.4 to 3.6 s warm) and is done
#   again for each new batch shape (the last partial batch, the sample grid), a minute or two
#   that a training run repays;
# - everything else (sampling, feature extraction, the conditional MNIST model with its many
#   batch shapes, each a compile of its own on PyTorch): C, which compiles each graph once for
#   every shape in ~50 s cold, ~2 s from its caches (lib/graph_cache.py).
DEFAULT_ORDER = {"train": ("pytorch", "c", "numba"), "other": ("c", "numba")}


# On a machine where JAX finds a GPU (a CUDA or ROCm build of jaxlib, such as
# `pip install "jax[cuda12]==0.10.2"`), JAX is the default for every task: its convolutions are
# cuDNN's, and XLA compiles a new batch shape in seconds. Our other backends run on the CPU.
_GPU_PLATFORMS = ("cuda", "gpu", "rocm")


def jax_gpu():
    """True if JAX is installed with a GPU plugin and its default device is a GPU.

    JAX is imported only when a plugin is installed (a ``jax_plugins`` module or entry point, as
    JAX itself discovers them), so on a CPU-only install this costs a few milliseconds.
    ``$JAX_PLATFORMS`` naming no GPU platform (``cpu``) keeps JAX off the GPU, as it does for JAX.
    """
    if not available("jax"):
        return False
    platforms = os.environ.get("JAX_PLATFORMS", "").lower()
    if platforms and not any(p in platforms for p in _GPU_PLATFORMS):
        return False
    if (importlib.util.find_spec("jax_plugins") is None
            and not importlib.metadata.entry_points(group="jax_plugins")):
        return False
    try:
        import jax

        return jax.default_backend() == "gpu"
    except RuntimeError:  # a plugin that cannot start: JAX says why when it is asked for
        return False


def resolve_backend(name="", task="other"):
    """``name``, or the default backend for ``task`` (``'train'`` or ``'other'``) on this machine
    when it is empty: JAX where it finds a GPU, otherwise the first installed of
    ``DEFAULT_ORDER[task]``."""
    if name:
        if name.lower() not in ALL:
            flags.fail(f"--backend={name}: expected one of {', '.join(ALL)}")
        return name.lower()
    if jax_gpu():
        return "jax"
    return next(n for n in DEFAULT_ORDER[task] if available(n))


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
