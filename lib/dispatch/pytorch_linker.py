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

Four things shorten a compile beyond that, all measured on the faces training functions on
2 cores:

- The traced FX graph is stored beside the rewritten PyTensor graphs (lib/graph_cache.py), keyed
  on the rewritten graph, the input signature and the code that traces it; a warm process loads
  it (0.14 s for the G update's 1,172 nodes at ngf = ndf = 64) instead of tracing (0.5 s).
  Cold and warm processes compile the same loaded graph, so Inductor's caches, keyed on the
  graph's code, are hit. PyTensor's conversion of the graph to Python code is made only to trace
  it (or for torch.compile), so a warm process does not make it (0.4 s for the three functions).
- Tracing and compiling run with Python's cyclic garbage collector paused, and Inductor's
  modules are frozen out of its scans once imported (lib/collector.py).
- Inductor's first compile in a process probes the CPU's vector ISA (compiling test programs,
  then loading each in a child Python) and precompiles two headers, the C++ wrapper's and the
  kernels': about 14 s from empty caches (the headers are kept per machine, in
  $TMPDIR/torchinductor_<user>), 1 s from full ones, nearly all of it in compilers and child
  processes. Making the linker (``get_mode``) starts ``warm_up()``: a child process starts
  compiling a tiny graph, which builds the ISA programs and then both headers at once (once per
  Inductor cache: it leaves a marker), and a thread probes the ISA for this process, both while
  PyTensor builds the graphs. A child, not a thread, because compiling is Python that would
  share the GIL with the building and Inductor's global state with this process's own
  compiles, so that the first compile would have to wait for it (10 s at paper scale); the
  first compile waits on a header's file lock instead, if it gets there first. Cold, paper
  scale: the first call of the G update 28.4 -> 21.0 s.
- Each graph's module is two compile units, the wrapper's (at -O1) and the kernels' (at -O3),
  compiled at once by ``_compile_units``, where Inductor compiles one unit at -O3, or two one
  after the other. Cold, ngf = ndf = 64: the build and the three first calls 37 -> 33 s (G's
  and D's compiler runs 6 -> 4 s each).

And one more makes a warm process skip Inductor altogether. Compiled with the C++ wrapper, a
graph is one shared library (the wrapper and its kernels) whose entry takes the graph's input
tensors and returns its outputs; Inductor's ``call`` does nothing else. What a warm process
spent before it got there: importing Inductor (0.5 s), AOTAutograd's cache key (0.4 s at paper
scale: hashing torch's sources and the graph) and the cache lookups, 1.2 s in all at paper scale.
So the library's path is stored beside the traced graph (``*.module``, with the graph's
constants), and a warm process loads the library and calls its entry (``WrapperModule``, 3 ms a
graph). Only graphs whose compiled code is the whole story are stored: no input written in
place, no output that is an input or a view of one (AOTAutograd's runtime wrapper would copy
back or rebuild those), the graph's constants made inputs (``lift_constants``) so that the
entry's arguments are exactly the graph's inputs. The process that compiles calls the library
the same way. Warm, everything after making the mode until the first calls are done, less one
steady call each: paper scale 2.3 / 2.5 -> 1.1 / 1.4 / 1.8 s, ngf = ndf = 64 2.5 -> 1.1 to
1.3 s.
"""
import functools
import hashlib
import importlib
import importlib.util
import operator
import os
import pickle
import subprocess
import sys
import threading
import warnings
from contextlib import contextmanager
from pathlib import Path

import torch
from pytensor.link.pytorch.dispatch import pytorch_typify
from pytensor.link.pytorch.linker import PytorchLinker

from lib import collector


class FxPytorchLinker(PytorchLinker):
    """``PytorchLinker`` whose ``jit_compile`` traces with ``make_fx`` and compiles the FX graph
    with Inductor (one compiled graph per input signature)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        warm_up()

    def fgraph_convert(self, fgraph, *args, **kwargs):
        """PyTensor's conversion of ``fgraph`` to Python code calling torch, made now unless a
        trace of the graph is cached, and then only if needed: to trace the graph for new input
        shapes, or to run it through torch.compile. (The conversion writes each node's full
        expression into the code as a comment: 0.4 s for the faces training functions at
        ngf = ndf = 64.) A graph that cannot be converted (an Op without a PyTorch kernel)
        never has a trace, so its error comes when the function is made, as with PyTensor's
        linker."""
        self._graph_digest = digest = graph_digest(fgraph)
        made = []

        def convert():
            if not made:
                # The graph's constants are NumPy arrays that PyTensor locks read-only; torch
                # warns that a tensor made from one must not be written to, which no kernel of
                # this graph does.
                with warnings.catch_warnings():
                    warnings.filterwarnings("ignore",
                                            message="The given NumPy array is not writable")
                    fn = super(FxPytorchLinker, self).fgraph_convert(fgraph, *args, **kwargs)
                functors, self.gen_functors = self.gen_functors, []
                made.append((fn, functors))
            return made[0]

        if digest is None or not _has_trace(digest):
            convert()
        return convert

    def jit_compile(self, convert):
        def dynamo():
            # PyTensor's torch.compile wrapper, for graphs that cannot be traced; made only then
            # (importing Dynamo's compiler takes a second)
            fn, self.gen_functors = convert()
            return PytorchLinker.jit_compile(self, fn)

        return FxFunction(lambda: convert()[0], dynamo, self._graph_digest)


