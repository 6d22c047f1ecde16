"""Seconds per training update of the faces DCGAN on each PyTensor backend, against eager PyTorch.

    python bench/train_step.py --scale=small                     # ngf = ndf = 64, batch 64
    python bench/train_step.py --scale=paper                     # ngf = ndf = 128, batch 128
    python bench/train_step.py --scale=small --backends=c,numba --repeats=7 --json=out.json

The model, costs and Adam updates are faces/train_uncond_dcgan.py's ``build`` (64x64 px, 5x5
kernels); the yardstick is the same model in eager PyTorch (bench/torch_reference.py). Every
backend runs in its own subprocesses with a fresh PyTensor compiledir: a first ("cold") process
compiles and times, a second ("warm") one recompiles from the same compiledir. See
bench/README.md for the columns. Timings are only meaningful when nothing else uses the CPU.
"""
import argparse
import json
import os
import platform
import resource
import signal
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

from lib import flags  # noqa: E402

NZ, NC, NPX, K = 100, 3, 64, 5  # the faces model's z size, channels, pixels, kernel size
SCALES = {  # ngf = ndf, batch, default repeats, default backends (None: every installed one)
    "tiny": dict(nf=8, nbatch=8, repeats=1, backends=("python", "numba"), timeout=900),
    "small": dict(nf=64, nbatch=64, repeats=5, backends=None, timeout=2400),
    "paper": dict(nf=128, nbatch=128, repeats=3, backends=None, timeout=5400),
}
TORCH = "torch-eager"
CONV_OPS = ("Conv2d", "Conv2dGradInputs", "Conv2dGradWeights")


# ---------------------------------------------------------------------------------------------
# FLOP model: the convolutions, deconvolutions and dots each compiled function computes
# ---------------------------------------------------------------------------------------------

def flop_model(nf, nbatch, nz=NZ, nc=NC):
    """{'g_update', 'd_update', 'gen'} -> list of (op, FLOPs) the compiled function computes.

    A conv layer's forward, input gradient and weight gradient each cost 2*N*C_in*C_out*k*k*Ho*Wo
    (Ho, Wo: the small side); a deconv is a conv's input gradient (``Conv2dGradInputs``), so its
    input gradient is a ``Conv2d`` and its weight gradient a ``Conv2dGradWeights``. Batchnorm and
    the elementwise ops are not counted.
    """
    n, k2 = nbatch, K * K
    d_layers = [(nc, nf, 32), (nf, 2 * nf, 16), (2 * nf, 4 * nf, 8), (4 * nf, 8 * nf, 4)]
    g_layers = [(8 * nf, 4 * nf, 4), (4 * nf, 2 * nf, 8), (2 * nf, nf, 16), (nf, nc, 32)]
    conv = [2 * n * ci * co * k2 * h * h for ci, co, h in d_layers]
    dconv = [2 * n * ci * co * k2 * h * h for ci, co, h in g_layers]
    g_dot = 2 * n * nz * nf * 8 * 16     # Z @ gw, and its weight gradient
    d_dot = 2 * n * nf * 8 * 16          # h4 @ dwy, and either gradient

    g_fwd = [("Dot", g_dot)] + [("Conv2dGradInputs", f) for f in dconv]
    d_fwd = [("Conv2d", f) for f in conv] + [("Dot", d_dot)]
    g_update = (g_fwd + 2 * d_fwd                                   # G(z), D(G(z)), D(x)
                + [("Dot", d_dot)] + [("Conv2dGradInputs", f) for f in conv]   # back through D
                + [("Dot", g_dot)] + [(op, f) for f in dconv                 # G's gradients
                                      for op in ("Conv2d", "Conv2dGradWeights")])
    d_back = ([("Dot", d_dot)] * 2 + [("Conv2dGradWeights", f) for f in conv]
              + [("Conv2dGradInputs", f) for f in conv[1:]])     # no gradient into x or G(z)
    d_update = g_fwd + 2 * d_fwd + 2 * d_back                    # D(x) and D(G(z)) both
    return {"g_update": g_update, "d_update": d_update, "gen": g_fwd}


