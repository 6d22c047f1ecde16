"""Python's cyclic garbage collector around compiling: what it costs there, and how we avoid it.

Compiling allocates millions of small objects (PyTensor's graphs and rewrites, torch's exported
programs and Inductor's IR). The collector runs a collection every 700 allocations, and every
100th of them is a full one that walks every object alive (after importing torch, hundreds of
thousands). Two remedies:

- ``paused()``: no collection while a function is rewritten and linked (lib/graph_cache.py's
  function maker) or exported and compiled (the PyTorch linker); the garbage a compile leaves is
  collected by the first collection after it. The collector is as it was when the block ends.
- ``freeze_imported()``: the objects alive now, mostly modules, are exempted from the scans
  (``gc.freeze``). A process-wide setting, chosen by an entry point through lib/speed.py.

docs/performance.md has the measurements.
"""
import gc
from contextlib import contextmanager


def freeze_imported():
    """Exempt every object alive now, most of them the modules just imported, from the
    collector's scans. They are still freed when their last reference goes; only a reference
    cycle among them stays (modules live as long as the process anyway)."""
    gc.freeze()


@contextmanager
def paused():
    """No cyclic garbage collection inside the block (it is turned back on after, if it was on
    before, whatever the block raises)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