def graph_digest(fgraph):
    """What a traced graph depends on besides its input signature: the rewritten PyTensor graph,
    which is a function of its key in the graph cache (the graph before rewriting, the rewrites,
    PyTensor's and lib/'s code), torch's version and ``INDUCTOR_CONFIG``. None when the graph
    has no such key (the cache is off, or the graph cannot be pickled)."""
    key = getattr(fgraph, "dcgan_graph_key", None)
    if key is None:
        return None
    return hashlib.sha256(f"{key} {torch.__version__} {INDUCTOR_CONFIG}".encode()).hexdigest()


def _signature(inputs):
    """What a compiled graph is specialised to: each input's shape, stride, dtype and device
    (None when an input is not a tensor)."""
    sig = []
    for x in inputs:
        if not isinstance(x, torch.Tensor):
            return None
        sig.append((tuple(x.shape), x.stride(), x.dtype, x.device))
    return tuple(sig)


# Inductor's C++ wrapper: the graph's kernels and the code calling them in one C++ module,
# instead of a Python wrapper and one module per kernel. Compiling the faces training functions
# at ngf = ndf = 64 from empty caches on 2 cores: 62 s -> 38 s (G 34 -> 23 s, D 26 -> 11 s); the
# updates run at the same speed (0.39 / 0.45 s). Built separately, the wrapper's code (calls into
# aten) is compiled at -O1 and the kernels at -O3, as two compile units, which
# ``_compile_units`` runs at once: the G update's g++ 7 s -> 4 s, updates at the same speed.
INDUCTOR_CONFIG = {"cpp_wrapper": True, "cpp_wrapper_build_separate": True}


def inductor_config(gm):
    """``INDUCTOR_CONFIG`` for graph ``gm``: without Inductor's layout optimisation when the
    graph computes convolution gradients.

    The optimisation stores a conv-heavy graph's activations and kernels channels-last. Timed
    in one process, calls alternating, on 2 AVX-512 cores: the faces G and D updates ran 5.7%
    and 7.5% faster without it at ngf = ndf = 64 (0.365 / 0.407 against 0.387 / 0.440 s), and
    at the same speed at ngf = ndf = 128 (3.74 / 4.22 against 3.75 / 4.27 s), but sampling,
    which has no gradients, ran 8% and 18% slower without it. So it stays for graphs without
    ``convolution_backward``."""
    config = dict(INDUCTOR_CONFIG)
    if any(node.target is torch.ops.aten.convolution_backward.default
           for node in gm.graph.nodes):
        config["layout_optimization"] = False
    return config