def conv_op_counts(ops):
    """{op name: count} of the conv Ops in a list of (op, FLOPs)."""
    return {name: sum(op == name for op, _ in ops) for name in CONV_OPS}


def sgemm_gflops(n=2048, reps=5):
    """Best float32 matrix-product speed of NumPy's BLAS here, GFLOP/s, on n x n matrices."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    a @ b
    best = min(_timed(lambda: a @ b)[0] for _ in range(reps))
    return 2 * n ** 3 / best / 1e9


def _timed(f, *args):
    t = time.perf_counter()
    out = _ready(f(*args))
    return time.perf_counter() - t, out


def _ready(out):
    """``out`` once computed: JAX dispatches asynchronously and returns before it finishes."""
    for o in (out if isinstance(out, (list, tuple)) else [out]):
        if hasattr(o, "block_until_ready"):
            o.block_until_ready()
    return out


def _peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kilobytes


def _data(nbatch, seed=0):
    """A fixed minibatch: images in the model's [-1, 1] and z ~ U(-1, 1) as the original."""
    r = np.random.RandomState(seed)
    X = r.uniform(-1., 1., size=(nbatch, NC, NPX, NPX)).astype(np.float32)
    Z = r.uniform(-1., 1., size=(nbatch, NZ)).astype(np.float32)
    return X, Z


# ---------------------------------------------------------------------------------------------
# Workers: one backend in one process, result written as JSON to --out
# ---------------------------------------------------------------------------------------------

def _float64_variables(f):
    """Names of the float64 variables in compiled function ``f``'s graph."""
    return [str(v) for v in f.maker.fgraph.variables
            if getattr(v.type, "dtype", None) == "float64"]


def _conv_counts(f):
    counts = {name: 0 for name in CONV_OPS}
    for node in f.maker.fgraph.apply_nodes:
        name = type(node.op).__name__
        if name in counts:
            counts[name] += 1
    return counts


def _measure(fns, repeats):
    """Time ``fns`` {name: (f, args)}: the first call, one warm-up call, then ``repeats`` calls.

    The updates alternate G, D as in training. Returns (first, warmup, samples) by name.
    """
    first, warmup = {}, {}
    for name, (f, args) in fns.items():
        first[name], costs = _timed(f, *args)
    for name, (f, args) in fns.items():
        warmup[name], _ = _timed(f, *args)
    samples = {name: [] for name in fns}
    for _ in range(repeats):
        for name, (f, args) in fns.items():
            samples[name].append(_timed(f, *args)[0])
    return first, warmup, samples


def interleaved(ours, theirs, repeats):
    """Ours against eager PyTorch in one process: ``ours`` and ``theirs`` {name: (f, args)}
    with the same names, in rounds of calls that alternate ours, theirs (theirs first on every
    other round): two rounds to warm up, then ``repeats`` timed ones. The ratio of the medians by
    name: a comparison that the machine's drift between processes does not move."""
    samples = {name: ([], []) for name in ours}
    for i in range(2 + repeats):
        for name in ours:
            pair = [(0, ours[name]), (1, theirs[name])]
            for side, (f, args) in (pair if i % 2 == 0 else pair[::-1]):
                seconds = _timed(f, *args)[0]
                if i >= 2:  # after the two warm-up rounds
                    samples[name][side].append(seconds)
    out = {}
    for name, (a, b) in samples.items():
        out[name] = dict(ours_s=float(np.median(a)), torch_s=float(np.median(b)),
                         ratio=float(np.median(a) / np.median(b)), ours_samples_s=a,
                         torch_samples_s=b)
    return out


def _summary(first, warmup, samples, nbatch, result):
    steady = {name: float(np.median(s)) for name, s in samples.items()}
    result.update(
        g_update_s=steady["g_update"], d_update_s=steady["d_update"],
        gen_images_per_s=nbatch / steady["gen"], gen_s=steady["gen"],
        first_call_s=first, warmup_call_s=warmup, samples_s=samples)
    return steady


