"""faces/train_uncond_dcgan.py: the script's own graph against the original's training step.

../shared/golden/faces_step.npz was produced by running the ORIGINAL script (Theano, float32)
at ngf = ndf = 8, batch 16: initial parameters, forward outputs and the five costs, then one
_train_g and one _train_d call. Here the port's script builds its parameters, gen, discrim,
costs and Adam updaters itself (nothing re-typed) and must reproduce all of it, on every
backend, within the golden file's per-key tolerances (see tests/golden.py for why each holds).
"""
import inspect
import json
import os

import numpy as np
import pytest

import golden
from lib import backend as backends
from lib import rng

import faces.train_uncond_dcgan as faces_train

SMALL = dict(ngf=8, ndf=8, nbatch=16)


def _configure(**over):
    """Set the script's module-level hyperparameters as --name=value would (then restore)."""
    saved = {k: getattr(faces_train, k) for k in over}
    for k, v in over.items():
        setattr(faces_train, k, v)
    return saved


@pytest.fixture
def small_script():
    saved = _configure(**SMALL)
    yield faces_train
    _configure(**saved)


def _backend_params():
    out = []
    for name in backends.ALL:
        # torch.compile of the two full training functions takes minutes on 2 cores: slow. The
        # PyTorch backend still runs every op-level golden test in the default suite.
        marks = [pytest.mark.slow] if name == "pytorch" else []
        if not backends.available(name) and not os.environ.get("CI"):
            marks.append(pytest.mark.skip(reason=f"{name}: package not installed"))
        out.append(pytest.param(name, id=name, marks=marks))
    return out


def test_param_lists_match_signatures(small_script):
    """gen/discrim take the parameters in the order of the param lists, by name (gw -> w, ...)."""
    rng.set_seed(42)
    gen_params, discrim_params = small_script.init_params()
    gen_args = list(inspect.signature(small_script.gen).parameters)[1:]
    discrim_args = list(inspect.signature(small_script.discrim).parameters)[1:]
    assert [p.name[1:] for p in gen_params] == gen_args
    assert [p.name[1:] for p in discrim_params] == discrim_args
    assert gen_args == ["w", "g", "b", "w2", "g2", "b2", "w3", "g3", "b3", "w4", "g4", "b4", "wx"]
    assert discrim_args == ["w", "w2", "g2", "b2", "w3", "g3", "b3", "w4", "g4", "b4", "wy"]


def test_init_params_are_the_originals(small_script):
    """Same draws from RandomState(42) in the same order: bit-identical initial parameters."""
    data, _ = golden.load("faces_step")
    rng.set_seed(42)
    gen_params, discrim_params = small_script.init_params()
    for p in gen_params + discrim_params:
        golden.assert_close("faces_step", f"init__{p.name}", p.get_value())
        assert p.get_value().dtype == np.float32


@pytest.mark.parametrize("name", _backend_params())
def test_training_step_matches_golden(small_script, name):
    data, _ = golden.load("faces_step")
    rng.set_seed(42)
    gen_params, discrim_params = small_script.init_params()
    mode = backends.get_mode(name)
    _train_g, _train_d, _gen, g_updater, d_updater, lrt = small_script.build(
        gen_params, discrim_params, mode)
    X, Z = data["X"], data["Z"]

    golden.assert_close("faces_step", "init_gX", _gen(Z))
    g_before = [p.get_value() for p in gen_params]
    d_before = [p.get_value() for p in discrim_params]

    costs = _train_g(X, Z)
    golden.assert_close("faces_step", "step1_G_returned_costs", np.asarray(costs))
    for p in gen_params:
        golden.assert_close("faces_step", f"after_step1_G__{p.name}", p.get_value())
    for p, v in zip(discrim_params, d_before):
        np.testing.assert_array_equal(p.get_value(), v)  # a G update leaves D untouched

    # Step 2 starts from the golden step-1 generator: the first Adam step moves entries whose
    # gradient is ~1e-8 (Adam's eps) by an implementation-sensitive amount (README point 8; the
    # outliers allowed above), and such an entry of gw2 changes gX enough to flip a few
    # near-cancelling entries of D's gradient. Starting from the golden state tests each
    # update on its own, as the golden file records them.
    for p in gen_params:
        p.set_value(data[f"after_step1_G__{p.name}"])
    g_after = [p.get_value() for p in gen_params]
    costs = _train_d(X, Z)
    golden.assert_close("faces_step", "step2_D_returned_costs", np.asarray(costs))
    for p in discrim_params:
        golden.assert_close("faces_step", f"after_step2_D__{p.name}", p.get_value())
    for p, v in zip(gen_params, g_after):
        np.testing.assert_array_equal(p.get_value(), v)
    assert any(not np.array_equal(a, p.get_value()) for a, p in zip(g_before, gen_params))


