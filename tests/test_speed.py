"""lib/speed.py: process-wide settings only where an entry point applies them.

Importing ``lib`` and making every backend's mode (and compiling and running a function on the
PyTorch backend) leaves the environment, the garbage collector's frozen set and glibc's
allocator as they were; ``speed.apply`` changes the last two and says so."""
import json
import platform
import subprocess
import sys

# A 64 MiB block malloc'ed, written and freed three times: with glibc's defaults every page of
# the last round faults in again (16,384 pages of 4 KiB); with freed memory kept, none does.
_PROBE = """
import ctypes, gc, json, os, resource, sys
env = dict(os.environ)
frozen = gc.get_freeze_count()
line = None
if sys.argv[1] == "modes":
    import numpy as np
    import pytensor
    import pytensor.tensor as T
    from lib import backend
    for name in backend.ALL:
        if backend.available(name):
            backend.get_mode(name)
    x = T.vector("x")
    f = pytensor.function([x], x * 2, mode=backend.get_mode("pytorch"))
    assert list(f(np.ones(2, np.float32))) == [2, 2]
elif sys.argv[1] == "dependencies":  # what the dependencies change by themselves
    import warnings
    import pytensor
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pytensor.config.blas__ldflags  # PyTensor's BLAS probe puts Python's lib dir on PATH
    import jax  # noqa: F401  (sets its TF_CPP_MIN_LOG_LEVEL and TPU_SKIP_MDS_QUERY)
    import torch
    torch.compiler.disable(lambda: 0)  # imports Dynamo, which records Inductor's cache dir
else:
    from lib import speed
    line = speed.apply(sys.argv[1] == "on", "python")
faults = None
if sys.argv[2] == "glibc":
    libc = ctypes.CDLL(None)
    libc.malloc.restype = ctypes.c_void_p
    libc.malloc.argtypes = [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    for _ in range(3):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        p = libc.malloc(64 << 20)
        ctypes.memset(p, 1, 64 << 20)
        libc.free(p)
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
changed = sorted(k for k in set(env) | set(os.environ) if env.get(k) != os.environ.get(k))
print(json.dumps(dict(changed={k: os.environ.get(k) for k in changed}, frozen=gc.get_freeze_count() - frozen, line=line,
                      faults=faults)))
"""
GLIBC = platform.libc_ver()[0] == "glibc"
ALL_PAGES = (64 << 20) // 4096


def _probe(how):
    out = subprocess.run([sys.executable, "-c", _PROBE, how, "glibc" if GLIBC else "other"],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.splitlines()[-1])


def test_importing_lib_and_making_every_mode_changes_nothing_process_wide():
    """Nothing beyond what PyTensor, JAX and torch change by themselves when they are used."""
    r, dependencies = _probe("modes"), _probe("dependencies")
    assert r["changed"].items() <= dependencies["changed"].items()
    assert r["frozen"] == 0
    if GLIBC:
        assert r["faults"] >= ALL_PAGES * 0.9


def test_the_speed_settings_change_the_process_and_say_so():
    on = _probe("on")
    assert on["frozen"] > 1000  # the modules imported so far
    assert on["line"].startswith("speed settings: ") and "--speed_settings=false" in on["line"]
    if GLIBC:
        assert "freed memory kept for reuse" in on["line"] and on["faults"] < 100
    off = _probe("off")
    assert off["frozen"] == 0 and off["changed"] == {} and "off" in off["line"]
    if GLIBC:
        assert off["faults"] >= ALL_PAGES * 0.9