def worker_pytensor(backend, nf, nbatch, repeats, phase):
    """Compile the faces model's functions on ``backend``; time them unless ``phase='warm'``."""
    import faces.train_uncond_dcgan as m
    from lib import allocator, rng, speed
    from lib.backend import describe_mode, get_mode

    speed.apply(True, backend)  # as the training scripts run by default (lib/speed.py)
    m.ngf = m.ndf = nf
    m.nbatch = nbatch
    rng.set_seed(42)
    gen_params, discrim_params = m.init_params()
    mode = get_mode(backend)
    build_s, fns = _timed(m.build, gen_params, discrim_params, mode)
    _train_g, _train_d, _gen = fns[:3]
    X, Z = _data(nbatch)
    result = dict(backend=backend, describe=describe_mode(backend), phase=phase, build_s=build_s,
                  compiledir=str(_compiledir()), device=_device(backend),
                  keeps_freed_memory=allocator.applied())
    calls = {"g_update": (_train_g, (X, Z)), "d_update": (_train_d, (X, Z)), "gen": (_gen, (Z,))}
    if phase == "warm":  # the compile, the first two calls (lazy backends compile there), and
        # this process's own steady times: the machine's speed drifts between processes
        first, warmup, samples = _measure(calls, repeats)
        result.update(first_call_s=first, warmup_call_s=warmup, peak_rss_mb=_peak_rss_mb(),
                      steady_s={name: float(np.median(s)) for name, s in samples.items()})
        return result

    float64 = {name: _float64_variables(f) for name, (f, _) in calls.items()}
    result["float64_count"] = {name: len(v) for name, v in float64.items()}
    result["float64_examples"] = {name: v[:10] for name, v in float64.items()}
    result["conv_ops"] = {name: _conv_counts(f) for name, (f, _) in calls.items()}
    first, warmup, samples = _measure(calls, repeats)
    _summary(first, warmup, samples, nbatch, result)
    costs = np.asarray(_train_g(X, Z), dtype=np.float64)
    result.update(costs_finite=bool(np.all(np.isfinite(costs))), peak_rss_mb=_peak_rss_mb(),
                  device_peak_mb=_device_peak_mb(result["device"]))
    # Only for the PyTorch backend: the same runtime as eager PyTorch's (ATen, its OpenMP
    # threads). Alternating with another backend would put two thread pools, each spinning
    # for a while after its calls, in one process.
    if backend == "pytorch":
        from bench.torch_reference import Reference

        ref = Reference([p.get_value() for p in gen_params],
                        [p.get_value() for p in discrim_params])
        theirs = {"g_update": (ref.train_g, (X, Z)), "d_update": (ref.train_d, (X, Z)),
                  "gen": (ref.gen, (Z,))}
        result["interleaved"] = interleaved(calls, theirs, repeats)
    return result


