"""A disk cache of rewritten graphs, so that compiling a function a second time skips the rewrites.

Compiling the faces model's three training functions spends most of its time, once the C
modules or kernels are cached, in PyTensor's graph rewrites (canonicalize, specialize, fusion,
inplace): about 6 s of the 10 s of a warm compile at ngf = ndf = 64 on C. The rewritten graph
depends only on the graph given to ``pytensor.function``, the mode's rewrites and the code of
PyTensor and lib/, so it is stored, keyed on all of these, and reused.

How: ``CachedMode`` is a PyTensor ``Mode`` whose function maker is ``CachedFunctionMaker``.
Before rewriting, the maker pickles the function's graph (inputs by position, so that shared
variables' values are not part of it) and hashes the bytes with the versions, the mode's rewrite
query, the names of every registered rewrite and the source of lib/. On a hit it loads the
rewritten graph, wires it to this function's own inputs (so updates land in the live shared
variables) and puts it in place of the outputs through PyTensor's validation: the
DestroyHandler and the Supervisor check the in-place Ops of the loaded graph as the rewrites
would have (a replacement that fails is reverted). On a miss, or when anything about the cached
file is wrong, it rewrites as usual and stores the result.

The cache lives in ``<compiledir>/dcgan_graphs`` (beside PyTensor's own C module cache, and
emptied with it); ``DCGAN_GRAPH_CACHE=0`` turns it off. The PyTorch linker keeps the packages
AOTInductor compiled there too (``*.pt2``, lib/dispatch/pytorch_linker.py).
"""
import copyreg
import hashlib
import io
import os
import pickle
import sys
import time
import warnings
from functools import cache
from pathlib import Path

import numpy as np
import pytensor
import pytensor.sparse  # noqa: F401  (registers its rewrites, otherwise done at a first compile)
import pytensor.typed_list  # noqa: F401  (the same)
from pytensor.compile import optdb
from pytensor.compile.aliasing import insert_deepcopy
from pytensor.compile.maker import FunctionMaker
from pytensor.compile.mode import Mode
from pytensor.compile.ops import DeepCopyOp
from pytensor.graph.basic import Apply, Constant, Variable
from pytensor.graph.destroyhandler import DestroyHandler
from pytensor.graph.rewriting.db import RewriteDatabase, RewriteDatabaseQuery

from lib import collector
from lib.files import atomic_write

FORMAT = 1  # bumped when what is stored changes
LIB = Path(__file__).resolve().parent
# Graphs that rewrite faster than this are not worth a file. The faces model's sampling function
# rewrites in 0.1 s and loads in 0.003 s.
MIN_REWRITE_S = 0.05
MAX_FILES = 128  # beyond this many graphs, the least recently used are removed


def enabled():
    """False when the environment variable ``DCGAN_GRAPH_CACHE`` is ``0``."""
    return os.environ.get("DCGAN_GRAPH_CACHE", "1") != "0"


def cache_dir():
    """Where the rewritten graphs are stored: in PyTensor's compiledir."""
    return Path(pytensor.config.compiledir) / "dcgan_graphs"


@cache
def _code_digest():
    """The versions and lib/'s source: rewrites and Ops' code are part of a cached graph."""
    h = hashlib.sha256(f"{FORMAT} {sys.version} {pytensor.__version__}".encode())
    for path in sorted(LIB.rglob("*")):
        if path.suffix in (".py", ".cpp", ".h") and "__pycache__" not in path.parts:
            h.update(str(path.relative_to(LIB)).encode())
            h.update(path.read_bytes())
    return h.hexdigest()


def _query_text(mode):
    """The mode's linker and rewrite query, written in a fixed order."""
    q = mode._optimizer
    if isinstance(q, RewriteDatabaseQuery):
        def text(query):
            return (f"include={sorted(query.include)} require={sorted(query.require)} "
                    f"exclude={sorted(query.exclude)} cutoff={query.position_cutoff} "
                    f"extra={[repr(r) for r in query.extra_rewrites]} "
                    f"sub={[text(s) for s in query.subquery]}")
        query = text(q)
    else:
        query = repr(q)
    names = ["floatX", "cast_policy", "cxx", "optimizer_including", "optimizer_excluding",
             "optimizer_requiring", "on_opt_error", "tensor__insert_inplace_optimizer_validate_nb"]
    if type(mode.linker).__name__ in ("VMLinker", "CLinker", "OpWiseCLinker"):
        names.append("blas__ldflags")  # the C BLAS rewrites (read only here: it probes for BLAS)
    flags = {k: str(getattr(pytensor.config, k, None)) for k in names}  # what rewrites read
    return (f"{type(mode.linker).__module__}.{type(mode.linker).__name__} {query} {flags} "
            f"{_registered_rewrites()}")


