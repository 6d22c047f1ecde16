"""PyTensor's PyTorch linker, with each graph exported by ``torch.export`` and compiled ahead of
time by AOTInductor.

PyTensor's own ``PytorchLinker`` hands the Python function it generates for a graph to
``torch.compile``, whose Dynamo interprets the bytecode of that function and of the hundreds of
small functions it calls, in every process, cold or warm (about 17 s for the faces training
functions at ngf = ndf = 64 on 2 cores). Here ``AotPytorchLinker`` does what torch documents for
a graph that will be called many times with the same shapes:

- ``torch.export.export(..., strict=False)`` runs the same generated function once on fake
  tensors and records the aten ops it calls;
- ``torch._inductor.aoti_compile_and_package`` compiles that program into a ``.pt2`` package (one
  shared library with its kernels and its constants);
- ``torch._inductor.aoti_load_package`` loads it, and every call runs the library.

Both ``torch._inductor`` functions are the supported, documented interface of AOTInductor
(https://docs.pytorch.org/docs/stable/torch.compiler_aot_inductor.html).

Packages are kept in the graph cache (lib/graph_cache.py), named by the graph's digest (the
rewritten PyTensor graph's cache key, torch's version and the compile options) and the input
signature (shapes, strides, dtypes, devices). A warm process loads the package and never exports
or compiles. Shapes are static: a call with a new signature exports and compiles again, as
``torch.compile`` does for a new static shape.

A graph whose Python code needs a tensor's value on the host (an ``Assert``'s condition, an
``IfElse``) cannot be exported; it runs eagerly, with a warning that says so. The generated
function and its kernels are PyTensor's and lib/dispatch/pytorch.py's, so the numbers are those
of eager PyTorch up to Inductor's fusion of elementwise arithmetic (tests/test_pytorch_linker.py
compares them).
"""
import hashlib
import os
import tempfile
import warnings
from contextlib import contextmanager
from pathlib import Path

import torch
from pytensor.link.pytorch.dispatch import pytorch_typify
from pytensor.link.pytorch.linker import PytorchLinker

from lib import collector

# AOTInductor's options, passed with each compile (``inductor_configs``); they are part of a
# package's name. Inductor compiles in parallel worker processes by default; on a machine with few
# cores those workers stay alive and compete with the kernels' threads, so compile in-process.
FEW_CORES = 4
OPTIONS = {"compile_threads": 1} if len(os.sched_getaffinity(0)) <= FEW_CORES else {}


def options_for(program):
    """``OPTIONS`` for exported ``program``: without Inductor's layout optimisation when it
    computes convolution gradients.

    The optimisation stores a conv-heavy graph's activations and kernels channels-last, which
    made the faces G and D updates 6 to 8% slower at ngf = ndf = 64 on 2 cores and sampling
    (no gradients) 8 to 18% faster (bench/README.md)."""
    config = dict(OPTIONS)
    if any(node.target is torch.ops.aten.convolution_backward.default
           for node in program.graph.nodes):
        config["layout_optimization"] = False
    return config


class AotPytorchLinker(PytorchLinker):
    """``PytorchLinker`` whose ``jit_compile`` returns a ``CompiledGraph``: the generated function
    exported and compiled by AOTInductor, one package per input signature."""

    def fgraph_convert(self, fgraph, *args, **kwargs):
        self._graph_digest = graph_digest(fgraph)
        # The graph's constants are NumPy arrays that PyTensor locks read-only; torch warns
        # that a tensor made from one must not be written to, which no kernel here does.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
            return super().fgraph_convert(fgraph, *args, **kwargs)

    def jit_compile(self, fn):
        self.gen_functors = []  # only torch.compile needs them; the function holds its own
        return CompiledGraph(fn, self._graph_digest)


def graph_digest(fgraph):
    """What a compiled graph depends on besides its input signature: the rewritten PyTensor
    graph, which is a function of its key in the graph cache (the graph before rewriting, the
    rewrites, PyTensor's and lib/'s code), torch's version and ``OPTIONS``. None when the graph
    has no such key (the cache is off, or the graph cannot be pickled): then nothing is stored."""
    key = getattr(fgraph, "dcgan_graph_key", None)
    if key is None:
        return None
    return hashlib.sha256(f"{key} {torch.__version__} {OPTIONS}".encode()).hexdigest()


def signature(tensors):
    """What a compiled graph is specialised to: each input's shape, stride, dtype and device;
    None when an input is not a tensor."""
    sig = []
    for x in tensors:
        if not isinstance(x, torch.Tensor):
            return None
        sig.append((tuple(x.shape), x.stride(), x.dtype, x.device))
    return tuple(sig)