def worker_torch(nf, nbatch, repeats, phase, device="auto"):
    """The eager PyTorch reference (bench/torch_reference.py) timed like a backend, on ``device``
    (``'auto'``: CUDA if available; its calls return NumPy arrays or Python floats, so each timed
    call includes the GPU's work)."""
    import torch

    from bench.torch_reference import Reference

    if device == "auto":  # the GPU when torch has one, as JAX uses it on a GPU machine
        device = "cuda" if torch.cuda.is_available() else "cpu"
    ref = Reference.init(nf, nf, nz=NZ, nc=NC, seed=42, device=device)
    X, Z = _data(nbatch)
    calls = {"g_update": (ref.train_g, (X, Z)), "d_update": (ref.train_d, (X, Z)),
             "gen": (ref.gen, (Z,))}
    where = (torch.cuda.get_device_name(ref.device) if ref.device.type == "cuda"
             else f"{torch.get_num_threads()} threads")
    result = dict(backend=TORCH, describe=f"eager PyTorch {torch.__version__}, {where}",
                  phase=phase, device=str(ref.device))
    first, warmup, samples = _measure(calls, repeats)
    _summary(first, warmup, samples, nbatch, result)
    a = torch.randn(2048, 2048, device=ref.device)
    b = torch.randn(2048, 2048, device=ref.device)

    def mm():
        out = torch.mm(a, b)
        if ref.device.type == "cuda":
            torch.cuda.synchronize(ref.device)
        return out

    mm()
    best = min(_timed(mm)[0] for _ in range(5))
    costs = np.asarray(ref.train_g(X, Z), dtype=np.float64)
    result.update(costs_finite=bool(np.all(np.isfinite(costs))),
                  torch_sgemm_gflops=2 * 2048 ** 3 / best / 1e9, peak_rss_mb=_peak_rss_mb())
    if ref.device.type == "cuda":
        result["device_peak_mb"] = torch.cuda.max_memory_allocated(ref.device) / 2 ** 20
    elif _keep_freed_memory():
        # eager PyTorch again, with the allocator setting that lib.backend gives our backends
        # (lib/allocator.py): how much of a difference is the allocator's
        again = result["keeping_freed_memory"] = {}
        _summary(*_measure(calls, repeats), nbatch, again)
        again["peak_rss_mb"] = _peak_rss_mb()
    return result


def _keep_freed_memory():
    """lib/allocator.py's setting, imported only now: the row's peak memory is eager PyTorch's
    own, without PyTensor (which ``lib`` imports)."""
    from lib import allocator

    return allocator.reuse_freed_memory()


def _device(backend):
    """Where ``backend`` computes: JAX's default device (``'gpu'`` with a CUDA jaxlib), else the
    CPU."""
    if backend != "jax":
        return "cpu"
    import jax

    d = jax.devices()[0]
    return d.platform if d.platform == "cpu" else f"{d.platform} ({d.device_kind})"


def _device_peak_mb(device):
    """Peak memory on the GPU that JAX computes on, given ``_device``'s answer (None on the CPU,
    which ``RSS MB`` covers)."""
    if device == "cpu":
        return None
    import jax

    stats = jax.devices()[0].memory_stats() or {}
    peak = stats.get("peak_bytes_in_use")
    return None if peak is None else peak / 2 ** 20


def _compiledir():
    import pytensor

    return pytensor.config.base_compiledir


def run_worker(args):
    nf, nbatch = SCALES[args.scale]["nf"], SCALES[args.scale]["nbatch"]
    if args.worker == TORCH:
        result = worker_torch(nf, nbatch, args.repeats, args.phase, args.torch_device)
    else:
        result = worker_pytensor(args.worker, nf, nbatch, args.repeats, args.phase)
    Path(args.out).write_text(json.dumps(result))


# ---------------------------------------------------------------------------------------------
# Driver: one subprocess per backend and phase, then the table
# ---------------------------------------------------------------------------------------------

