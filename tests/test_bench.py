"""bench/: the eager PyTorch reference computes what the PyTensor faces model computes, and
bench/train_step.py runs end to end (at a hidden tiny scale)."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest

torch = pytest.importorskip("torch")

import faces.train_uncond_dcgan as faces_model  # noqa: E402
from bench import torch_reference  # noqa: E402
from bench.torch_reference import Reference  # noqa: E402
from bench import train_step  # noqa: E402
from bench.train_step import conv_op_counts, flop_model  # noqa: E402
from lib import rng  # noqa: E402
from lib.backend import get_mode  # noqa: E402
from lib.ops import deconv, dnn_conv  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TINY = dict(ngf=8, ndf=8, nbatch=8)
LR = 0.0002


@pytest.fixture(scope="module")
def tiny_model():
    """The faces model at ngf = ndf = 8, batch 8: (gen_params, discrim_params, functions)."""
    saved = {k: getattr(faces_model, k) for k in TINY}
    for k, v in TINY.items():
        setattr(faces_model, k, v)
    try:
        rng.set_seed(7)
        gen_params, discrim_params = faces_model.init_params()
        functions = faces_model.build(gen_params, discrim_params, get_mode("python"))
    finally:
        for k, v in saved.items():
            setattr(faces_model, k, v)
    return gen_params, discrim_params, functions


def _values(params):
    return [p.get_value() for p in params]


def _data(seed):
    r = np.random.RandomState(seed)
    X = r.uniform(-1, 1, (TINY["nbatch"], 3, 64, 64)).astype(np.float32)
    Z = r.uniform(-1, 1, (TINY["nbatch"], 100)).astype(np.float32)
    return X, Z


@pytest.mark.parametrize("layer", ["conv", "deconv"])
def test_torch_needs_flipped_kernels(layer):
    """Our (true) convolutions equal torch's cross-correlations with kernels flipped, not as is."""
    r = np.random.RandomState(0 if layer == "conv" else 1)
    w = r.standard_normal((4, 3, 5, 5)).astype(np.float32)  # deconv: (C_in, C_out, k, k)
    x = r.standard_normal((2, 3 if layer == "conv" else 4, 8, 8)).astype(np.float32)
    X, W = pt.tensor4("X"), pt.tensor4("W")
    ours_op = dnn_conv if layer == "conv" else deconv
    ours = pytensor.function([X, W], ours_op(X, W, subsample=(2, 2), border_mode=(2, 2)),
                             mode=get_mode("python"))(x, w)
    theirs = {"conv": torch_reference.conv, "deconv": torch_reference.deconv}[layer]
    flipped = theirs(torch.tensor(x), torch.tensor(np.ascontiguousarray(w[:, :, ::-1, ::-1])))
    as_is = theirs(torch.tensor(x), torch.tensor(w))
    assert ours.shape == tuple(flipped.shape) == ((2, 4, 4, 4) if layer == "conv" else (2, 3, 16, 16))
    np.testing.assert_allclose(flipped.numpy(), ours, rtol=1e-5, atol=1e-5)
    assert np.abs(as_is.numpy() - ours).max() > 0.5


def test_reference_equals_port(tiny_model):
    """Same samples, costs and parameters after one G update and one D update (float32)."""
    gen_params, discrim_params, (_train_g, _train_d, _gen, *_) = tiny_model
    g0, d0 = _values(gen_params), _values(discrim_params)
    ref = Reference(g0, d0)
    X, Z = _data(3)
    np.testing.assert_allclose(ref.gen(Z), _gen(Z), rtol=1e-4, atol=1e-5)
    assert np.abs(Reference(g0, d0, flip=False).gen(Z) - _gen(Z)).max() > 0.1

    for update, ours_f, theirs_f in (("G", _train_g, ref.train_g), ("D", _train_d, ref.train_d)):
        before = _values(gen_params) + _values(discrim_params)
        np.testing.assert_allclose(theirs_f(X, Z), np.asarray(ours_f(X, Z)), rtol=1e-5,
                                   err_msg=f"costs of the {update} update")
        theirs_g, theirs_d = ref.export()
        for p, b, t in zip(gen_params + discrim_params, before, theirs_g + theirs_d):
            ours = p.get_value()
            moved = update == "G" if p in gen_params else update == "D"
            # Adam's first steps are ~lr per element: compare the steps, to 1% of lr
            np.testing.assert_allclose(t - b, ours - b, rtol=0, atol=0.01 * LR,
                                       err_msg=f"{p.name} after the {update} update")
            assert (np.abs(ours - b).max() > 0.5 * LR) == moved, p.name