def _registered_rewrites():
    """The names of every rewrite in PyTensor's database, nested databases included: a rewrite
    registered from outside lib/ changes the key too."""
    names, seen, todo = set(), {id(optdb)}, [optdb]
    while todo:
        db = todo.pop()
        for name in db._names:
            names.add(f"{db.name}/{name}")
            for rewrite in db.__db__.get(name, ()):
                if isinstance(rewrite, RewriteDatabase) and id(rewrite) not in seen:
                    seen.add(id(rewrite))
                    todo.append(rewrite)
    return sorted(names)


class _Pickler(pickle.Pickler):
    """Pickles a graph with the variables of ``inputs`` as references to their position.

    ``for_key``: leave out of each variable and node its ``auto_name``, a global counter that
    depends on how many variables this process made before, and its ``tag``, notes that are not
    the computation and may point into other graphs (``lib.activations.sigmoid`` keeps the logit
    there, whose graph an earlier compile may have changed).
    """

    def __init__(self, file, inputs, for_key=False):
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        self._position = {id(v): i for i, v in enumerate(inputs)}
        self._for_key = for_key

    def persistent_id(self, obj):
        i = self._position.get(id(obj))
        return None if i is None else ("input", i)

    def reducer_override(self, obj):
        if not (self._for_key and isinstance(obj, Variable | Apply)):
            return NotImplemented
        if isinstance(obj, Constant):  # its value (rewrites cache things on it, or lock it)
            data = obj.data
            if isinstance(data, np.ndarray):
                data = (data.dtype.str, data.shape, data.tobytes())
            return copyreg.__newobj__, (type(obj),), {"type": obj.type, "data": data}
        state = {k: v for k, v in obj.__getstate__().items() if k not in ("auto_name", "tag")}
        return copyreg.__newobj__, (type(obj),), state


class _Unpickler(pickle.Unpickler):
    def __init__(self, file, inputs):
        super().__init__(file)
        self._inputs = inputs

    def persistent_load(self, pid):
        kind, i = pid
        if kind != "input" or not 0 <= i < len(self._inputs):
            raise pickle.UnpicklingError(f"unknown reference {pid!r}")
        return self._inputs[i]


def _dumps(variables, inputs, for_key=False):
    buf = io.BytesIO()
    _Pickler(buf, inputs, for_key).dump(list(variables))
    return buf.getvalue()


def _loads(data, inputs):
    return _Unpickler(io.BytesIO(data), inputs).load()


def graph_key(fgraph, input_specs, output_specs, mode):
    """The cache key of ``fgraph`` (before rewriting) compiled with ``mode``."""
    h = hashlib.sha256(_code_digest().encode())
    h.update(_query_text(mode).encode())
    # the input types, and the specs that decide the in-place and copy rewrites
    h.update(repr([(str(v.type), getattr(v.type, "shape", None)) for v in fgraph.inputs]).encode())
    h.update(repr([(s.mutable, s.borrow, s.update is not None) for s in input_specs]).encode())
    h.update(repr([s.borrow for s in output_specs]).encode())
    h.update(repr(sorted(fgraph.update_mapping.items())).encode())
    h.update(_dumps(fgraph.outputs, fgraph.inputs, for_key=True))
    return h.hexdigest()


def store(path, data):
    """Write ``data`` to ``path`` atomically, then drop the least recently used files of its
    kind (suffix) beyond ``MAX_FILES``."""
    _store(path, data)
    _evict(path.parent, f"*{path.suffix}")


def _store(path, data):
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda f: f.write(data))


def touch(path):
    try:
        os.utime(path)
    except OSError:
        pass


def _evict(directory, pattern="*.pkl"):
    """Keep the ``MAX_FILES`` most recently used files matching ``pattern``."""
    try:
        files = sorted(directory.glob(pattern), key=lambda p: p.stat().st_mtime, reverse=True)
        for old in files[MAX_FILES:]:
            old.unlink(missing_ok=True)
    except OSError:  # another process removed one first
        pass


