"""Candidate linkers for the PyTorch backend, measured on the faces DCGAN's training functions.

    python bench/pytorch_linkers.py --scale=small
    python bench/pytorch_linkers.py --scale=paper --candidates=aoti,fx --json=out.json

Candidates (each a PyTensor JIT linker over the same generated Python function and kernels):

- ``aoti``: lib/dispatch/pytorch_linker.py, ``torch.export`` + AOTInductor, packages cached;
- ``eager``: the generated function called as it is (no compile, no recompile per shape);
- ``dynamo``: PyTensor's own ``PytorchLinker`` (``torch.compile`` of the generated function);
- ``fx``: the linker this project had before (``make_fx`` + Inductor's ``compile_fx``, with its
  compiled libraries called directly), read from git at ``--fx_rev``. It uses private torch
  internals, which is why it was replaced; it is measured here only as the reference.

For each candidate, two processes with caches of their own: a cold one (empty caches) and a
warm one (the caches the cold one left). Compile = building the three functions plus their first
calls, less the median of three steady calls each. Then one process builds every candidate and
times the G update, the D update and sampling in rounds, the candidates' order rotating each
round, so that the machine's drift between processes does not move the comparison. Timings are
only meaningful on an otherwise idle machine; the load average is reported.
"""
import argparse
import json
import os
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

SCALES = {"tiny": (8, 8), "small": (64, 64), "paper": (128, 128)}  # ngf = ndf, batch
CANDIDATES = ("aoti", "eager", "dynamo", "fx")
FX_REV = "fa576a6"  # the last commit with the make_fx linker