@pytest.mark.parametrize("backend", [pytest.param("c", marks=pytest.mark.slow), "torch-eager"])
def test_profile_step_prints_a_profile(backend, capsys, monkeypatch):
    from bench import profile_step

    profile_step.main([f"--backend={backend}", "--scale=tiny", "--calls=1", "--rows=40"])
    out = capsys.readouterr().out
    assert f"G update, backend {backend}, scale tiny (ngf = ndf = 8, batch 8)" in out
    # the conv Ops (PyTensor's profile) or ATen's convolutions (torch.profiler) are listed
    assert ("lib.conv_ops.Conv2d" in out) if backend == "c" else ("aten::convolution" in out)


def test_profile_step_bad_backend_is_one_line_error(capsys):
    from bench import profile_step

    with pytest.raises(SystemExit) as exc:
        profile_step.main(["--backend=tpu", "--scale=tiny"])
    assert exc.value.code == 2
    assert capsys.readouterr().err.startswith("error: --backend=tpu: expected one of")


def test_flop_model_counts():
    """The FLOP model's op counts (checked against compiled graphs by the bench) and sizes."""
    model = flop_model(nf=64, nbatch=64)
    assert conv_op_counts(model["g_update"]) == dict(Conv2d=12, Conv2dGradInputs=8,
                                                     Conv2dGradWeights=4)
    assert conv_op_counts(model["d_update"]) == dict(Conv2d=8, Conv2dGradInputs=10,
                                                     Conv2dGradWeights=8)
    # D's last conv at batch 64: 2 * 64 * 256 * 512 * 25 * 4 * 4 FLOPs
    assert ("Conv2d", 2 * 64 * 256 * 512 * 25 * 16) in model["d_update"]
    # doubling the width quadruples the conv FLOPs (all but the 3-channel layers)
    assert 3.5 < sum(f for _, f in flop_model(128, 64)["g_update"]) / \
        sum(f for _, f in model["g_update"]) < 4


def _run_bench(tmp_path, *flags):
    out = tmp_path / "bench.json"
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "train_step.py"), "--scale=tiny",
                           f"--json={out}", *flags], capture_output=True, text=True,
                          cwd=tmp_path, timeout=3600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["config"]["ngf"] == 8 and report["config"]["nbatch"] == 8
    assert report["roofline"]["sgemm_gflops"] > 0
    assert report["roofline"]["g_floor_s"] > 0 and report["roofline"]["d_floor_s"] > 0
    for name, r in report["results"].items():
        assert "error" not in r, (name, r.get("error"), r.get("log_tail"))
        for key in ("g_update_s", "d_update_s", "gen_images_per_s", "peak_rss_mb",
                    "g_roofline_pct", "d_roofline_pct"):
            assert r[key] > 0, (name, key)
        assert r["costs_finite"]
        assert name in proc.stdout
        if name != "torch-eager":  # warm: against the warm process's own steady times
            w = r["warm"]
            assert set(w["steady_s"]) == {"g_update", "d_update", "gen"}
            assert r["compile_warm_s"] == pytest.approx(train_step._compile_s(
                w["build_s"], w["first_call_s"], w["warmup_call_s"], w["steady_s"]))
    return report, proc.stdout


