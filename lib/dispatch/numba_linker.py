"""PyTensor's Numba linker, with Numba's compile (at a function's first call) run without cyclic
garbage collections.

Numba compiles a graph's function when it is first called: type inference, lowering and LLVM,
much of it Python that allocates millions of objects, so the garbage collector's full
collections (lib/collector.py) come often and are slow. Compiling the faces training functions
at ngf = ndf = 64 from empty caches on 2 cores, the build and the three first calls took 65.9
and 64.7 s with the collector on, 59.9 and 58.6 s with it paused here; the garbage of the
compile, collected after it, raised the peak memory from 1,620 to 1,790 MB.
"""
from pytensor.link.numba.linker import NumbaLinker

from lib import collector


class PausedNumbaLinker(NumbaLinker):
    """``NumbaLinker`` whose compiled function's first call (the compile) runs with the garbage
    collector paused."""

    def jit_compile(self, fn_and_cache):
        return FirstCallPaused(super().jit_compile(fn_and_cache))


class FirstCallPaused:
    """``fn``, whose first call runs inside ``collector.paused()``; later calls go straight to
    ``fn`` (one Python call more than ``fn`` alone)."""

    __slots__ = ("fn", "_call")

    def __init__(self, fn):
        self.fn = fn
        self._call = self._first

    def _first(self, *args):
        with collector.paused():
            out = self.fn(*args)
        self._call = self.fn
        return out

    def __call__(self, *args):
        return self._call(*args)