def _spawn(backend, phase, args, workdir, timeout):
    """Run one worker; its result dict, or {'error': ...} with the tail of its stderr."""
    out = workdir / f"{backend}-{phase}.json"
    log = workdir / f"{backend}-{phase}.log"
    env = dict(os.environ)
    # PORT: an honest cold compile: every cache a backend writes goes under a fresh directory
    flags = env.get("PYTENSOR_FLAGS", "")
    env["PYTENSOR_FLAGS"] = ",".join(f for f in (flags, f"base_compiledir={workdir / 'pytensor'}")
                                     if f)
    env["NUMBA_CACHE_DIR"] = str(workdir / "numba")
    env["TORCHINDUCTOR_CACHE_DIR"] = str(workdir / "inductor")
    # Inductor precompiles two headers (its C++ wrapper's and its kernels') once per machine, in
    # $TMPDIR/torchinductor_<user>/precompiled_headers whatever the cache dir: a cold compile
    # on a new machine includes them (about 4 s each here), so the worker gets a TMPDIR of its own
    (workdir / "tmp").mkdir(exist_ok=True)
    env["TMPDIR"] = str(workdir / "tmp")
    env.setdefault("TORCHINDUCTOR_COMPILE_THREADS", "1")  # compile workers fight 2 cores
    cmd = [sys.executable, str(Path(__file__).resolve()), f"--scale={args.scale}",
           f"--worker={backend}", f"--phase={phase}", f"--repeats={args.repeats}",
           f"--torch_device={args.torch_device}", f"--out={out}"]
    t = time.perf_counter()
    with open(log, "w") as err:
        proc = subprocess.Popen(cmd, stdout=err, stderr=subprocess.STDOUT, env=env, cwd=ROOT,
                                start_new_session=True)
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            rc = None
        finally:  # timed out, or this driver interrupted: end the worker and its compile helpers
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)  # the process group we started
                proc.wait()
    wall = time.perf_counter() - t
    if rc == 0 and out.exists():
        result = json.loads(out.read_text())
        result["process_s"] = wall
        return result
    tail = log.read_text(errors="replace").strip().splitlines()
    lines = [ln for ln in tail if ln.strip()]
    if rc is None:
        error = f"timed out after {timeout} s"
    else:
        error = next((ln.strip() for ln in reversed(lines) if not ln.startswith(" ")),
                     f"exit status {rc}")
    return dict(backend=backend, phase=phase, error=error, log_tail=lines[-30:], process_s=wall)


def _compile_s(build_s, first, warmup, steady):
    """Compile time: building the functions plus what their first two calls took above steady."""
    extra = sum(max(0., first[n] + warmup[n] - 2 * steady[n]) for n in steady)
    return build_s + extra


def bench_backend(backend, args, timeout):
    """The cold (timed) and warm (recompile) processes of one backend, in a fresh compiledir."""
    workdir = Path(tempfile.mkdtemp(prefix=f"bench-{backend}-"))
    try:
        cold = _spawn(backend, "cold", args, workdir, timeout)
        if backend == TORCH or "error" in cold:
            return cold
        steady = {"g_update": cold["g_update_s"], "d_update": cold["d_update_s"],
                  "gen": cold["gen_s"]}
        cold["compile_cold_s"] = _compile_s(cold["build_s"], cold["first_call_s"],
                                            cold["warmup_call_s"], steady)
        warm = _spawn(backend, "warm", args, workdir, timeout)
        cold["warm"] = warm
        if "error" in warm:
            cold["compile_warm_s"] = None
        else:
            cold["compile_warm_s"] = _compile_s(warm["build_s"], warm["first_call_s"],
                                                warm["warmup_call_s"], warm["steady_s"])
        return cold
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _on_gpu(result):
    return result.get("device", "cpu") != "cpu"


def _fmt(v, spec):
    return format("-", spec.split(".")[0].rstrip("d")) if v is None else format(v, spec)