def test_bench_driver_runs(tmp_path):
    """The driver, its subprocess, the JSON and the table, with eager PyTorch only (quick)."""
    report, _ = _run_bench(tmp_path, "--backends=none")
    assert list(report["results"]) == ["torch-eager"]
    # --torch_device=auto: the GPU only where torch has CUDA
    expected = "cuda:0" if torch.cuda.is_available() else "cpu"
    assert report["results"]["torch-eager"]["device"] in (expected, expected.split(":")[0])


def test_bench_torch_device_cuda_without_cuda_is_one_line_error():
    if torch.cuda.is_available():
        pytest.skip("this torch has CUDA")
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "train_step.py"),
                           "--torch_device=cuda"], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].endswith(
        "error: --torch_device=cuda: this torch finds no CUDA device (expected auto or cpu)")


def _result(device, g, d, img_s, **extra):
    return dict(device=device, g_update_s=g, d_update_s=d, gen_images_per_s=img_s,
                peak_rss_mb=1000., describe=f"on {device}", **extra)


def test_ratios_only_between_runs_on_the_same_kind_of_device():
    """JAX on a GPU is compared with eager PyTorch on CUDA, never with PyTorch on the CPU; the
    table says which rows ran on the GPU and their peak GPU memory."""
    roof = dict(sgemm_gflops=250., g_floor_s=1.0, d_floor_s=2.0, g_update_gflop=250.,
                d_update_gflop=500., conv_ops={})
    cfg = dict(scale="paper", ngf=128, nbatch=128, repeats=3)
    machine = dict(cpus=2, load_start=0.5, load_end=0.7)
    gpu_jax = _result("gpu (NVIDIA H200)", 0.05, 0.08, 20000., device_peak_mb=4096.)
    report = dict(config=cfg, roofline=roof, machine=machine, results={
        "torch-eager": _result("cuda:0", 0.1, 0.1, 10000.), "jax": gpu_jax,
        "pytorch": _result("cpu", 4.0, 4.0, 200.)})
    train_step.derive(report)
    res = report["results"]
    assert (res["jax"]["g_vs_torch"], res["jax"]["d_vs_torch"]) == pytest.approx((0.5, 0.8))
    assert res["jax"]["gen_vs_torch"] == 0.5
    assert "g_vs_torch" not in res["pytorch"]  # CPU against CUDA: no ratio
    assert res["jax"]["g_roofline_pct"] == pytest.approx(2000.)
    text = train_step.table(report)
    assert "jax ran on the GPU (on gpu (NVIDIA H200), peak GPU memory 4096 MB)" in text
    assert "torch-eager ran on the GPU (on cuda:0)" in text
    assert "pytorch ran on the GPU" not in text
    # everything on the CPU: every backend has its ratios
    report["results"] = {"torch-eager": _result("cpu", 4.0, 5.0, 200.),
                         "pytorch": _result("cpu", 3.0, 5.0, 400.)}
    train_step.derive(report)
    r = report["results"]["pytorch"]
    assert (r["g_vs_torch"], r["d_vs_torch"], r["gen_vs_torch"]) == (0.75, 1.0, 0.5)


def test_reference_runs_where_it_is_told_and_returns_numpy(tiny_model):
    """``device``: the parameters live there; inputs and outputs are NumPy either way."""
    gen_params, discrim_params, _ = tiny_model
    ref = Reference(_values(gen_params), _values(discrim_params), device="cpu")
    assert all(p.device.type == "cpu" for p in ref.gen_params + ref.discrim_params)
    X, Z = _data(3)
    assert isinstance(ref.gen(Z), np.ndarray) and ref.gen(Z).shape == (8, 3, 64, 64)
    assert all(isinstance(c, float) for c in ref.train_g(X, Z))
    with pytest.raises(RuntimeError, match="device"):
        Reference(_values(gen_params), _values(discrim_params), device="nodevice")