def _trace_name(digest, sig):
    """The file name of the traced graph with ``digest`` for the input signature whose hash is
    ``sig`` (``*``: any)."""
    return f"{digest}-{sig}.fx"


def _has_trace(digest):
    """True if a traced graph or a compiled module with ``digest`` is stored (``traced_graph``,
    ``store_module``), for any input signature."""
    from lib import graph_cache

    return any(graph_cache.cache_dir().glob(f"{digest}-*"))


def _signature_hash(inputs):
    return hashlib.sha256(repr(_signature(inputs)).encode()).hexdigest()[:16]


class HostValueError(Exception):
    """The graph's Python code read a tensor's value while being traced on fake tensors."""


def traced_graph(make_fn, inputs, digest):
    """``trace(make_fn(), inputs)`` through the disk cache: the graph stored (``graph_to_bytes``)
    and loaded again, so that a process that traces and one that loads compile the same code.
    ``digest``: the function's ``graph_digest``; None traces without the cache. ``make_fn`` is
    called only to trace."""
    from lib import graph_cache

    if digest is None:
        return trace(make_fn(), inputs)
    path = graph_cache.cache_dir() / _trace_name(digest, _signature_hash(inputs))
    if path.exists():
        try:
            gm = graph_from_bytes(path.read_bytes())
            graph_cache.touch(path)
            return gm
        except Exception as err:  # a corrupt or incompatible file: trace again
            warnings.warn(f"graph cache: {path} could not be used ({type(err).__name__}: "
                          f"{err}); tracing the graph", stacklevel=3)
    gm = trace(make_fn(), inputs)
    try:
        data = graph_to_bytes(gm)
        loaded = graph_from_bytes(data)  # what a later process loads
    except Exception as err:  # an argument of a node that does not pickle: no cache
        warnings.warn(f"graph cache: a traced graph could not be stored ({type(err).__name__}: "
                      f"{err}); it is compiled without the cache", stacklevel=3)
        return gm
    try:
        graph_cache.store(path, data)
    except OSError as err:
        warnings.warn(f"graph cache: could not store {path} ({err})", stacklevel=3)
    return loaded


class _Ref:
    """An argument that is the output of the graph's node number ``i``."""

    __slots__ = ("i",)

    def __init__(self, i):
        self.i = i


class _OpRef(tuple):
    """An operator ``torch.ops.<namespace>.<name>.<overload>`` (they do not pickle)."""


def graph_to_bytes(gm):
    """``gm``'s graph as pickled plain data: each node's kind, name, target and arguments, and
    the constant tensors by name. ``GraphModule``'s own pickle re-traces its code on loading and
    names the constants differently from one load to the next, which AOTAutograd's cache sees as
    another graph (a warm process then compiled the D update again, 3 s); ``graph_from_bytes``
    builds ``gm``'s own code every time. (Renaming the nodes by position made Inductor's cold
    compile of the faces functions 4 to 6 s slower, so the names are kept.)"""
    index, nodes, constants = {}, [], []
    for node in gm.graph.nodes:
        target = node.target
        if node.op == "get_attr":
            constants.append((target, getattr(gm, target)))
            target = len(constants) - 1
        elif isinstance(target, torch._ops.OpOverload):
            target = _OpRef((target.namespace, target._opname, target._overloadname))
        index[node] = len(nodes)
        args, kwargs = (torch.fx.node.map_arg(a, lambda n: _Ref(index[n]))
                        for a in (node.args, node.kwargs))
        nodes.append((node.op, node.name, target, args, kwargs))
    return pickle.dumps((nodes, constants), protocol=pickle.HIGHEST_PROTOCOL)


def graph_from_bytes(data):
    """The ``GraphModule`` that ``graph_to_bytes`` stored: the same nodes, names and code."""
    nodes, constants = pickle.loads(data)
    root, graph, built = torch.nn.Module(), torch.fx.Graph(), []

    def decode(a):
        return torch.fx.node.map_aggregate(a, lambda x: built[x.i] if isinstance(x, _Ref) else x)

    for op, name, target, args, kwargs in nodes:
        if op == "get_attr":
            target, value = constants[target]
            root.register_buffer(target, value)
        elif isinstance(target, _OpRef):
            namespace, opname, overload = target
            target = getattr(getattr(getattr(torch.ops, namespace), opname), overload)
        built.append(graph.create_node(op, target, decode(args), decode(kwargs), name=name))
    return torch.fx.GraphModule(root, graph)


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


