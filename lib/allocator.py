"""Keep memory that the process frees for its next allocations (glibc's malloc).

A training update allocates and frees its activations and gradients on every call: about 2.5 GB
at paper scale, in blocks of up to 64 MB (a (128, 128, 32, 32) float32 activation). glibc gives
every block over its mmap threshold (dynamic, at most 32 MB) a mapping of its own and unmaps it
when it is freed, and it returns the top of its heap to the system when more than a threshold is
free, so the next call gets the memory back as fresh pages, which the kernel zeroes one 4 KiB
page fault at a time: about 600,000 page faults per paper-scale G update, the same for D, on
every backend and in eager PyTorch alike (bench/README.md). ``reuse_freed_memory`` makes glibc
serve every block from its heap and keep what is freed there: after the first update, the next
ones reuse the same memory with no page faults. Measured at paper scale on 2 cores (PyTorch
backend, median of 8 updates): G 3.52 -> 2.93 s, D 3.96 -> 3.44 s; peak RSS 1871 -> 2225 MB,
which stays allocated until the process ends.

Other C libraries (musl, macOS) have no such switch, and nothing changes there.
``DCGAN_KEEP_FREED_MEMORY=0`` leaves glibc's defaults.
"""
import ctypes
import os

# glibc's mallopt parameters (malloc.h)
M_TRIM_THRESHOLD = -1  # free memory at the top of the heap kept before returning it
M_MMAP_MAX = -4        # the most blocks served by mmap at once; 0: none, all from the heap

_applied = None


def _glibc():
    """The process's C library if it is glibc, else None."""
    try:
        libc = ctypes.CDLL(None)
    except OSError:
        return None
    return libc if hasattr(libc, "gnu_get_libc_version") and hasattr(libc, "mallopt") else None


def reuse_freed_memory():
    """Make glibc serve all blocks from its heap and never shrink it (once per process).

    Returns True if the setting is in effect: glibc, and ``$DCGAN_KEEP_FREED_MEMORY`` is not
    ``0``. Blocks already mapped are unmapped when freed, as before; blocks allocated from now on
    stay in the heap after they are freed, for the next allocation.
    """
    global _applied
    if _applied is None:
        libc = None if os.environ.get("DCGAN_KEEP_FREED_MEMORY", "1") == "0" else _glibc()
        # mallopt returns 1 on success; the largest int is glibc's own "never trim"
        _applied = bool(libc is not None and libc.mallopt(M_MMAP_MAX, 0) == 1
                        and libc.mallopt(M_TRIM_THRESHOLD, 2 ** 31 - 1) == 1)
    return _applied


def applied():
    """True if ``reuse_freed_memory`` changed the allocator in this process."""
    return bool(_applied)
