"""Seconds per call of the conv Ops' C code (CVM backend) vs their NumPy ``perform``.

Shapes are the faces paper's (batch 128, 5x5 kernels, stride 2, padding 2): D's convs
3->128 at 64px, 128->256 at 32px, 256->512 at 16px, 512->1024 at 8px; G's deconvs are the same
layers' input gradients run the other way (1024->512 at 4px up to 128->3 at 32px), and both nets'
weight gradients are ``Conv2dGradWeights`` on the same shapes. GFLOP/s counts
2*N*O*C*kh*kw*Ho*Wo per call. "gemm" is np.dot on the Op's GEMM operands (numpy's BLAS, the
floor the C code can reach); "compile" times building the function of the three Ops in a
fresh compiledir (cold: three C++ modules compiled) and again from that cache (warm), each in a
new process.

    python bench/conv_c.py [--batch=128] [--reps=3] [--numpy_reps=1] [--dtype=float32]
    python bench/conv_c.py --layouts    # the weight gradient's GEMM in four operand layouts
"""
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from lib import flags  # noqa: E402

LAYERS = [(3, 128, 64), (128, 256, 32), (256, 512, 16), (512, 1024, 8)]  # D: C -> O at H px
K, S, P = 5, 2, 2

COMPILE_SNIPPET = """
import resource, time, numpy as np, pytensor, pytensor.tensor as pt
from lib.backend import get_mode
from lib.conv_ops import Conv2d, Conv2dGradInputs, Conv2dGradWeights
x = pt.vector('x', dtype='{dtype}')
pytensor.function([x], 2 * x, mode=get_mode('c'))  # PyTensor's own modules: not timed
X, w, top = (pt.tensor4(n, dtype='{dtype}') for n in ('X', 'w', 'top'))
kw = dict(subsample=(2, 2), padding=((2, 2), (2, 2)))
outs = [Conv2d(**kw)(X, w), Conv2dGradInputs(**kw)(w, top, np.array([8, 8])),
        Conv2dGradWeights(**kw)(X, top, np.array([5, 5]))]
def cpu():  # this process and its compiler runs
    return sum(r.ru_utime + r.ru_stime for r in (resource.getrusage(resource.RUSAGE_SELF),
                                                  resource.getrusage(resource.RUSAGE_CHILDREN)))
t0, c0 = time.perf_counter(), cpu()
pytensor.function([X, w, top], outs, mode=get_mode('c'))
print(time.perf_counter() - t0, cpu() - c0)
"""


def best_time(f, reps):
    f()  # warm up: allocations, BLAS threads
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        f()
        best = min(best, time.perf_counter() - t0)
    return best


def compile_times(dtype):
    """((wall, cpu) cold, (wall, cpu) warm) seconds to compile the three Ops, each in a fresh
    process; cpu counts the compiler's processes too (wall depends on what else is running)."""
    root = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory() as d:
        env = dict(os.environ, PYTENSOR_FLAGS=f"base_compiledir={d}")
        out = []
        for _ in range(2):
            r = subprocess.run([sys.executable, "-c", COMPILE_SNIPPET.format(dtype=dtype)],
                               cwd=root, env=env, capture_output=True, text=True, check=True)
            out.append(tuple(float(v) for v in r.stdout.split()[-2:]))
    return tuple(out)


