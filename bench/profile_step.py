"""Where a training update's time goes: a per-op profile of the faces DCGAN's G or D update.

    python bench/profile_step.py --backend=c --scale=small            # PyTensor's ProfileStats
    python bench/profile_step.py --backend=pytorch --scale=small      # torch.profiler
    python bench/profile_step.py --backend=torch-eager --scale=small  # the eager PyTorch yardstick

The model is faces/train_uncond_dcgan.py's ``build`` (bench/torch_reference.py for eager PyTorch);
the time printed first is the mean of ``--calls`` calls after two warm-up calls. For the C,
Numba, JAX and Python backends the profile is PyTensor's own (time per Op class, per Op and per
node, over every call, warm-ups included); for the PyTorch backend and eager PyTorch it is
``torch.profiler``'s table over ``--calls`` more calls, in which the PyTorch backend's fused
Inductor kernels appear by name (``graph_0_cpp_fused_...``).
"""
import importlib.util
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

from lib import flags  # noqa: E402

SCALES = {"tiny": (8, 8), "small": (64, 64), "paper": (128, 128)}  # ngf = ndf, batch


def _data(nbatch):
    r = np.random.RandomState(0)
    X = r.uniform(-1, 1, (nbatch, 3, 64, 64)).astype(np.float32)
    Z = r.uniform(-1, 1, (nbatch, 100)).astype(np.float32)
    return X, Z


def _torch_table(fn, calls, rows):
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(calls):
            fn()
    return prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=rows,
                                     max_name_column_width=70)


def main(argv=None):
    parser = flags.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="c",
                        help="c | numba | jax | pytorch | python | torch-eager")
    parser.add_argument("--scale", choices=sorted(SCALES), default="small")
    parser.add_argument("--update", choices=("g", "d"), default="g")
    parser.add_argument("--calls", type=flags.positive_int, default=3)
    parser.add_argument("--rows", type=flags.positive_int, default=25, help="rows of each table")
    args = parser.parse_args(argv)
    if args.calls < 1:
        parser.error("--calls must be >= 1")
    nf, nbatch = SCALES[args.scale]
    X, Z = _data(nbatch)

    if args.backend in ("pytorch", "torch-eager"):
        if importlib.util.find_spec("torch") is None:
            parser.error(f"--backend={args.backend}: torch is not installed")
        # Inductor's fused kernels named in the profile (read when torch is imported). The
        # instrumented packages must not be kept for training runs: the graph cache is off in
        # this process, so each is compiled into a temporary folder.
        os.environ["TORCHINDUCTOR_CPP_ENABLE_KERNEL_PROFILE"] = "1"
        os.environ["DCGAN_GRAPH_CACHE"] = "0"

    if args.backend == "torch-eager":
        from bench.torch_reference import Reference

        ref = Reference.init(nf, nf)
        fn = (lambda: ref.train_g(X, Z)) if args.update == "g" else (lambda: ref.train_d(X, Z))
    else:
        import pytensor

        import faces.train_uncond_dcgan as model
        from lib import rng
        from lib.backend import ALL, get_mode

        if args.backend not in ALL:
            parser.error(f"--backend={args.backend}: expected one of {', '.join(ALL)}, torch-eager")
        model.ngf = model.ndf = nf
        model.nbatch = nbatch
        rng.set_seed(0)
        gen_params, discrim_params = model.init_params()
        stats = {}
        compile_function = pytensor.function
        if args.backend != "pytorch":
            from pytensor.compile.debug.profiling import ProfileStats

            def function(*a, **kw):  # build() compiles with pytensor.function: profile each
                kw["profile"] = stats[len(stats)] = ProfileStats(atexit_print=False)
                return compile_function(*a, **kw)

            pytensor.function = function
        try:
            _train_g, _train_d, *_ = model.build(gen_params, discrim_params,
                                                 get_mode(args.backend))
        finally:
            pytensor.function = compile_function
        update = _train_g if args.update == "g" else _train_d
        fn = lambda: update(X, Z)  # noqa: E731

    for _ in range(2):  # compile (lazy backends) and warm up
        fn()
    t = time.perf_counter()
    for _ in range(args.calls):
        fn()
    seconds = (time.perf_counter() - t) / args.calls
    print(f"{args.update.upper()} update, backend {args.backend}, scale {args.scale} "
          f"(ngf = ndf = {nf}, batch {nbatch}): {seconds:.3f} s per call over {args.calls}")

    if args.backend in ("pytorch", "torch-eager"):
        print(_torch_table(fn, args.calls, args.rows))
    else:
        profile = stats[0 if args.update == "g" else 1]
        profile.summary(file=sys.stdout, n_ops_to_print=args.rows, n_apply_to_print=args.rows)


if __name__ == "__main__":
    flags.command(main)
