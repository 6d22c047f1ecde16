"""svhn/: the loader on .mat files in the real layout, the released model against the golden
outputs of the original code, the semi-supervised analysis and the train script, end to end.

../shared/golden/svhn_pretrained.npz holds what the ORIGINAL generator and discriminator
(Theano, float32) computed with the released weights (../shared/models/<desc>/200_*_params.jl)
on Z = RandomState(1234).normal(0, 1, (64, 100)), and the analysis's batchnorm statistics and
features on those samples. Here the port's own scripts load the same .jl files and must match.
"""
import inspect
import json

import numpy as np
import pytensor
import pytensor.tensor as T
import pytest
import scipy.io

import golden
from lib import rng
from lib.backend import get_mode, resolve_backend
from lib.data_image import DataError
from lib.params import load_params, save_params_jl

import svhn.sample_pretrained as sampler
import svhn.svhn_semisup_analysis as analysis
import svhn.train_uncond_dcgan as script
from svhn import load, model_files

DESC = script.desc


def write_mat(path, n, seed=0, labels=None, **override):
    """A .mat file in SVHN's cropped-digits layout: X uint8 (32, 32, 3, n), y (n, 1) 1..10."""
    r = np.random.RandomState(seed)
    y = (np.arange(n) % 10 + 1) if labels is None else np.asarray(labels)
    data = dict(X=r.randint(0, 256, (32, 32, 3, n)).astype(np.uint8),
                y=y.reshape(n, 1).astype(np.uint8))
    data.update(override)
    scipy.io.savemat(str(path), data)
    return data


@pytest.fixture(scope="module")
def svhn_dir(tmp_path_factory):
    """A data folder with 300 training and 100 test images, labels 1..10 in turn."""
    d = tmp_path_factory.mktemp("svhn")
    write_mat(d / "train_32x32.mat", 300, seed=1)
    write_mat(d / "test_32x32.mat", 100, seed=2)
    return d


@pytest.fixture
def script_globals():
    """Restore the scripts' module-level settings: main() applies --name=value flags to them, and
    load_model sets the train script's widths."""
    modules = (script, sampler, analysis)
    saved = [(m, {k: getattr(m, k) for k in m.FLAGS + (['nx'] if m is script else [])})
             for m in modules]
    yield script
    for m, values in saved:
        for k, v in values.items():
            setattr(m, k, v)


def models_dir():
    return golden.require(golden.MODELS_DIR / DESC)


# --------------------------------------------------------------------------------------------
# svhn/load.py
# --------------------------------------------------------------------------------------------

def test_load_layout_and_labels(tmp_path):
    """X (32, 32, 3, N) -> (N, 3, 32, 32) with out[i, c, r, k] = X[r, k, c, i]; y - 1 (10 -> 9)."""
    tr = write_mat(tmp_path / "train_32x32.mat", 20, seed=3)
    write_mat(tmp_path / "test_32x32.mat", 10, seed=4)
    trX, teX, trY, teY = load.svhn(data_dir=tmp_path)
    assert trX.shape == (20, 3, 32, 32) and trX.dtype == np.uint8 and teX.shape == (10, 3, 32, 32)
    np.testing.assert_array_equal(trX[5, 2, 7, 11], tr["X"][7, 11, 2, 5])
    np.testing.assert_array_equal(trX, tr["X"].transpose(3, 2, 0, 1))
    np.testing.assert_array_equal(trY, tr["y"].ravel() - 1)
    assert trY[9] == 9 and set(trY) == set(range(10))  # '10' is the digit 0: class 9