def test_dry_run_writes_every_output(tmp_path, monkeypatch):
    """Two minibatches on tiny synthetic data: log line, sample grid, param files, checkpoint."""
    monkeypatch.setenv("DCGAN_DATA_DIR", str(tmp_path / "data"))
    result = _run(tmp_path, ".")
    assert result["n_updates"] == 2
    log = (tmp_path / "logs" / "uncond_dcgan.ndjson").read_text().splitlines()
    record = json.loads(log[0])
    assert record["n_updates"] == 2 and record["n_examples"] == 32
    assert np.isfinite(record["g_cost"]) and np.isfinite(record["1k_va_nnd"] or 0.)
    assert (tmp_path / "samples" / "uncond_dcgan" / "0.png").exists()
    assert (tmp_path / "models" / "uncond_dcgan" / "1_gen_params.npz").exists()
    assert (tmp_path / "models" / "uncond_dcgan" / "latest_checkpoint.npz").exists()


TINY = [  # C: its modules are compiled once by the golden test above (Numba's cold compile of
    # this graph costs ~50 s more; the golden test covers it)
    "--dry_run", "--ngf=8", "--ndf=8", "--nbatch=16", "--nvis=16", "--backend=c"]


@pytest.mark.slow  # torch.compile of the three functions: minutes on 2 cores
def test_dry_run_on_the_default_training_backend(tmp_path, monkeypatch, capsys):
    """No --backend: training runs on the default for training (PyTorch when installed), named
    on the first line."""
    monkeypatch.setenv("DCGAN_DATA_DIR", str(tmp_path / "data"))
    tiny = [f for f in TINY if not f.startswith("--backend")]
    saved = _configure(**{k: getattr(faces_train, k) for k in faces_train.FLAGS + ["nx"]})
    try:
        result = faces_train.main(tiny + [f"--out_dir={tmp_path}"])
    finally:
        _configure(**saved)
    assert result["n_updates"] == 2
    expected = backends.resolve_backend("", task="train")
    first = capsys.readouterr().out.splitlines()[0]
    assert f"| backend: {expected} (PyTensor" in first, first


def _run(tmp_path, out, *extra):
    """main() in-process; its --flags set module globals, so restore them all afterwards."""
    saved = _configure(**{k: getattr(faces_train, k) for k in faces_train.FLAGS + ["nx"]})
    try:
        return faces_train.main(TINY + [f"--out_dir={tmp_path / out}", *extra])
    finally:
        _configure(**saved)


def test_resume_gives_the_same_parameters(tmp_path, monkeypatch):
    """Stopped after one update and resumed == uninterrupted: params, optimizer, rng, log."""
    monkeypatch.setenv("DCGAN_DATA_DIR", str(tmp_path / "data"))
    full = _run(tmp_path, "full")
    first = _run(tmp_path, "split", "--max_updates=1")
    assert first["stopped"] and first["n_updates"] == 1
    second = _run(tmp_path, "split", "--resume")
    assert second["n_updates"] == full["n_updates"] == 2
    from lib.params import load_params
    for which in ("gen", "discrim"):
        a = load_params(tmp_path / "full/models/uncond_dcgan" / f"1_{which}_params.npz")
        b = load_params(tmp_path / "split/models/uncond_dcgan" / f"1_{which}_params.npz")
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x, y)
    logs = [json.loads((tmp_path / d / "logs/uncond_dcgan.ndjson").read_text())
            for d in ("full", "split")]
    for log in logs:
        log.pop("n_seconds")
    assert logs[0] == logs[1]


