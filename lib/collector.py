"""Python's cyclic garbage collector around compiling: what it costs there, and how we avoid it.

Compiling allocates millions of small objects (PyTensor's graphs and rewrites, torch.fx graphs,
Inductor's IR and generated code). The collector runs a collection every 700 allocations, and
every 100th of them is a full one that walks every object alive: after importing torch and
Dynamo, 370,000 of them, 0.18 s a time. Two remedies, measured on the faces training functions
at ngf = ndf = 64 with the PyTorch backend on 2 cores:

- ``freeze_imported()``: after a backend's imports (lib/backend.py) and Inductor's (the PyTorch
  linker's first compile), their objects are exempted from the scans (``gc.freeze``). Building
  the faces graphs after importing the PyTorch backend: 0.33 s, frozen 0.11 s.
- ``paused()``: no collection while a function is rewritten and linked (lib/graph_cache.py's
  function maker) or traced and compiled (the PyTorch linker); the garbage a compile leaves is
  collected by the first collection after it (0.7 s in all for the three functions, cold).

Both together, everything after making the mode until the three functions' first calls are
done, less one steady call each: warm (every cache full) 3.45 / 3.53 -> 2.38 / 2.39 s (0.4 s of
the gain is the PyTorch linker's lazy conversion to Python); cold (every cache empty) 27.1 to
29.4 s -> 26.1 to 28.0 s, peak memory 1,130 to 1,170 MB -> 1,190 to 1,230 MB.
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