def _load_into(fgraph, data):
    """Put the cached rewritten outputs in place of ``fgraph``'s, through its validation."""
    outputs = _loads(data, fgraph.inputs)
    if len(outputs) != len(fgraph.outputs) or any(
            new.type != old.type for new, old in zip(outputs, fgraph.outputs)):
        raise ValueError("the cached graph's outputs do not match the function's")
    if not hasattr(fgraph, "destroyers"):
        fgraph.attach_feature(DestroyHandler())
    fgraph.replace_all_validate(list(zip(fgraph.outputs, outputs)), reason="dcgan_graph_cache")


class CachedFunctionMaker(FunctionMaker):
    """PyTensor's ``FunctionMaker``, with the rewrites looked up in the graph cache first, and
    without cyclic garbage collections while it rewrites and links (lib/collector.py)."""

    def __init__(self, *args, **kwargs):
        with collector.paused():
            super().__init__(*args, **kwargs)

    def create(self, *args, **kwargs):
        with collector.paused():
            return super().create(*args, **kwargs)

    def prepare_fgraph(self, inputs, outputs, additional_outputs, fgraph, mode, profile):
        path = self._path(fgraph, inputs, outputs, mode)
        # what the rewritten graph is a function of, for the linker's own caches
        fgraph.dcgan_graph_key = None if path is None else path.stem
        if path is not None and path.exists():
            start = time.perf_counter()
            try:
                with pytensor.config.change_flags(mode=mode):
                    _load_into(fgraph, path.read_bytes())
                    insert_deepcopy(fgraph, inputs, outputs + additional_outputs)
                self.graph_cache = ("hit", time.perf_counter() - start)
                touch(path)
                return
            except Exception as err:  # a corrupt or incompatible file: rewrite as usual
                # (a replacement that fails validation is reverted, so the graph is unchanged)
                warnings.warn(f"graph cache: {path} could not be used ({type(err).__name__}: "
                              f"{err}); rewriting the graph", stacklevel=2)
        start = time.perf_counter()
        FunctionMaker.prepare_fgraph(inputs, outputs, additional_outputs, fgraph, mode, profile)
        if path is None:
            return
        self.graph_cache = ("miss", time.perf_counter() - start)
        if self.graph_cache[1] < MIN_REWRITE_S:
            return
        # stored without the deep copies, which insert_deepcopy adds again on a hit
        try:
            store(path, _dumps(_strip_deepcopies(fgraph), fgraph.inputs))
        except (OSError, pickle.PicklingError, TypeError, AttributeError) as err:
            _warn_once("store", f"graph cache: could not store {path} ({err})")

    @staticmethod
    def _path(fgraph, inputs, outputs, mode):
        """The cache file of this graph, or None when the cache is off or the graph cannot be
        pickled."""
        if not enabled():
            return None
        try:
            return cache_dir() / f"{graph_key(fgraph, inputs, outputs, mode)}.pkl"
        except (pickle.PicklingError, TypeError, AttributeError) as err:
            _warn_once("key", f"graph cache: a graph could not be pickled ({err}); it is "
                       f"rewritten without the cache")
            return None


_warned = set()


def _warn_once(kind, message):
    """A warning, once per process for each ``kind`` of failure."""
    if kind not in _warned:
        _warned.add(kind)
        warnings.warn(message + "; DCGAN_GRAPH_CACHE=0 turns the cache off", stacklevel=3)


def _strip_deepcopies(fgraph):
    """The outputs of ``fgraph`` with the DeepCopyOps that ``insert_deepcopy`` added removed."""
    return [out.owner.inputs[0] if out.owner is not None and isinstance(out.owner.op, DeepCopyOp)
            else out for out in fgraph.outputs]


class CachedMode(Mode):
    """A PyTensor ``Mode`` whose functions go through ``CachedFunctionMaker``; ``including``,
    ``excluding`` and ``clone`` keep the class."""

    @property
    def function_maker(self):
        return CachedFunctionMaker


def cached(mode):
    """``mode`` (a PyTensor ``Mode``) as a ``CachedMode`` with the same linker and rewrites."""
    return CachedMode(linker=mode.linker, optimizer=mode.provided_optimizer)