def _fx_linker_class(rev, workdir):
    """The ``FxPytorchLinker`` class of lib/dispatch/pytorch_linker.py at git revision ``rev``."""
    import importlib.util

    path = Path(workdir) / "fx_pytorch_linker.py"
    if not path.exists():
        source = subprocess.run(["git", "-C", str(ROOT), "show",
                                 f"{rev}:lib/dispatch/pytorch_linker.py"],
                                check=True, capture_output=True, text=True).stdout
        path.write_text(source)
    spec = importlib.util.spec_from_file_location("fx_pytorch_linker", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.FxPytorchLinker


def make_mode(candidate, fx_rev, workdir):
    """A PyTensor mode for ``candidate``: PyTensor's PYTORCH rewrites plus ours, that linker."""
    from pytensor.compile.mode import Mode
    from pytensor.compile.mode import get_mode as pytensor_get_mode
    from pytensor.link.pytorch.linker import PytorchLinker

    from lib import backend, graph_cache
    from lib.dispatch.pytorch_linker import AotPytorchLinker

    backend.register("pytorch")

    class EagerLinker(PytorchLinker):
        def jit_compile(self, fn):
            import torch
            from pytensor.link.pytorch.dispatch import pytorch_typify

            self.gen_functors = []

            def call(*inputs):
                with torch.no_grad():
                    outs = fn(*(pytorch_typify(x) for x in inputs))
                return tuple(out.cpu().numpy() for out in outs)

            return call

    linker = {"aoti": AotPytorchLinker, "eager": EagerLinker, "dynamo": PytorchLinker,
              "fx": lambda: _fx_linker_class(fx_rev, workdir)()}[candidate]()
    optimizer = pytensor_get_mode("PYTORCH").provided_optimizer
    return graph_cache.cached(Mode(linker=linker, optimizer=optimizer).including("pytorch"))


def build(candidate, nf, nbatch, fx_rev, workdir):
    """The faces model's G update, D update and sampler on ``candidate``, and their inputs."""
    import faces.train_uncond_dcgan as m
    from lib import rng, speed

    speed.apply(True, "pytorch")  # as the training scripts run by default (lib/speed.py)
    m.ngf = m.ndf = nf
    m.nbatch = nbatch
    rng.set_seed(42)
    gen_params, discrim_params = m.init_params()
    t = time.perf_counter()
    fns = m.build(gen_params, discrim_params, make_mode(candidate, fx_rev, workdir))
    build_s = time.perf_counter() - t
    r = np.random.RandomState(0)
    X = r.uniform(-1., 1., size=(nbatch, 3, 64, 64)).astype(np.float32)
    Z = r.uniform(-1., 1., size=(nbatch, 100)).astype(np.float32)
    return build_s, {"g_update": (fns[0], (X, Z)), "d_update": (fns[1], (X, Z)),
                     "gen": (fns[2], (Z,))}


def _timed(f, args):
    t = time.perf_counter()
    out = f(*args)
    return time.perf_counter() - t, out


def worker_compile(args):
    """Compile time of one candidate in this process (cold or warm, as the caches are)."""
    build_s, calls = build(args.worker, *SCALES[args.scale], args.fx_rev, args.workdir)
    first = {name: _timed(f, a)[0] for name, (f, a) in calls.items()}
    steady = {name: [] for name in calls}
    for _ in range(3):
        for name, (f, a) in calls.items():
            steady[name].append(_timed(f, a)[0])
    steady = {name: float(np.median(s)) for name, s in steady.items()}
    costs = [float(np.asarray(c)) for c in calls["g_update"][0](*calls["g_update"][1])]
    return dict(build_s=build_s, first_s=first, steady_s=steady, g_costs=costs,
                compile_s=build_s + sum(first[k] - steady[k] for k in first))


def worker_alternate(args):
    """Every candidate built in this process, then timed in rotating rounds."""
    built = {c: build(c, *SCALES[args.scale], args.fx_rev, args.workdir)[1]
             for c in args.candidates}
    names = ("g_update", "d_update", "gen")
    samples = {c: {n: [] for n in names} for c in built}
    order = list(built)
    for i in range(2 + args.rounds):  # two rounds to warm up
        for c in order:
            for n in names:
                f, a = built[c][n]
                seconds = _timed(f, a)[0]
                if i >= 2:
                    samples[c][n].append(seconds)
        order = order[1:] + order[:1]
    return {c: {n: dict(median_s=float(np.median(s)), samples_s=s) for n, s in by.items()}
            for c, by in samples.items()}


def _spawn(argv, env, timeout):
    out = Path(tempfile.mkstemp(suffix=".json")[1])
    cmd = [sys.executable, str(Path(__file__).resolve()), *argv, f"--out={out}"]
    proc = subprocess.run(cmd, env=env, timeout=timeout, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = [ln for ln in proc.stderr.splitlines() if ln.strip()][-3:]
        return {"error": " | ".join(tail)}
    return json.loads(out.read_text())


def _env(cache):
    env = dict(os.environ)
    cache.mkdir(parents=True, exist_ok=True)
    flags = env.get("PYTENSOR_FLAGS", "")
    env["PYTENSOR_FLAGS"] = ",".join(f for f in (flags, f"base_compiledir={cache / 'pytensor'}")
                                     if f)
    env["TORCHINDUCTOR_CACHE_DIR"] = str(cache / "inductor")
    (cache / "tmp").mkdir(exist_ok=True)
    env["TMPDIR"] = str(cache / "tmp")  # Inductor's precompiled headers live under $TMPDIR
    env.setdefault("TORCHINDUCTOR_COMPILE_THREADS", "1")  # compile workers fight few cores
    return env


def main(argv=None):
    p = flags.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scale", choices=list(SCALES), default="small")
    p.add_argument("--candidates", default=",".join(CANDIDATES),
                   help=f"comma-separated, of {', '.join(CANDIDATES)}")
    p.add_argument("--rounds", type=flags.positive_int, default=5, help="timed rounds in the alternating run")
    p.add_argument("--fx_rev", default=FX_REV, help="git revision holding the fx linker")
    p.add_argument("--parts", default="compile,steady",
                   help="compile (the cold and warm processes), steady (the alternating run)")
    p.add_argument("--timeout", type=flags.positive_float, default=3600, help="seconds per process")
    p.add_argument("--json", default=None, type=flags.output_file, help="write the results here")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--workdir", help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.candidates = [c for c in args.candidates.split(",") if c]
    unknown = sorted(set(args.candidates) - set(CANDIDATES))
    if unknown or not args.candidates:
        p.error(f"--candidates: expected names of {', '.join(CANDIDATES)}, got "
                f"{', '.join(unknown) or 'none'}")
    args.parts = set(args.parts.split(","))
    if not args.parts or args.parts - {"compile", "steady"}:
        p.error("--parts: expected compile, steady or both, comma-separated")
    if args.rounds < 1:
        p.error(f"--rounds={args.rounds}: expected at least 1")
    if args.worker:
        result = worker_alternate(args) if args.worker == "alternate" else worker_compile(args)
        Path(args.out).write_text(json.dumps(result))
        return

    report = dict(scale=args.scale, ngf_ndf_batch=SCALES[args.scale],
                  load_at_start=os.getloadavg()[0], compile={}, steady={})
    with tempfile.TemporaryDirectory(prefix="dcgan-linkers-") as work:
        common = [f"--scale={args.scale}", f"--fx_rev={args.fx_rev}", f"--workdir={work}"]
        if "compile" in args.parts:
            for c in args.candidates:
                env = _env(Path(work) / c)
                for phase in ("cold", "warm"):
                    print(f"[linkers] {c} {phase} ...", flush=True)
                    report["compile"].setdefault(c, {})[phase] = r = _spawn(
                        [*common, f"--worker={c}"], env, args.timeout)
                    print(f"[linkers] {c} {phase}: "
                          f"{r.get('error') or '%.1f s' % r['compile_s']}", flush=True)
        if "steady" in args.parts:
            print("[linkers] alternating ...", flush=True)
            report["steady"] = _spawn([*common, "--worker=alternate", f"--rounds={args.rounds}",
                                       f"--candidates={','.join(args.candidates)}"],
                                      _env(Path(work) / "alternate"), args.timeout)
    report["load_at_end"] = os.getloadavg()[0]
    print(table(report))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))


