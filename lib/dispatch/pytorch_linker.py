"""PyTensor's PyTorch linker, with the graph traced by ``make_fx`` and compiled by Inductor.

PyTensor 3.0.7's ``PytorchLinker`` hands the Python function it generates for a graph to
``torch.compile``. Dynamo then interprets the bytecode of that function and of the ~800 functors
it calls, on every compile, cold or warm: 17 s of the warm compile of the faces training
functions at ngf = ndf = 64 on 2 cores. Here ``FxPytorchLinker`` runs the same function once on
fake tensors under ``make_fx``, which records the aten ops it calls as a flat FX graph (under
1 s for a training update), and compiles that graph with Inductor's ``compile_fx``. The compile
runs in a tracing context that has a ``ShapeEnv``: without one, AOTAutograd's and Inductor's
caches are bypassed ("No shape env") and every process compiles from scratch.

Shapes are static: a compiled graph serves calls whose tensors have the shapes, strides, dtypes
and devices it was traced with, and a call with new ones traces and compiles again (as
torch.compile does for a new static shape). A graph whose Python code reads tensor values on the
host (an ``Assert``'s condition, an ``IfElse``) cannot be traced on fake tensors; it is compiled
by ``torch.compile`` as PyTensor does, with a warning that says so.

The generated function and the functors are PyTensor's; the numbers are the same as through
torch.compile (tests/test_pytorch_linker.py compares them).
"""
import warnings

import torch
from pytensor.link.pytorch.dispatch import pytorch_typify
from pytensor.link.pytorch.linker import PytorchLinker


class FxPytorchLinker(PytorchLinker):
    """``PytorchLinker`` whose ``jit_compile`` traces with ``make_fx`` and compiles the FX graph
    with Inductor (one compiled graph per input signature)."""

    def fgraph_convert(self, *args, **kwargs):
        # The graph's constants are NumPy arrays that PyTensor locks read-only; torch warns that
        # a tensor made from one must not be written to, which no kernel of this graph does.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
            return super().fgraph_convert(*args, **kwargs)

    def jit_compile(self, fn):
        functors, self.gen_functors = self.gen_functors, []

        def dynamo():
            # PyTensor's torch.compile wrapper, for graphs that cannot be traced; made only then
            # (importing Dynamo's compiler takes a second)
            self.gen_functors = functors
            return PytorchLinker.jit_compile(self, fn)

        return FxFunction(fn, dynamo)


def _signature(inputs):
    """What a compiled graph is specialised to: each input's shape, stride, dtype and device
    (None when an input is not a tensor)."""
    sig = []
    for x in inputs:
        if not isinstance(x, torch.Tensor):
            return None
        sig.append((tuple(x.shape), x.stride(), x.dtype, x.device))
    return tuple(sig)


# Inductor's C++ wrapper: the graph's kernels and the code calling them in one C++ module, built
# by one compiler run, instead of a Python wrapper and one module per kernel. Compiling the faces
# training functions at ngf = ndf = 64 from empty caches on 2 cores: 62 s -> 38 s (G 34 -> 23 s,
# D 26 -> 11 s); the updates run at the same speed (0.39 / 0.45 s).
INDUCTOR_CONFIG = {"cpp_wrapper": True}


class HostValueError(Exception):
    """The graph's Python code read a tensor's value while being traced on fake tensors."""


def trace(fn, inputs):
    """The FX graph of the aten ops ``fn(*inputs)`` calls, traced on fake tensors.

    Raises ``HostValueError`` when ``fn`` needs a tensor's value in Python; any other error of
    ``fn`` (a shape mismatch that PyTensor's checks report, ...) is raised as it is.
    """
    from torch._subclasses.fake_tensor import (DataDependentOutputException,
                                               DynamicOutputShapeException)
    from torch.fx.experimental.proxy_tensor import make_fx
    from torch.fx.experimental.symbolic_shapes import GuardOnDataDependentSymNode

    host_value = (DataDependentOutputException, DynamicOutputShapeException,
                  GuardOnDataDependentSymNode)
    try:
        with torch.no_grad():
            # constants of the graph are real tensors held by the functors
            gm = make_fx(fn, tracing_mode="fake", _allow_non_fake_inputs=True)(*inputs)
    except host_value as e:
        raise HostValueError(str(e)) from e
    except RuntimeError as e:
        # torch.tensor([...]) or .item() on a fake tensor: "... data is not allocated yet"
        if "data is not allocated" in str(e):
            raise HostValueError(str(e)) from e
        raise
    return gm


def compile_graph(gm, inputs):
    """Inductor's compiled ``gm`` for ``inputs``, through its FX graph and AOTAutograd caches."""
    from torch._guards import TracingContext, tracing
    from torch._inductor.compile_fx import compile_fx
    from torch._subclasses.fake_tensor import FakeTensorMode
    from torch.fx.experimental.symbolic_shapes import ShapeEnv

    fake_mode = FakeTensorMode(shape_env=ShapeEnv(), allow_non_fake_inputs=True)
    with torch.no_grad(), tracing(TracingContext(fake_mode)):
        return compile_fx(gm, list(inputs), config_patches=INDUCTOR_CONFIG)


class FxFunction:
    """The callable a ``FxPytorchLinker`` thunk runs: NumPy inputs in, NumPy outputs out."""

    def __init__(self, fn, make_dynamo):
        self.fn = fn
        self._make_dynamo = make_dynamo  # -> PyTensor's torch.compile wrapper
        self._dynamo = None
        self.compiled = {}  # input signature -> Inductor's compiled graph
        self.host_value_reason = None  # why this graph runs through torch.compile, if it does

    def dynamo(self, *inputs):
        """``inputs`` through torch.compile, as PyTensor's own linker runs them."""
        if self._dynamo is None:
            self._dynamo = self._make_dynamo()
        return self._dynamo(*inputs)

    def __call__(self, *inputs):
        if self.host_value_reason is not None:
            return self.dynamo(*inputs)
        tensors = [pytorch_typify(x) for x in inputs]
        sig = _signature(tensors)
        if sig is None:  # a scalar or slice input: torch.compile guards on its value
            self.host_value_reason = "an input is not a tensor"
            return self.dynamo(*inputs)
        compiled = self.compiled.get(sig)
        if compiled is None:
            try:
                gm = trace(self.fn, tensors)
            except HostValueError as e:
                self.host_value_reason = str(e).splitlines()[0] if str(e) else type(e).__name__
                warnings.warn("PyTorch backend: this graph reads tensor values in Python "
                              f"({self.host_value_reason}); it is compiled by torch.compile, "
                              "which splits it there", stacklevel=2)
                return self.dynamo(*inputs)
            compiled = self.compiled[sig] = compile_graph(gm, tensors)
        with torch.no_grad():
            outs = compiled(*tensors)
        return tuple(out.cpu().numpy() for out in outs)