@pytest.mark.slow  # cold Numba compiles and the Python backend: minutes on 2 cores
def test_bench_runs_end_to_end(tmp_path):
    """Every column of the tiny scale's default backends: Python and Numba."""
    report, _ = _run_bench(tmp_path)
    assert list(report["results"]) == ["torch-eager", "python", "numba"]
    for name, r in report["results"].items():
        if name != "torch-eager":
            assert r["compile_cold_s"] > 0 and r["compile_warm_s"] > 0
            assert r["g_vs_torch"] > 0 and r["d_vs_torch"] > 0
            assert r["float64_count"] == dict(g_update=0, d_update=0, gen=0), \
                r["float64_examples"]
            assert r["flop_model_matches_graph"], r["conv_ops"]


def test_interleaved_alternates_and_drops_the_warm_up_rounds(monkeypatch):
    """Calls alternate ours, theirs by name, theirs first on every other round; the two warm-up
    rounds are not timed; the ratio is of the medians. A fake clock: each call takes the
    seconds its function is given, plus 10 s on a warm-up round (which must not count)."""
    calls = []

    def timed(f, *args):
        calls.append(f.__name__)
        return f() + (10. if len(calls) <= 2 * 4 else 0.), None  # 4 calls a round

    def fn(name, seconds):
        f = lambda: seconds  # noqa: E731
        f.__name__ = name
        return f

    monkeypatch.setattr(train_step, "_timed", timed)
    ours = {"g_update": (fn("ours_g", 1.0), ()), "gen": (fn("ours_gen", 3.0), ())}
    theirs = {"g_update": (fn("torch_g", 2.0), ()), "gen": (fn("torch_gen", 2.0), ())}
    out = train_step.interleaved(ours, theirs, repeats=3)
    rounds = [calls[i:i + 4] for i in range(0, len(calls), 4)]
    assert len(rounds) == 5
    assert rounds[0] == rounds[2] == rounds[4] == ["ours_g", "torch_g", "ours_gen", "torch_gen"]
    assert rounds[1] == rounds[3] == ["torch_g", "ours_g", "torch_gen", "ours_gen"]
    assert out["g_update"]["ours_samples_s"] == [1.0, 1.0, 1.0]
    assert (out["g_update"]["ours_s"], out["g_update"]["torch_s"]) == (1.0, 2.0)
    assert out["g_update"]["ratio"] == 0.5 and out["gen"]["ratio"] == 1.5


@pytest.mark.slow  # the PyTorch backend's cold compile: about a minute on 2 cores
def test_bench_pytorch_backend_alternates_with_eager_pytorch(tmp_path):
    """On the PyTorch backend the worker also times ours and eager PyTorch alternating in one
    process, and the table says so."""
    report, stdout = _run_bench(tmp_path, "--backends=pytorch")
    r = report["results"]["pytorch"]
    for name in ("g_update", "d_update", "gen"):
        i = r["interleaved"][name]
        assert len(i["ours_samples_s"]) == len(i["torch_samples_s"]) == 1  # tiny: 1 repeat
        assert i["ours_s"] > 0 and i["torch_s"] > 0
        assert i["ratio"] == pytest.approx(i["ours_s"] / i["torch_s"])
    assert "interleaved" not in report["results"]["torch-eager"]
    assert "pytorch and eager PyTorch alternating in one process, median of 1 calls" in stdout


def test_worker_device_is_the_cpu_here():
    """JAX's device as the worker records it (a GPU would read 'gpu (<kind>)'); the CPU backends
    report no GPU memory."""
    pytest.importorskip("jax")
    import jax

    expected = "cpu" if jax.devices()[0].platform == "cpu" else "gpu"
    assert train_step._device("jax").startswith(expected)
    assert train_step._device("pytorch") == train_step._device("c") == "cpu"
    if expected == "cpu":
        assert train_step._device_peak_mb(train_step._device("jax")) is None