def test_valid_split_is_a_seeded_shuffle(tmp_path):
    write_mat(tmp_path / "train_32x32.mat", 40, seed=3)
    write_mat(tmp_path / "test_32x32.mat", 10, seed=4)
    write_mat(tmp_path / "extra_32x32.mat", 15, seed=5)
    rng.set_seed(42)
    trX, vaX, teX, trY, vaY, teY = load.svhn_with_valid_set(data_dir=tmp_path, nval=10)
    assert (len(trX), len(vaX), len(teX)) == (30, 10, 10)
    allX, _, allY, _ = load.svhn(data_dir=tmp_path)
    # the original's shuffle: sklearn.utils.shuffle with lib.rng.np_rng = RandomState(42)
    perm = np.random.RandomState(42).permutation(40)
    np.testing.assert_array_equal(np.concatenate([vaX, trX]), allX[perm])
    np.testing.assert_array_equal(np.concatenate([vaY, trY]), allY[perm])
    rng.set_seed(42)
    again = load.svhn_with_valid_set(data_dir=tmp_path, nval=10)
    np.testing.assert_array_equal(again[1], vaX)
    rng.set_seed(42)
    trX, vaX, teX, trY, vaY, teY, trS = load.svhn_with_valid_set(extra=True, data_dir=tmp_path,
                                                                 nval=10)
    assert len(trX) == 30 + 15 and trS.sum() == 30 and len(trS) == len(trY)
    np.testing.assert_array_equal(np.sort(trY[trS == 0]), np.sort(np.arange(15) % 10))


@pytest.mark.parametrize("problem, override, message", [
    ("missing", None, "no such file; download train_32x32.mat"),
    ("not_mat", None, "not a readable .mat file"),
    ("no_X", dict(X=None), "no 'X' variable"),
    ("X_shape", dict(X=np.zeros((28, 28, 3, 12), np.uint8)), "expected uint8 (32, 32, 3, N)"),
    ("X_dtype", dict(X=np.zeros((32, 32, 3, 12), np.float64)), "'X' is float64"),
    ("y_count", dict(y=np.ones((11, 1), np.uint8)), "expected (12, 1) for the 12 images"),
    ("y_range", dict(y=np.zeros((12, 1), np.uint8)), "expected labels 1..10"),
], ids=lambda v: v if isinstance(v, str) else "")
def test_bad_files_are_one_line_errors(tmp_path, problem, override, message):
    path = tmp_path / "train_32x32.mat"
    write_mat(tmp_path / "test_32x32.mat", 10)
    if problem == "not_mat":
        path.write_bytes(b"this is not a MATLAB file" * 10)
    elif problem != "missing":
        data = write_mat(path, 12)
        data.update(override)
        scipy.io.savemat(str(path), {k: v for k, v in data.items() if v is not None})
    with pytest.raises(DataError) as e:
        load.svhn(data_dir=tmp_path)
    msg = str(e.value)
    assert message in msg and str(path) in msg and "\n" not in msg
    if problem == "missing":
        assert "Format 2" in msg and load.URL in msg


def test_nval_larger_than_the_training_set(tmp_path):
    write_mat(tmp_path / "train_32x32.mat", 12)
    write_mat(tmp_path / "test_32x32.mat", 10)
    with pytest.raises(DataError, match=r"--nval=10000: expected 0 <= nval < 12"):
        load.svhn_with_valid_set(data_dir=tmp_path)


# --------------------------------------------------------------------------------------------
# The released model against the original's outputs
# --------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def pretrained():
    """The released epoch-200 model in the train script's own parameters, and compiled
    generator, discriminator (probability and its logit) and analysis functions."""
    data, meta = golden.load("svhn_pretrained")
    saved = {k: getattr(script, k) for k in ("nz", "ngf", "ndf", "nc")}
    params = model_files.load_model(models_dir(), 200)
    mode = get_mode(resolve_backend(""))
    _gen = sampler.build_gen(params["gen"], mode)
    X = T.tensor4()
    p = script.discrim(X, *params["discrim"])
    _discrim = pytensor.function([X], [p, p.tag.logit], mode=mode)
    _bnorm_stats = analysis.compile_bnorm_stats(params["discrim"], mode)
    yield dict(data=data, params=params, mode=mode, _gen=_gen, _discrim=_discrim,
               _bnorm_stats=_bnorm_stats)
    for k, v in saved.items():
        setattr(script, k, v)