def _compile_units(lock_path, cpp_builders):
    """Inductor's ``codecache._worker_compile_cpp``, with the compile units built at once.

    Inductor builds a module as a sequence: with ``cpp_wrapper_build_separate``, the wrapper's
    unit, the kernels' unit, then the link. The two units do not depend on each other, so here
    they are compiled side by side, each compiler in its own thread (the GIL is released while
    it runs), then linked. Each step is skipped when its output exists, as Inductor does."""
    import os
    from concurrent.futures import ThreadPoolExecutor

    from torch._inductor.codecache import LOCK_TIMEOUT
    from torch.utils._filelock import FileLock

    *units, last = cpp_builders
    with FileLock(lock_path, timeout=LOCK_TIMEOUT):
        todo = [b for b in units if not os.path.exists(b.get_target_file_path())]
        if len(todo) > 1:
            with ThreadPoolExecutor(len(todo), thread_name_prefix="dcgan-g++") as pool:
                for future in [pool.submit(b.build) for b in todo]:
                    future.result()  # the first compiler error, if any, as Inductor raises it
        else:
            for builder in todo:
                builder.build()
        if not os.path.exists(last.get_target_file_path()):
            last.build()


def _use_compile_units():
    """Install ``_compile_units`` as Inductor's module compiler (``load_async`` looks it up at
    each call)."""
    from torch._inductor import codecache

    codecache._worker_compile_cpp = _compile_units


def compile_graph(gm, inputs):
    """Inductor's compiled ``gm`` for ``inputs`` (through its FX graph and AOTAutograd caches):
    a ``WrapperModule`` when the compiled library can be called directly (see the module's
    docstring), else AOTAutograd's callable. Either takes the graph's inputs as tensors and
    returns its outputs. ``gm`` loses its constants to ``lift_constants``."""
    from torch._guards import TracingContext, tracing
    from torch._subclasses.fake_tensor import FakeTensorMode
    from torch.fx.experimental.symbolic_shapes import ShapeEnv

    if "torch._inductor.compile_fx" not in sys.modules:  # the first compile: Inductor's import
        importlib.import_module("torch._inductor.compile_fx")
        collector.freeze_imported()
    from torch._inductor.compile_fx import compile_fx

    _use_compile_units()
    gm, constants = lift_constants(gm)
    args = [*inputs, *constants]
    fake_mode = FakeTensorMode(shape_env=ShapeEnv(), allow_non_fake_inputs=True)
    context = TracingContext(fake_mode)
    # The example inputs are made fake here, with static shapes: given real tensors, AOTAutograd
    # gives them symbolic sizes from the ShapeEnv and Inductor compiles for any shape (slower:
    # the D update's cold compile at paper scale took 24.5 s instead of 13). A graph traced by
    # make_fx carries static fake inputs itself, but a graph loaded from the cache does not.
    with torch.no_grad(), tracing(context), _wrapper_modules() as loaded:
        fakes = [fake_mode.from_tensor(x, static_shapes=True) for x in args]
        compiled = compile_fx(gm, fakes, config_patches=inductor_config(gm))
    if len(loaded) == 1 and loaded[0] and _plain(gm, args, context.fw_metadata):
        return WrapperModule(*loaded[0], constants)
    return lambda *tensors: compiled(*tensors, *constants)


