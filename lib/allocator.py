"""Keep memory that the process frees for its next allocations (glibc's malloc).

A training update allocates and frees its activations and gradients on every call (about 2.5 GB
at paper scale, in blocks of up to 64 MB). glibc gives every block over its mmap threshold a
mapping of its own and unmaps it when it is freed, and returns the top of its heap to the system,
so the next update gets its memory back as fresh pages that the kernel zeroes one page fault at a
time. ``reuse_freed_memory`` makes glibc serve every block from its heap and keep what is freed
there: after the first update, the next ones reuse the same memory without page faults. The price
is that the heap keeps its peak until the process ends. It is a process-wide setting, chosen by
an entry point through lib/speed.py; docs/performance.md has the measurements.

Other C libraries (musl, macOS) have no such switch, and nothing changes there.
"""
import ctypes

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

    Returns True if the setting is in effect (glibc). Blocks already mapped are unmapped when freed, as before; blocks allocated from now on
    stay in the heap after they are freed, for the next allocation.
    """
    global _applied
    if _applied is None:
        libc = _glibc()
        # mallopt returns 1 on success; the largest int is glibc's own "never trim"
        _applied = bool(libc is not None and libc.mallopt(M_MMAP_MAX, 0) == 1
                        and libc.mallopt(M_TRIM_THRESHOLD, 2 ** 31 - 1) == 1)
    return _applied


def applied():
    """True if ``reuse_freed_memory`` changed the allocator in this process."""
    return bool(_applied)