def test_released_weights_fit_the_architecture(pretrained):
    """The .jl arrays are the train script's parameters at its default widths, in its order."""
    gen_params, discrim_params = pretrained["params"]["gen"], pretrained["params"]["discrim"]
    assert (script.nz, script.ngf, script.ndf, script.nc) == (100, 64, 64, 3)
    assert [p.name for p in gen_params] == ["gw", "gg", "gb", "gw2", "gg2", "gb2", "gw3", "gg3",
                                            "gb3", "gwx"]
    assert [p.name for p in discrim_params] == ["dw", "dw2", "dg2", "db2", "dw3", "dg3", "db3",
                                                "dwy"]
    arrays = load_params(models_dir() / "200_gen_params.jl")
    for p, a in zip(gen_params, arrays):
        np.testing.assert_array_equal(p.get_value(), a)
    assert [p.name[1:] for p in gen_params] == list(inspect.signature(script.gen).parameters)[1:]
    assert [p.name[1:] for p in discrim_params] == list(
        inspect.signature(script.discrim).parameters)[1:]


def test_generator_matches_golden(pretrained):
    data = pretrained["data"]
    Z = sampler.draw_z(64, 1234, script.nz)  # the sampler's own z: RandomState(1234).normal
    golden.assert_close("svhn_pretrained", "Z", Z)
    golden.assert_close("svhn_pretrained", "gen_out", pretrained["_gen"](Z))


def test_discriminator_matches_golden(pretrained):
    data = pretrained["data"]
    p, logit = pretrained["_discrim"](data["gen_out"])
    golden.assert_close("svhn_pretrained", "discrim_p", p)
    golden.assert_close("svhn_pretrained", "discrim_logit_diagnostic", logit)


def test_analysis_features_match_golden(pretrained):
    data = pretrained["data"]
    U, S = analysis.infer_bnorm_stats(data["gen_out"], pretrained["_bnorm_stats"])
    for name, value in zip(["bn_U_h2", "bn_U_h3", "bn_S_h2", "bn_S_h3"], U + S):
        golden.assert_close("svhn_pretrained", name, value)
    _features = analysis.compile_features(pretrained["params"]["discrim"], U, S, pretrained["mode"])
    f = analysis.features(data["gen_out"], _features, nbatch=128)
    assert f.shape == (64, 64*16 + 128*16 + 256*16)
    golden.assert_close("svhn_pretrained", "features", f)


