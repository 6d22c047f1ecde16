"""Process-wide speed settings, for the entry points that choose them.

Importing ``lib`` or making a backend's mode changes nothing process-wide. A training or benchmark
script may call ``apply`` once, before it builds its functions, and print the line it returns on
the run's first lines; ``--speed_settings=false`` (its flag) leaves the process as it was. The
settings:

- freed memory is kept for reuse (lib/allocator.py; glibc only): a training update's activations
  come back without page faults, and updates take 10 to 17% less time;
- the objects alive after the backend's imports are frozen out of the cyclic garbage collector's
  scans (lib/collector.py): building the graphs takes a third of the time.

docs/performance.md has the measurements.
"""
from lib import allocator, collector

FLAG = "speed_settings"


def apply(enabled=True, backend=None):
    """Apply the settings (``enabled``), after importing ``backend``'s kernels if one is named;
    return the line that announces what is in effect."""
    if not enabled:
        return "speed settings: off (glibc's allocator and the garbage collector as they are)"
    if backend is not None:
        from lib.backend import register

        register(backend)
    kept = allocator.reuse_freed_memory()
    collector.freeze_imported()
    memory = "freed memory kept for reuse" if kept else "freed memory as the C library does"
    return (f"speed settings: {memory}, imported objects frozen out of garbage collection "
            f"(--{FLAG}=false turns them off)")
