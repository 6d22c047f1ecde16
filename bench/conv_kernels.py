"""Seconds per call of the convolution kernels, Numba vs the NumPy ``perform`` reference.

The faces model's layers (5x5 kernels, stride 2, padding 2): the discriminator's convs and the
generator's deconvs, each as its forward op plus the gradients w.r.t. its input and its weights.

    python bench/conv_kernels.py                  # paper scale: ngf = ndf = 128, batch 128
    python bench/conv_kernels.py --scale=small    # ngf = ndf = 64, batch 64
    python bench/conv_kernels.py --backends=numba,c --reps=5 --clock=cpu

Each backend is timed in its own process: the NumPy reference calls numpy's OpenBLAS and the
Numba kernels SciPy's, and two BLAS thread pools spinning in one process slow each other down.
Timings are only meaningful when nothing else uses the CPU; on a shared machine ``--clock=cpu``
(CPU seconds of the process, all BLAS threads together) is the steadier measure.
"""
import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np
import pytensor
import pytensor.tensor as pt

import lib  # noqa: F401  (floatX=float32)
from lib import flags
from lib.backend import ALL
from lib.backend import get_mode
from lib.conv_ops import Conv2d, Conv2dGradInputs, Conv2dGradWeights

SCALES = {"paper": (128, 128), "small": (64, 64)}  # (ngf = ndf, batch)
GEOMETRY = dict(subsample=(2, 2), padding=((2, 2), (2, 2)), conv_mode="conv")


def layers(nf):
    """(name, C_in, C_out, H_in, H_out) of the faces discriminator, then the generator."""
    d_ch = [3, nf, nf * 2, nf * 4, nf * 8]
    d = [(f"D conv{i + 1}", d_ch[i], d_ch[i + 1], 64 >> i, 32 >> i) for i in range(4)]
    g_ch = [nf * 8, nf * 4, nf * 2, nf, 3]
    g = [(f"G deconv{i + 1}", g_ch[i], g_ch[i + 1], 4 << i, 8 << i) for i in range(4)]
    return d + g


def functions(mode):
    """The three Ops compiled once each (shapes are dynamic, so they serve every layer)."""
    X, w, top = pt.tensor4("X"), pt.tensor4("w"), pt.tensor4("top")
    hw = pt.lvector("hw")
    ops = [("conv", [X, w], Conv2d(**GEOMETRY)(X, w)),
           ("grad_inputs", [w, top, hw], Conv2dGradInputs(**GEOMETRY)(w, top, hw)),
           ("grad_weights", [X, top, hw], Conv2dGradWeights(**GEOMETRY)(X, top, hw))]
    out = {}
    for name, ins, o in ops:
        f = pytensor.function(ins, o, mode=mode)
        f.trust_input = True
        out[name] = f
    return out


def calls(name, c_in, c_out, h_in, h_out, batch, rng):
    """(label, op name, args) for one layer's forward op and its two gradients."""
    f32 = np.float32
    hw_in, hw_out, k = np.array([h_in, h_in]), np.array([h_out, h_out]), np.array([5, 5])
    x = rng.standard_normal((batch, c_in, h_in, h_in), dtype=f32)
    y = rng.standard_normal((batch, c_out, h_out, h_out), dtype=f32)
    if name.startswith("D"):  # conv: X (N, C_in) -> (N, C_out), w (C_out, C_in, 5, 5)
        w = rng.standard_normal((c_out, c_in, 5, 5), dtype=f32)
        return [("forward", "conv", (x, w)),
                ("grad X", "grad_inputs", (w, y, hw_in)),
                ("grad w", "grad_weights", (x, y, k))]
    # deconv: X (N, C_in) -> (N, C_out) is the input gradient of a conv C_out -> C_in, whose
    # kernel w has the deconv's layout (C_in, C_out, 5, 5)
    w = rng.standard_normal((c_in, c_out, 5, 5), dtype=f32)
    return [("forward", "grad_inputs", (w, x, hw_out)),
            ("grad X", "conv", (y, w)),
            ("grad w", "grad_weights", (y, x, k))]


def best_time(f, args, reps, clock):
    f(*args)  # warm up (allocations, first-call dispatch)
    times = []
    for _ in range(reps):
        t0 = clock()
        f(*args)
        times.append(clock() - t0)
    return min(times)


def measure(backend, scale, reps, clock, seed):
    """{(layer, op label): seconds} for one backend, in this process."""
    nf, batch = SCALES[scale]
    clock = time.perf_counter if clock == "wall" else time.process_time
    fns = functions(get_mode(backend))
    rng = np.random.default_rng(seed)
    times = {}
    for name, c_in, c_out, h_in, h_out in layers(nf):
        for label, op, args in calls(name, c_in, c_out, h_in, h_out, batch, rng):
            times[f"{name}|{label}"] = best_time(fns[op], args, reps, clock)
    return times


def main():
    p = flags.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scale", choices=sorted(SCALES), default="paper")
    p.add_argument("--backends", default="python,numba")
    p.add_argument("--reps", type=flags.positive_int, default=3)
    p.add_argument("--clock", choices=["wall", "cpu"], default="wall")
    p.add_argument("--seed", type=flags.seed_int, default=0)
    p.add_argument("--worker", help=argparse.SUPPRESS)  # internal: time one backend, print JSON
    a = p.parse_args()
    if a.worker:
        print(json.dumps(measure(a.worker, a.scale, a.reps, a.clock, a.seed)))
        return
    nf, batch = SCALES[a.scale]
    backends = a.backends.split(",")
    unknown = [b for b in backends if b not in ALL]
    if unknown:
        p.error(f"--backends={a.backends}: unknown {', '.join(unknown)} (expected {', '.join(ALL)})")
    print(f"scale={a.scale}: ngf=ndf={nf}, batch {batch}; best of {a.reps}, {a.clock} seconds "
          f"per call; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs", flush=True)
    t = {}
    for b in backends:
        cmd = [sys.executable, __file__, f"--worker={b}"] + sys.argv[1:]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        t[b] = json.loads(out.strip().splitlines()[-1])
    head = f"{'layer':<12} {'shape':<22} {'op':<8}" + "".join(f"{b:>10}" for b in backends)
    if len(backends) == 2:
        head += f"{'speedup':>9}"
    print(head)
    for name, c_in, c_out, h_in, h_out in layers(nf):
        shape = f"{c_in}x{h_in}^2->{c_out}x{h_out}^2"
        for label in ("forward", "grad X", "grad w"):
            key = f"{name}|{label}"
            row = f"{name:<12} {shape:<22} {label:<8}" + "".join(f"{t[b][key]:10.4f}"
                                                                 for b in backends)
            if len(backends) == 2:
                row += f"{t[backends[0]][key] / t[backends[1]][key]:8.1f}x"
            print(row)
            shape = ""
    print(f"{'total':<43}" + "".join(f"{sum(t[b].values()):10.3f}" for b in backends))
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    flags.command(main)