def table(report):
    lines = [f"faces DCGAN, scale={report['scale']} (ngf=ndf, batch: "
             f"{report['ngf_ndf_batch']}); load average {report['load_at_start']:.1f} at start, "
             f"{report['load_at_end']:.1f} at end",
             f"{'candidate':<10}{'cold s':>8}{'warm s':>8}{'G s':>8}{'D s':>8}{'gen s':>8}"
             f"{'G/fx':>7}{'D/fx':>7}{'gen/fx':>7}"]
    steady = report["steady"]
    if "error" in steady:
        lines.append(f"alternating run failed: {steady['error']}")
        steady = {}
    ref = steady.get("fx")
    for c in dict.fromkeys([*report["compile"], *steady]):
        comp = report["compile"].get(c, {})
        cells = [f"{c:<10}"]
        for phase in ("cold", "warm"):
            r = comp.get(phase, {})
            cells.append(f"{r['compile_s']:>8.1f}" if "compile_s" in r else f"{'-':>8}")
        s = steady.get(c)
        for n in ("g_update", "d_update", "gen"):
            cells.append(f"{s[n]['median_s']:>8.3f}" if s else f"{'-':>8}")
        for n in ("g_update", "d_update", "gen"):
            cells.append(f"{s[n]['median_s'] / ref[n]['median_s']:>7.3f}" if s and ref
                         else f"{'-':>7}")
        lines.append("".join(cells))
    for c, comp in report["compile"].items():
        for phase, r in comp.items():
            if "error" in r:
                lines.append(f"{c} {phase}: {r['error']}")
    return "\n".join(lines)


if __name__ == "__main__":
    flags.command(main)