def lift_constants(gm):
    """``gm`` with its constant tensors (``get_attr`` nodes) made inputs, after its own, and
    the constants in that order; a constant read by several nodes is one input. With no
    constants left on the module, AOTAutograd adds no inputs of its own, and the compiled
    library takes exactly the graph's inputs."""
    graph = gm.graph
    last = [n for n in graph.nodes if n.op == "placeholder"][-1:]  # the new inputs go after it
    constants, inputs = [], {}
    for node in list(graph.nodes):
        if node.op != "get_attr":
            continue
        if node.target not in inputs:
            with graph.inserting_after(last[0]) if last else graph.inserting_before(node):
                last = [graph.placeholder(f"constant_{len(constants)}")]
            last[0].meta.update(node.meta)  # a traced graph's nodes carry their fake values
            inputs[node.target] = last[0]
            constants.append(functools.reduce(getattr, node.target.split("."), gm))
        node.replace_all_uses_with(inputs[node.target])
        graph.erase_node(node)
    for target in inputs:
        *owner, name = target.split(".")
        delattr(functools.reduce(getattr, owner, gm), name)
    gm.recompile()
    return gm, constants


def _plain(gm, args, metadata):
    """True when the compiled ``gm`` needs nothing from AOTAutograd's runtime wrapper: no node
    writes in place, no output is an input or a view, no argument is passed twice (AOTAutograd
    would drop the copy), and AOTAutograd's own analysis (``metadata``; None when its cache
    was hit) agrees."""
    from torch.fx.node import Node

    if len({id(a) for a in args}) != len(args):
        return False
    for node in gm.graph.nodes:
        if isinstance(node.target, torch._ops.OpOverload) and node.target._schema.is_mutable:
            return False
        if node.op == "output":
            for out in torch.utils._pytree.tree_leaves(node.args[0]):
                while isinstance(out, Node) and out.target is operator.getitem:
                    out = out.args[0]  # an output of a node with several (split, unbind, ...)
                if isinstance(out, Node) and (out.op == "placeholder" or (
                        isinstance(out.target, torch._ops.OpOverload) and out.target.is_view)):
                    return False
    if metadata is None:
        return True
    from torch._functorch._aot_autograd.schemas import OutputType

    return (len(metadata.input_info) == len(args)
            and not any(i.mutates_data or i.mutates_metadata for i in metadata.input_info)
            and all(o.output_type == OutputType.non_alias for o in metadata.output_info)
            and metadata.num_intermediate_bases == 0 and not metadata.tokens)


@contextmanager
def _wrapper_modules():
    """The (path, key) of the C++ wrapper library of every compiled graph that Inductor loads
    in this thread inside the block (None for one that cannot be called directly): its output
    code (a Python module, loaded again from a cache hit too) holds the library's entry as
    ``inductor_entry``. One loaded with attributes (constants set on the module) cannot: its
    ``call`` passes more than the entry's arguments. One block at a time."""
    from torch._inductor.codecache import PyCodeCache

    with _spy_lock:
        own, load = PyCodeCache.__dict__["load_by_key_path"], PyCodeCache.load_by_key_path
        loaded, thread = [], threading.get_ident()

        def spy(cls, key, path, linemap=None, attrs=None, **kwargs):
            module = load(key, path, linemap, attrs, **kwargs)
            if threading.get_ident() == thread:
                loaded.append(_library(module, attrs))
            return module

        PyCodeCache.load_by_key_path = classmethod(spy)
        try:
            yield loaded
        finally:
            PyCodeCache.load_by_key_path = own


_spy_lock = threading.Lock()


def _library(output_code, attrs):
    entry = getattr(output_code, "inductor_entry", None)
    library = getattr(entry, "__self__", None)
    if attrs or not getattr(library, "__file__", None):
        return None
    return library.__file__, library.__name__.rsplit(".", 1)[0]


def _load_entry(path, key):
    """The entry of Inductor's C++ wrapper library ``path``, loaded as Inductor loads it
    (``CppPythonBindingsCodeCache._load_library_inner``: the same module name, so that either
    finds the other's)."""
    name = f"{key}.inductor_entry_cpp"
    module = sys.modules.get(name)
    if module is None:
        if not os.path.exists(path):
            raise FileNotFoundError(path)
        # the library's init reads the address of a function of torch's from the environment
        os.environ["_TORCHINDUCTOR_PYOBJECT_TENSOR_DATA_PTR"] = str(
            torch._C._dynamo.guards._torchinductor_pyobject_tensor_data_ptr)
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        sys.modules[name] = module
    return module.inductor_entry_cpp