def test_infer_bnorm_stats_averages_batches(pretrained):
    """Equal-weight average of per-batch statistics (not pooled), batches of nbatch."""
    x = pretrained["data"]["gen_out"][:40]
    U, S = analysis.infer_bnorm_stats(x, pretrained["_bnorm_stats"], nbatch=16)
    parts = [pretrained["_bnorm_stats"](x[i:i+16]) for i in (0, 16, 32)]
    np.testing.assert_allclose(U[1], sum(p[1] for p in parts) / 3, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(S[0], sum(p[2] for p in parts) / 3, rtol=1e-5, atol=1e-7)


# --------------------------------------------------------------------------------------------
# sample_pretrained.py
# --------------------------------------------------------------------------------------------

def test_sampler_writes_the_golden_batch(tmp_path, script_globals, capsys):
    out = tmp_path / "grid.png"
    samples = sampler.main([f"--model_dir={models_dir()}", f"--out={out}"])
    golden.assert_close("svhn_pretrained", "gen_out", samples)
    from PIL import Image
    with Image.open(out) as img:
        assert img.size == (8*32, 8*32) and img.mode == "RGB"
    assert "wrote a grid of 64 samples" in capsys.readouterr().out


def test_sampler_names_a_mismatched_parameter(tmp_path, script_globals, capsys):
    arrays = [a.copy() for a in load_params(models_dir() / "200_gen_params.jl")]
    arrays[3] = arrays[3][:, :100]  # gw2 (256, 128, 5, 5) -> (256, 100, 5, 5)
    save_params_jl(arrays, tmp_path / "200_gen_params.jl")
    with pytest.raises(SystemExit) as e:
        sampler.main([f"--model_dir={tmp_path}", f"--out={tmp_path / 'x.png'}"])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("error: ")
    assert "parameter gw2 has shape (256, 100, 5, 5)" in err and "(256, 128, 5, 5)" in err


def test_sampler_without_weights(tmp_path, script_globals, capsys):
    with pytest.raises(SystemExit) as e:
        sampler.main([f"--model_dir={tmp_path / DESC}"])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "200_gen_params.{npz,jl}: no such file" in err and "models/ folder" in err


# --------------------------------------------------------------------------------------------
# svhn_semisup_analysis.py and train_uncond_dcgan.py, end to end on tiny .mat files
# --------------------------------------------------------------------------------------------

SMALL_ANALYSIS = ["--nval=100", "--n_per_class=5", "--n_val_draws=2", "--n_test_draws=3"]


def _result_line(out):
    lines = [l for l in out.splitlines() if l.startswith("train: ") and " test: " in l]
    assert len(lines) == 1, out
    values = [float(v) for v in lines[0].split()[1::3] + lines[0].split()[2::3]]
    return values


def test_analysis_end_to_end_with_released_weights(svhn_dir, tmp_path, script_globals, capsys):
    result = analysis.main([f"--data_dir={svhn_dir}", f"--model_dir={models_dir()}",
                            f"--out={tmp_path / 'result.json'}"] + SMALL_ANALYSIS)
    out = capsys.readouterr().out
    assert "best c: " in out and sum(l.startswith("c: ") for l in out.splitlines()) == 7
    errors = _result_line(out)
    assert all(0 <= v <= 100 for v in errors)
    assert 0 <= result["test"] <= 100 and result["n_features"] == 7168
    assert result["model"].endswith("200_discrim_params.jl")
    saved = json.loads((tmp_path / "result.json").read_text())
    assert saved["best_c"] in analysis.cs


def test_train_dry_run_then_analysis_of_its_npz(svhn_dir, tmp_path, script_globals, capsys):
    """Two minibatches at ngf = ndf = 8 write models/<desc>/1_*_params.npz, which the analysis reads."""
    result = script.main(["--dry_run", "--ngf=8", "--ndf=8", "--nvis=16", "--nval=9",
                          f"--data_dir={svhn_dir}", f"--out_dir={tmp_path}",
                          "--backend=python"])  # no cold Numba compile: faces' dry run covers numba
    assert result["n_updates"] == 2 and result["n_examples"] == 128
    record = json.loads((tmp_path / "logs" / f"{DESC}.ndjson").read_text().splitlines()[0])
    assert record["n_updates"] == 2 and np.isfinite(record["g_cost"]) and np.isfinite(record["d_cost"])
    from PIL import Image
    with Image.open(tmp_path / "samples" / DESC / "0.png") as img:
        assert img.size == (4*32, 4*32)  # 16 samples
    with Image.open(tmp_path / "samples" / f"{DESC}_etl_test.png") as img:
        assert img.size == (3*32, 3*32)  # the 9 validation images
    model_dir = tmp_path / "models" / DESC
    assert [a.shape for a in load_params(model_dir / "1_gen_params.npz")][:2] == [(100, 8*4*16), (8*4*16,)]
    assert (model_dir / "latest_checkpoint.npz").exists()
    capsys.readouterr()

    result = analysis.main([f"--data_dir={svhn_dir}", f"--model_dir={model_dir}", "--epoch=1"]
                           + SMALL_ANALYSIS)
    out = capsys.readouterr().out
    assert all(0 <= v <= 100 for v in _result_line(out))
    assert result["n_features"] == 8*16 + 16*16 + 32*16
    assert result["model"].endswith("1_discrim_params.npz")


def test_train_without_svhn_files_says_what_it_needs(tmp_path, script_globals, capsys):
    with pytest.raises(SystemExit) as e:
        script.main(["--dry_run", "--ngf=8", "--ndf=8", f"--data_dir={tmp_path}",
                     f"--out_dir={tmp_path}"])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err
    assert "train_32x32.mat" in err and "Format 2" in err


def test_analysis_needs_enough_labels_per_class(svhn_dir, script_globals, capsys):
    with pytest.raises(SystemExit) as e:
        analysis.main([f"--data_dir={svhn_dir}", f"--model_dir={models_dir()}", "--nval=100"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "--n_per_class=100: class" in err and "training images" in err
