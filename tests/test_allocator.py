"""lib/allocator.py: freed memory is kept by glibc and reused without page faults."""
import json
import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(platform.libc_ver()[0] != "glibc",
                                reason="glibc's mallopt: other C libraries are left alone")

# A 64 MiB block (a (128, 128, 32, 32) float32 activation) malloc'ed, written and freed three
# times, as an update's activations are; the page faults of the last round.
_PROBE = """
import ctypes, json, resource, sys
from lib import allocator
applied = allocator.reuse_freed_memory() if sys.argv[1] == "apply" else None
if sys.argv[1] == "register":
    from lib.backend import register
    register("c")
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
size = 64 << 20
for _ in range(3):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    p = libc.malloc(size)
    ctypes.memset(p, 1, size)
    libc.free(p)
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
print(json.dumps(dict(applied=applied, now=allocator.applied(), faults=faults)))
"""


def _probe(how):
    out = subprocess.run([sys.executable, "-c", _PROBE, how], capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout)


def test_glibc_defaults_fault_in_every_page_of_a_reallocated_block():
    r = _probe("none")
    assert r["now"] is False
    assert r["faults"] >= (64 << 20) // 4096 * 0.9  # 4 KiB pages: 16,384


def test_kept_memory_is_reused_without_page_faults():
    r = _probe("apply")
    assert r["applied"] is True and r["now"] is True
    assert r["faults"] < 100


def test_registering_a_backend_leaves_the_defaults():
    r = _probe("register")
    assert r["now"] is False
    assert r["faults"] >= (64 << 20) // 4096 * 0.9