def package_path(digest, sig):
    """Where the package of the graph with ``digest`` for input signature ``sig`` is kept."""
    from lib import graph_cache

    name = hashlib.sha256(repr(sig).encode()).hexdigest()[:16]
    return graph_cache.cache_dir() / f"{digest}-{name}.pt2"


class _Generated(torch.nn.Module):
    """The generated function as the module ``torch.export`` takes."""

    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, *inputs):
        return tuple(self.fn(*inputs))


@contextmanager
def quiet_torch_deprecations():
    """Silence torch 2.13's deprecation of ``isinstance(treespec, LeafSpec)``, which its own export
    and package loading trigger (nothing a user of this project can act on)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)`",
                                category=FutureWarning)
        yield


class NotExportable(Exception):
    """The graph's Python code needs a tensor's value, which export's fake tensors do not have."""


def export(fn, tensors):
    """``fn`` exported for ``tensors``' signature; ``NotExportable`` when it reads a value."""
    try:
        with torch.no_grad(), quiet_torch_deprecations():
            return torch.export.export(_Generated(fn), tuple(tensors), strict=False)
    except Exception as e:  # noqa: BLE001  (sorted out by running the graph eagerly)
        raise NotExportable(str(e).strip().splitlines()[0] if str(e).strip()
                            else type(e).__name__) from e


def compile_package(program, path):
    """Compile exported ``program`` with AOTInductor into the package ``path`` (written
    atomically: a reader never sees half a package), and return the loaded package."""
    from torch._inductor import aoti_compile_and_package  # imported on first use: 0.5 s

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.stem, suffix=".pt2")
    os.close(fd)
    try:
        with quiet_torch_deprecations():
            aoti_compile_and_package(program, package_path=tmp,
                                     inductor_configs=options_for(program))
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return load_package(path)


def load_package(path):
    """The package at ``path``, or None when there is none; a package that cannot be loaded is
    reported in one line and compiled again."""
    if not path.exists():
        return None
    from torch._inductor import aoti_load_package

    try:
        with quiet_torch_deprecations():
            return aoti_load_package(str(path))
    except Exception as e:  # noqa: BLE001  (a truncated or foreign file: compile it again)
        warnings.warn(f"PyTorch backend: {path} cannot be loaded ({type(e).__name__}); "
                      "compiling the graph again", stacklevel=3)
        return None


class CompiledGraph:
    """The callable a ``AotPytorchLinker`` thunk runs: NumPy inputs in, NumPy outputs out.

    ``fn``: the graph's generated Python function; ``digest``: the graph's ``graph_digest``
    (None: packages are compiled into a temporary folder and not kept)."""

    def __init__(self, fn, digest=None):
        self.fn = fn
        self.digest = digest
        self.compiled = {}  # input signature -> loaded package
        self.eager_reason = None  # why this graph runs eagerly, if it does
        self._scratch = None

    def _path(self, sig):
        if self.digest is not None:
            return package_path(self.digest, sig)
        if self._scratch is None:
            self._scratch = tempfile.TemporaryDirectory(prefix="dcgan-aoti-")
        return Path(self._scratch.name) / f"{len(self.compiled)}.pt2"

    def _compile(self, tensors, sig):
        path = self._path(sig)
        package = load_package(path)
        if package is None:
            with collector.paused():  # lib/collector.py
                package = compile_package(export(self.fn, tensors), path)
        return package

    def _eager(self, tensors):
        with torch.no_grad():
            return self.fn(*tensors)

    def __call__(self, *inputs):
        tensors = [pytorch_typify(x) for x in inputs]
        sig = signature(tensors) if self.eager_reason is None else None
        package = self.compiled.get(sig)
        if package is None and sig is not None:
            try:
                package = self.compiled[sig] = self._compile(tensors, sig)
            except NotExportable as e:
                outs = self._eager(tensors)  # a graph's own error (a shape check) is raised here
                self.eager_reason = str(e)
                warnings.warn("PyTorch backend: this graph reads tensor values in Python "
                              f"({self.eager_reason}); it runs eagerly", stacklevel=2)
                return tuple(out.cpu().numpy() for out in outs)
        elif sig is None and self.eager_reason is None:
            self.eager_reason = "an input is not a tensor"
        if package is None:
            outs = self._eager(tensors)
        else:
            with torch.no_grad():
                outs = package(*tensors)
        return tuple(out.cpu().numpy() for out in outs)