class WrapperModule:
    """A compiled graph's library, called as Inductor's ``call`` calls it: the input tensors
    and the graph's constants in, as handles, the outputs' handles back as tensors."""

    def __init__(self, path, key, constants):
        self.path, self.key, self.constants = str(path), key, list(constants)
        self._entry = _load_entry(self.path, key)

    def __call__(self, *tensors):
        handles = torch._C._aoti.unsafe_alloc_void_ptrs_from_tensors([*tensors, *self.constants])
        return torch._C._aoti.alloc_tensors_by_stealing_from_void_ptrs(self._entry(handles))

    def to_bytes(self):
        return pickle.dumps(dict(path=self.path, key=self.key, constants=self.constants),
                            protocol=pickle.HIGHEST_PROTOCOL)

    @classmethod
    def from_bytes(cls, data):
        return cls(**pickle.loads(data))


def _module_path(digest, inputs):
    from lib import graph_cache

    return graph_cache.cache_dir() / f"{digest}-{_signature_hash(inputs)}.module"


def load_module(digest, inputs):
    """The ``WrapperModule`` stored for the graph with ``digest`` and ``inputs``' signature, or
    None: none stored, its library gone from Inductor's cache (warned when it did not load)."""
    from lib import graph_cache

    if digest is None:
        return None
    path = _module_path(digest, inputs)
    try:
        module = WrapperModule.from_bytes(path.read_bytes())
    except FileNotFoundError:
        return None
    except Exception as err:
        warnings.warn(f"graph cache: {path} could not be used ({type(err).__name__}: {err}); "
                      "compiling the graph", stacklevel=3)
        return None
    graph_cache.touch(path)
    return module


def store_module(digest, inputs, compiled):
    """Store ``compiled`` for ``load_module`` if it is a ``WrapperModule``."""
    from lib import graph_cache

    if digest is None or not isinstance(compiled, WrapperModule):
        return
    path = _module_path(digest, inputs)
    try:
        graph_cache.store(path, compiled.to_bytes())
    except OSError as err:
        warnings.warn(f"graph cache: could not store {path} ({err})", stacklevel=3)


_warm_up_thread = None
_warm_up_child = None  # the warm-up's child process (subprocess.Popen), if one was started
_warm_up_lock = threading.Lock()

# The child's program: a tiny graph through Inductor's C++ wrapper, for the headers it
# precompiles (and the vector ISA programs it builds), then the marker that it was done.
# Inductor builds the wrapper's header and the kernels' header one after the other, then the
# module; here each header is built in a thread of its own, both at once, and the tiny module is
# not compiled at all (it would only compete for the cores with the parent's first compile).
_WARM_UP_PROGRAM = """
import os, pathlib, sys, threading, torch
from torch._inductor import codecache
from torch._inductor.compile_fx import compile_fx
build, headers = codecache._worker_compile_cpp, []
class HeadersStarted(Exception):
    pass
def build_headers(lock_path, cpp_builders):
    if os.path.dirname(lock_path) != codecache._HEADER_LOCK_DIR:
        raise HeadersStarted  # the tiny module: not needed
    headers.append(threading.Thread(target=build, args=(lock_path, cpp_builders)))
    headers[-1].start()
codecache._worker_compile_cpp = build_headers
def tiny(a):
    return (torch.tanh(a) * 2.0,)
try:
    compile_fx(torch.fx.symbolic_trace(tiny), [torch.zeros(64)], config_patches=%r)
except Exception as err:
    while err is not None and not isinstance(err, HeadersStarted):
        err = err.__cause__ or err.__context__
    if err is None:
        raise
for thread in headers:
    thread.join()
pathlib.Path(sys.argv[1]).touch()
"""