def table(report):
    """The report as a short text table."""
    cfg, roof = report["config"], report["roofline"]
    res = report["results"]
    lines = [
        f"faces DCGAN, scale={cfg['scale']}: ngf=ndf={cfg['ngf']}, batch {cfg['nbatch']}, "
        f"{NPX}x{NPX} px, {K}x{K} kernels; median of {cfg['repeats']} calls after warm-up",
        f"machine: {report['machine']['cpus']} CPUs, load average {report['machine']['load_start']:.1f}"
        f" at start, {report['machine']['load_end']:.1f} at end (timings are noisy on a busy machine)",
        f"roofline: NumPy sgemm {roof['sgemm_gflops']:.0f} GFLOP/s; G update "
        f"{roof['g_update_gflop']:.1f} GFLOP -> floor {roof['g_floor_s']:.3f} s; D update "
        f"{roof['d_update_gflop']:.1f} GFLOP -> floor {roof['d_floor_s']:.3f} s",
        "",
        f"{'backend':<12} {'G s':>7} {'D s':>7} {'G/torch':>7} {'D/torch':>7} {'gen img/s':>9} "
        f"{'cold s':>7} {'warm s':>7} {'RSS MB':>7} {'f64':>4} {'G roof':>6} {'D roof':>6}",
    ]
    for name, r in res.items():
        if "error" in r:
            lines.append(f"{name:<12} error: {r['error'][:140]}")
            continue
        f64 = sum(r["float64_count"].values()) if "float64_count" in r else None
        lines.append(
            f"{name:<12} {r['g_update_s']:>7.3f} {r['d_update_s']:>7.3f} "
            f"{_fmt(r.get('g_vs_torch'), '>7.2f')} {_fmt(r.get('d_vs_torch'), '>7.2f')} "
            f"{r['gen_images_per_s']:>9.0f} {_fmt(r.get('compile_cold_s'), '>7.1f')} "
            f"{_fmt(r.get('compile_warm_s'), '>7.1f')} {r['peak_rss_mb']:>7.0f} "
            f"{_fmt(f64, '>4d')} {r['g_roofline_pct']:>5.0f}% {r['d_roofline_pct']:>5.0f}%")
    for name, r in res.items():
        if "error" not in r and _on_gpu(r):
            peak = r.get("device_peak_mb")
            lines.append(f"{name} ran on the GPU ({r['describe']}"
                         + (f", peak GPU memory {peak:.0f} MB" if peak else "")
                         + "); its roofline column is against this machine's CPU sgemm")
    k = res.get(TORCH, {}).get("keeping_freed_memory")
    if k:
        lines.append(
            f"eager PyTorch keeping freed memory as our backends do (lib/allocator.py), in its "
            f"own process after its row's calls: G {k['g_update_s']:.3f} s, D "
            f"{k['d_update_s']:.3f} s, gen {k['gen_images_per_s']:.0f} img/s, peak RSS "
            f"{k['peak_rss_mb']:.0f} MB")
    for name, r in res.items():
        if "interleaved" in r:
            i = r["interleaved"]
            lines.append(
                f"{name} and eager PyTorch alternating in one process, median of "
                f"{len(i['g_update']['ours_samples_s'])} calls each: G "
                f"{i['g_update']['ours_s']:.3f} / {i['g_update']['torch_s']:.3f} s = "
                f"{i['g_update']['ratio']:.2f}x, D {i['d_update']['ours_s']:.3f} / "
                f"{i['d_update']['torch_s']:.3f} s = {i['d_update']['ratio']:.2f}x, gen "
                f"{i['gen']['ratio']:.2f}x the time")
    return "\n".join(lines)


def _check_cuda(parser):
    """``--torch_device=cuda`` needs torch with a CUDA device."""
    import importlib.util

    if importlib.util.find_spec("torch") is None:
        parser.error("--torch_device=cuda: torch is not installed")
    import torch

    if not torch.cuda.is_available():
        parser.error("--torch_device=cuda: this torch finds no CUDA device (expected auto or cpu)")