def test_any_nvis_with_fewer_validation_faces_draws_its_grids(tmp_path, monkeypatch):
    """--nvis other than 196 and --nval < --nvis (the dry run keeps 16 validation faces): the
    real-face grid shows the 16 (4x4), the sample grid all 20 samples (5x5, not 4x4)."""
    from PIL import Image
    monkeypatch.setenv("DCGAN_DATA_DIR", str(tmp_path / "data"))
    result = _run(tmp_path, "grids", "--nvis=20", "--n_eval=0")
    assert result["n_updates"] == 2
    samples = tmp_path / "grids/samples"
    assert Image.open(samples / "uncond_dcgan_etl_test.png").size == (4 * 64, 4 * 64)
    assert Image.open(samples / "uncond_dcgan/0.png").size == (5 * 64, 5 * 64)


@pytest.mark.parametrize("case", ["missing", "empty_folder", "corrupt_hdf5", "too_small",
                                  "bad_flag", "bad_value", "resume_without_checkpoint"])
def test_bad_input_is_one_line(tmp_path, monkeypatch, capsys, case):
    monkeypatch.setenv("DCGAN_DATA_DIR", str(tmp_path / "data"))
    extra = []
    if case == "missing":
        extra = [f"--data={tmp_path / 'nope.hdf5'}"]
    elif case == "empty_folder":
        (tmp_path / "empty").mkdir()
        extra = [f"--data={tmp_path / 'empty'}"]
    elif case == "corrupt_hdf5":
        (tmp_path / "bad.hdf5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"garbage" * 20)
        extra = [f"--data={tmp_path / 'bad.hdf5'}"]
    elif case == "too_small":
        from faces import synthetic
        small = synthetic.generate(n=20, seed=0, size=32, out=tmp_path / "small.hdf5",
                                   progress=False)
        extra = [f"--data={small}"]
    elif case == "bad_flag":
        extra = ["--ngfx=3"]
    elif case == "bad_value":
        extra = ["--ngf=many"]
    else:
        extra = ["--resume"]
    with pytest.raises(SystemExit) as exc:
        _run(tmp_path, "out", *extra)
    assert exc.value.code == 2
    err = capsys.readouterr().err.replace("\r", "\n").strip().splitlines()
    # progress bars may precede it; the error itself is one line, last, with no traceback
    assert [line for line in err if line.startswith("error: ")] == err[-1:], err
    assert not any("Traceback" in line for line in err)


def test_sampling_command(tmp_path, monkeypatch, capsys):
    """faces/sample_dcgan.py on a dry run's files: a grid with batch statistics, single images
    with population statistics (each then depends on its seed only), one-line errors."""
    import faces.sample_dcgan as sample

    monkeypatch.setenv("DCGAN_DATA_DIR", str(tmp_path / "data"))
    _run(tmp_path, "run", "--backend=python")
    models = tmp_path / "run/models/uncond_dcgan"
    saved = {k: getattr(sample, k) for k in sample.FLAGS}
    arch = _configure(nz=faces_train.nz, ngf=faces_train.ngf, nc=faces_train.nc)  # it reads them
    try:
        sample.main([f"--model={models}", f"--out={tmp_path / 'grid.png'}", "--n=9",
                     "--backend=python"])
        assert (tmp_path / "grid.png").exists()
        sample.main([f"--model={models / 'latest_checkpoint.npz'}", "--seeds=4,5",
                     "--single=true", f"--out={tmp_path / 'one'}", "--bn=population",
                     "--n_population=32", "--nbatch=16", "--backend=python"])
        assert sorted(p.name for p in (tmp_path / "one").iterdir()) == ["seed_4.png", "seed_5.png"]
        with pytest.raises(SystemExit) as exc:
            sample.main([f"--model={tmp_path / 'nope'}", "--backend=python"])
        assert exc.value.code == 2
        assert capsys.readouterr().err.strip().splitlines()[-1].startswith("error: --model=")
    finally:
        for k, v in saved.items():
            setattr(sample, k, v)
        _configure(**arch)