def _warm_up_marker():
    """The file the warm-up's child leaves in Inductor's cache directory when it is done."""
    import getpass
    import os
    import tempfile

    directory = os.environ.get("TORCHINDUCTOR_CACHE_DIR") or os.path.join(
        tempfile.gettempdir(), "torchinductor_" + getpass.getuser().replace("/", "_"))
    options = hashlib.sha256(repr(INDUCTOR_CONFIG).encode()).hexdigest()[:12]
    return Path(directory) / f"dcgan-warm-up-{torch.__version__}-{options}"


def warm_up():
    """Start, once per process, what a first Inductor compile does whatever the graph (see the
    module's docstring): a child process that starts compiling a tiny graph, unless one already
    did with these caches, for the two headers Inductor precompiles; and a thread that probes
    the CPU's vector ISA, which this process needs itself."""
    global _warm_up_thread, _warm_up_child
    with _warm_up_lock:
        if _warm_up_thread is not None:
            return
        marker = _warm_up_marker()
        if not marker.exists():
            try:
                marker.parent.mkdir(parents=True, exist_ok=True)
                _warm_up_child = subprocess.Popen(
                    [sys.executable, "-c", _WARM_UP_PROGRAM % (INDUCTOR_CONFIG,), str(marker)],
                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL)
            except OSError:  # the first real compile does the same work
                pass
        _warm_up_thread = threading.Thread(target=_probe_vec_isa, daemon=True,
                                           name="dcgan-inductor-warm-up")
        _warm_up_thread.start()


def _probe_vec_isa():
    try:
        from torch._inductor.cpu_vec_isa import pick_vec_isa

        pick_vec_isa()  # compilers and child processes: the GIL is left to the main thread
    except Exception:  # noqa: S110  the first real compile does this again and reports it
        pass


def wait_for_warm_up():
    """Return once ``warm_up``'s thread, if one was started, has finished (tracing and compiling
    read the ISA it picks). The child process is not waited for: a compile that needs its header
    waits on the header's file lock, and uses it."""
    if _warm_up_thread is not None:
        _warm_up_thread.join()


class FxFunction:
    """The callable a ``FxPytorchLinker`` thunk runs: NumPy inputs in, NumPy outputs out.
    ``make_fn``: the graph's Python function (made once, by the linker's ``convert``), for
    tracing; ``digest``: the graph's ``graph_digest``, under which its traces are cached (None:
    not)."""

    def __init__(self, make_fn, make_dynamo, digest=None):
        self.make_fn = make_fn
        self.digest = digest
        self._make_dynamo = make_dynamo  # -> PyTensor's torch.compile wrapper
        self._dynamo = None
        self.compiled = {}  # input signature -> Inductor's compiled graph
        self.host_value_reason = None  # why this graph runs through torch.compile, if it does

    def dynamo(self, *inputs):
        """``inputs`` through torch.compile, as PyTensor's own linker runs them."""
        if self._dynamo is None:
            self._dynamo = self._make_dynamo()
        return self._dynamo(*inputs)

    def _compile(self, tensors):
        """Trace and compile the graph for ``tensors`` and store the result; None when the
        graph reads tensor values in Python (then torch.compile runs it)."""
        wait_for_warm_up()
        try:
            with collector.paused():  # lib/collector.py
                gm = traced_graph(self.make_fn, tensors, self.digest)
                compiled = compile_graph(gm, tensors)
        except HostValueError as e:
            self.host_value_reason = str(e).splitlines()[0] if str(e) else type(e).__name__
            warnings.warn("PyTorch backend: this graph reads tensor values in Python "
                          f"({self.host_value_reason}); it is compiled by torch.compile, "
                          "which splits it there", stacklevel=3)
            return None
        store_module(self.digest, tensors, compiled)
        return compiled

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
            compiled = load_module(self.digest, tensors) or self._compile(tensors)
            if compiled is None:
                return self.dynamo(*inputs)
            self.compiled[sig] = compiled
        with torch.no_grad():
            outs = compiled(*tensors)
        return tuple(out.cpu().numpy() for out in outs)