def main(argv=None):
    p = flags.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scale", choices=list(SCALES), default="small", metavar="{small,paper}",
                   help="small: ngf=ndf=64, batch 64; paper: ngf=ndf=128, batch 128")
    p.add_argument("--backends", default=None,
                   help="comma-separated PyTensor backends (default: every installed one of "
                        "c, numba, jax, pytorch; 'none': eager PyTorch only); eager PyTorch "
                        "always runs when installed")
    p.add_argument("--repeats", type=flags.positive_int, default=None, help="timed calls per function")
    p.add_argument("--json", default=None, type=flags.output_file, help="write the full results here")
    p.add_argument("--timeout", type=flags.positive_float, default=None, help="seconds per backend process")
    p.add_argument("--torch_device", default="auto", choices=("auto", "cpu", "cuda"),
                   help="where eager PyTorch runs (auto: the GPU when torch has CUDA, as JAX "
                        "does on a GPU machine; the PyTensor backends other than JAX run on the "
                        "CPU)")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--phase", default="cold", help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    scale = SCALES[args.scale]
    if args.repeats is None:
        args.repeats = scale["repeats"]
    if args.repeats < 1:
        p.error("--repeats must be at least 1")
    if args.torch_device == "cuda" and not args.worker:
        _check_cuda(p)
    if args.worker:
        return run_worker(args)
    # a terminated driver unwinds (and ends its worker) instead of leaving it running
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    from lib.backend import ALL, BACKENDS, available

    if args.backends == "none":
        backends = []
    elif args.backends:
        backends = [b.strip().lower() for b in args.backends.split(",") if b.strip()]
        unknown = [b for b in backends if b not in ALL]
        if unknown:
            p.error(f"--backends: unknown {', '.join(unknown)} (expected {', '.join(ALL)})")
    else:
        backends = list(scale["backends"] or BACKENDS)
    timeout = args.timeout or scale["timeout"]
    nf, nbatch = scale["nf"], scale["nbatch"]

    load_start = os.getloadavg()[0]
    gflops = sgemm_gflops()
    model = flop_model(nf, nbatch)
    flops = {name: sum(f for _, f in ops) for name, ops in model.items()}
    report = dict(
        config=dict(scale=args.scale, ngf=nf, ndf=nf, nbatch=nbatch, npx=NPX, nz=NZ,
                    kernel=K, repeats=args.repeats),
        machine=dict(cpus=os.cpu_count(), platform=platform.platform(),
                     python=platform.python_version(), load_start=load_start),
        roofline=dict(sgemm_gflops=gflops, g_update_gflop=flops["g_update"] / 1e9,
                      d_update_gflop=flops["d_update"] / 1e9, gen_gflop=flops["gen"] / 1e9,
                      g_floor_s=flops["g_update"] / (gflops * 1e9),
                      d_floor_s=flops["d_update"] / (gflops * 1e9),
                      conv_ops=({n: conv_op_counts(ops) for n, ops in model.items()})),
        results={},
    )
    import importlib.util
    names = ([TORCH] if importlib.util.find_spec("torch") else []) + backends
    for name in names:
        if name != TORCH and not available(name):
            report["results"][name] = dict(backend=name, error="not installed")
            continue
        print(f"[bench] {name} ...", file=sys.stderr, flush=True)
        r = bench_backend(name, args, timeout)
        report["results"][name] = r
        msg = r.get("error") or f"G {r['g_update_s']:.3f} s, D {r['d_update_s']:.3f} s"
        print(f"[bench] {name}: {msg} ({r['process_s']:.0f} s)", file=sys.stderr, flush=True)
    report["machine"]["load_end"] = os.getloadavg()[0]
    derive(report)
    print(table(report))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))
    return report


def derive(report):
    """Add each result's roofline percentages and its ratios to eager PyTorch's times."""
    ref = report["results"].get(TORCH, {})
    for name, r in report["results"].items():
        if "error" in r:
            continue
        r["g_roofline_pct"] = 100 * report["roofline"]["g_floor_s"] / r["g_update_s"]
        r["d_roofline_pct"] = 100 * report["roofline"]["d_floor_s"] / r["d_update_s"]
        if "conv_ops" in r:
            r["flop_model_matches_graph"] = r["conv_ops"] == report["roofline"]["conv_ops"]
        # ratios only between runs on the same kind of device (JAX on a GPU and eager PyTorch
        # on CUDA; the CPU backends and eager PyTorch on the CPU)
        if name != TORCH and ref and "error" not in ref and _on_gpu(r) == _on_gpu(ref):
            r["g_vs_torch"] = r["g_update_s"] / ref["g_update_s"]
            r["d_vs_torch"] = r["d_update_s"] / ref["d_update_s"]
            r["gen_vs_torch"] = ref["gen_images_per_s"] / r["gen_images_per_s"]


if __name__ == "__main__":
    flags.command(main)