def layouts(N, dt, reps):
    """Time the weight gradient's GEMM dw (O, K) over the long NP = N*Ho*Wo in four layouts.

    The C code uses the first (both operands contiguous along NP), or the second when K > O
    and NP > K. A (64 x 65536) @ (65536 x 75) product in the third form was measured at 1.18 s
    against 16 ms transposed (the 'notes' row below times that shape).
    """
    rng = np.random.default_rng(0)
    shapes = [(C, O, H) for C, O, H in LAYERS] + [("notes", 64, 75, 65536)]
    print(f"weight-gradient GEMM layouts, {dt}: seconds (best of {reps})")
    print(f"{'shape (O, K, NP)':24s} {'topT@cols.T':>12s} {'(cols@topT.T).T':>16s} "
          f"{'topT@colsNP':>12s} {'colsNP.T@topNP':>15s}")
    for shape in shapes:
        if shape[0] == "notes":
            _, O, Kc, NP = shape
        else:
            C, O, H = shape
            Kc, NP = C * K * K, N * (H // S) ** 2
        cols = rng.standard_normal((Kc, NP), dtype=dt)   # (K, NP), as the C code builds it
        topT = rng.standard_normal((O, NP), dtype=dt)
        cols_np, top_np = np.ascontiguousarray(cols.T), np.ascontiguousarray(topT.T)
        ts = [best_time(f, reps) for f in (lambda: np.dot(topT, cols.T),
                                           lambda: np.dot(cols, topT.T).T,
                                           lambda: np.dot(topT, cols_np),
                                           lambda: np.dot(cols_np.T, top_np))]
        print(f"{str((O, Kc, NP)):24s} " + " ".join(f"{t:{w}.3f}" for t, w in
                                                     zip(ts, (12, 16, 12, 15))), flush=True)


def main():
    ap = flags.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=flags.positive_int, default=128)
    ap.add_argument("--reps", type=flags.positive_int, default=3, help="timed calls of the C code (best kept)")
    ap.add_argument("--numpy_reps", type=flags.non_negative_int, default=1, help="timed calls of perform; 0: skip")
    ap.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    ap.add_argument("--no_compile", action="store_true", help="skip the compile-time runs")
    ap.add_argument("--layouts", action="store_true", help="only time the GEMM layouts")
    args = ap.parse_args()
    if args.layouts:
        return layouts(args.batch, args.dtype, args.reps)

    import pytensor
    import pytensor.tensor as pt

    from lib.backend import get_mode
    from lib.conv_ops import Conv2d, Conv2dGradInputs, Conv2dGradWeights

    dt, N = args.dtype, args.batch
    kw = dict(subsample=(S, S), padding=((P, P), (P, P)), conv_mode="conv")
    X, w, top = (pt.tensor4(n, dtype=dt) for n in ("X", "w", "top"))
    hw, k = pt.lvector("hw"), pt.lvector("k")
    graphs = {
        "conv2d": ([X, w], Conv2d(**kw)(X, w)),
        "grad_inputs": ([w, top, hw], Conv2dGradInputs(**kw)(w, top, hw)),
        "grad_weights": ([X, top, k], Conv2dGradWeights(**kw)(X, top, k)),
    }
    fns = {m: {name: pytensor.function(i, o, mode=get_mode(m)) for name, (i, o) in graphs.items()}
           for m in (["c", "python"] if args.numpy_reps else ["c"])}
    for name, f in fns["c"].items():
        assert all(hasattr(th, "cthunk") for th in f.vm.thunks), f"{name}: not C"

    rng = np.random.default_rng(0)
    print(f"batch {N}, {dt}, {K}x{K} kernels, stride {S}, pad {P}; seconds per call (best of "
          f"{args.reps}), GFLOP/s; numpy BLAS threads as numpy configures them")
    print(f"{'layer':24s} {'op':13s} {'C s':>8s} {'GF/s':>7s} {'gemm s':>8s} {'gemm GF/s':>9s}"
          f" {'C/gemm':>7s} {'numpy s':>8s} {'speedup':>8s}")
    for C, O, H in LAYERS:
        Ho = H // S
        Xv = rng.standard_normal((N, C, H, H), dtype=dt)
        wv = (rng.standard_normal((O, C, K, K), dtype=dt) * 0.02).astype(dt)
        tv = rng.standard_normal((N, O, Ho, Ho), dtype=dt)
        flop = 2.0 * N * O * C * K * K * Ho * Ho
        Kc, NP = C * K * K, N * Ho * Ho
        # the GEMM of each Op, with the operands laid out as the C code lays them out
        A_w = wv.reshape(O, Kc)
        cols = rng.standard_normal((Kc, NP), dtype=dt)
        topT = rng.standard_normal((O, NP), dtype=dt)
        P_ = Ho * Ho  # the C code's choices of GEMM form (see lib/c_code/conv.cpp)
        cases = {
            "conv2d": ((Xv, wv), (lambda: np.dot(cols.T, A_w.T)) if O > P_ else
                       (lambda: np.dot(A_w, cols))),
            "grad_inputs": ((wv, tv, [H, H]), lambda: np.dot(A_w.T, topT)),
            "grad_weights": ((Xv, tv, [K, K]), (lambda: np.dot(cols, topT.T)) if O < Kc < NP
                             else (lambda: np.dot(topT, cols.T))),
        }
        for name, (inputs, gemm) in cases.items():
            fc = fns["c"][name]
            tc = best_time(lambda: fc(*inputs), args.reps)
            tg = best_time(gemm, args.reps)
            label = (f"D {C}->{O} @{H}px" if name != "grad_inputs"
                     else f"G {O}->{C} @{Ho}->{H}px")
            line = (f"{label:24s} {name:13s} {tc:8.3f} {flop / tc / 1e9:7.1f} {tg:8.3f} "
                    f"{flop / tg / 1e9:9.1f} {tc / tg:7.2f}")
            if args.numpy_reps:
                fp = fns["python"][name]
                tp = best_time(lambda: fp(*inputs), args.numpy_reps)
                line += f" {tp:8.3f} {tp / tc:7.1f}x"
            print(line, flush=True)
        del Xv, tv, cols, topT
    if not args.no_compile:
        cold, warm = compile_times(dt)
        print(f"compile of the three Ops ({dt}): cold {cold[0]:.2f} s ({cold[1]:.2f} s CPU), "
              f"warm (cached) {warm[0]:.2f} s ({warm[1]:.2f} s CPU)")


if __name__ == "__main__":
    flags.command(main)
