"""mnist/: the IDX loader on files in the real format, the 8x8 digits stand-in, and
mnist/train_cond_dcgan.py's own graph against the original's training step.

../shared/golden/mnist_cond_step.npz was produced by running the ORIGINAL script (Theano,
float32) at ngf = ndf = 8, ngfc = ndfc = 32, batch 16: initial parameters, forward outputs and
the five costs, then one _train_g and one _train_d call. Here the port's script builds its
parameters, gen, discrim, costs and Adam updaters itself and must reproduce all of it.
"""
import gzip
import inspect
import json

import numpy as np
import pytensor
import pytensor.tensor as T
import pytest

import golden
from lib import rng
from lib.backend import get_mode, resolve_backend
from lib.data_image import DataError
from lib.params import load_params

import mnist.train_cond_dcgan as script
from mnist import load

SMALL = dict(ngf=8, ndf=8, ngfc=32, ndfc=32, nbatch=16, l2=2.5e-5)


def idx_bytes(array, magic):
    """``array`` (uint8) in the IDX format: magic, one big-endian uint32 per dimension, data."""
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def write_mnist(folder, ntrain=30, ntest=12, seed=0, spelling=".", gz=False):
    """The four MNIST files with random images and labels 0..9 in turn; returns the arrays."""
    r = np.random.RandomState(seed)
    arrays = dict(trX=r.randint(0, 256, (ntrain, 28, 28)), trY=np.arange(ntrain) % 10,
                  teX=r.randint(0, 256, (ntest, 28, 28)), teY=(np.arange(ntest) + 3) % 10)
    folder.mkdir(parents=True, exist_ok=True)
    for key, name in load.FILES.items():
        magic = load.IMAGES_MAGIC if key.endswith("X") else load.LABELS_MAGIC
        stem, _, ext = name.partition(".")
        path = folder / (f"{stem}{spelling}{ext}" + (".gz" if gz else ""))
        data = idx_bytes(arrays[key].astype(np.uint8), magic)
        path.write_bytes(gzip.compress(data) if gz else data)
    return arrays


@pytest.fixture
def script_globals():
    """Restore the script's module-level settings (main() applies --name=value flags to them)."""
    names = script.FLAGS + ["nx"]
    saved = {k: getattr(script, k) for k in names}
    yield script
    for k, v in saved.items():
        setattr(script, k, v)


@pytest.fixture
def small_script(script_globals):
    for k, v in SMALL.items():
        setattr(script, k, v)
    return script


# --------------------------------------------------------------------------------------------
# mnist/load.py
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("spelling, gz", [(".", False), ("-", False), (".", True), ("-", True)],
                         ids=["idx3-ubyte", "-idx3-ubyte", "idx3-ubyte.gz", "-idx3-ubyte.gz"])
def test_reads_idx_files_as_the_original(tmp_path, spelling, gz):
    arrays = write_mnist(tmp_path, spelling=spelling, gz=gz)
    trX, teX, trY, teY = load.mnist(data_dir=tmp_path)
    # the original: bytes after the 16-byte header as float rows of 784, labels after 8 bytes
    assert trX.shape == (30, 784) and trX.dtype == np.float64 and teX.shape == (12, 784)
    np.testing.assert_array_equal(trX, arrays["trX"].reshape(30, 784))
    np.testing.assert_array_equal(teX, arrays["teX"].reshape(12, 784))
    np.testing.assert_array_equal(trY, arrays["trY"])
    np.testing.assert_array_equal(teY, arrays["teY"])


def test_valid_split_is_a_seeded_shuffle(tmp_path):
    write_mnist(tmp_path, ntrain=60)
    rng.set_seed(42)
    trX, vaX, teX, trY, vaY, teY = load.mnist_with_valid_set(data_dir=tmp_path)
    assert (len(trX), len(vaX), len(teX)) == (50, 10, 12)  # the original's 50000/10000, scaled
    allX, _, allY, _ = load.mnist(data_dir=tmp_path)
    perm = np.random.RandomState(42).permutation(60)  # sklearn.utils.shuffle with np_rng
    np.testing.assert_array_equal(np.concatenate([trX, vaX]), allX[perm])
    np.testing.assert_array_equal(np.concatenate([trY, vaY]), allY[perm])


@pytest.mark.parametrize("problem, message", [
    ("truncated_images", "truncated: expected 23536 bytes (16-byte header + 30 x 28 x 28 uint8), "
                         "found 23000"),
    ("truncated_labels", "truncated: expected 38 bytes (8-byte header + 30 uint8), found 30"),
    ("truncated_header", "truncated: 10 bytes, shorter than the 16-byte IDX header"),
    ("truncated_gz", "unreadable"),
    ("bad_magic", "IDX magic number 0x00000801, expected 0x00000803"),
    ("wrong_size", "IDX dimensions 30 x 32 x 32, expected N x 28 x 28"),
    ("label_count", "29 labels for the 30 images"),
    ("missing", "no such file"),
])
def test_bad_idx_files_are_one_line_errors(tmp_path, problem, message):
    write_mnist(tmp_path)
    images = tmp_path / "train-images.idx3-ubyte"
    labels = tmp_path / "train-labels.idx1-ubyte"
    target = labels if "labels" in problem or problem == "label_count" else images
    if problem == "truncated_images":
        images.write_bytes(images.read_bytes()[:23000])
    elif problem == "truncated_labels":
        labels.write_bytes(labels.read_bytes()[:30])
    elif problem == "truncated_header":
        images.write_bytes(images.read_bytes()[:10])
    elif problem == "truncated_gz":
        target = tmp_path / "train-images.idx3-ubyte.gz"
        target.write_bytes(gzip.compress(images.read_bytes())[:5000])
        images.unlink()
    elif problem == "bad_magic":
        images.write_bytes(labels.read_bytes())
    elif problem == "wrong_size":
        images.write_bytes(idx_bytes(np.zeros((30, 32, 32), np.uint8), load.IMAGES_MAGIC))
    elif problem == "label_count":
        labels.write_bytes(idx_bytes(np.zeros(29, np.uint8), load.LABELS_MAGIC))
    elif problem == "missing":
        images.unlink()
    with pytest.raises(DataError) as e:
        load.mnist(data_dir=tmp_path)
    msg = str(e.value)
    assert message in msg and str(target) in msg and "\n" not in msg


def test_digits_stand_in_when_no_mnist(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DCGAN_DATA_DIR", str(tmp_path))
    trX, teX, trY, teY = load.mnist()
    assert "NOT MNIST" in capsys.readouterr().err
    assert trX.shape == (1500, 784) and teX.shape == (297, 784) and trX.dtype == np.float64
    assert trX.min() >= 0 and trX.max() <= 255 and trX.max() > 200
    assert set(trY) == set(range(10)) and len(teY) == 297
    from sklearn.datasets import load_digits
    np.testing.assert_array_equal(np.concatenate([trY, teY]), load_digits().target)
    again = load.mnist()
    np.testing.assert_array_equal(again[0], trX)
    rng.set_seed(42)
    trX, vaX, teX, trY, vaY, teY = load.mnist_with_valid_set()
    assert (len(trX), len(vaX), len(teX)) == (1250, 250, 297)


def test_a_given_data_dir_must_hold_mnist(tmp_path):
    with pytest.raises(DataError, match="train-images.idx3-ubyte: no such file"):
        load.mnist(data_dir=tmp_path)


# --------------------------------------------------------------------------------------------
# train_cond_dcgan.py against the original's training step
# --------------------------------------------------------------------------------------------

def test_param_lists_match_signatures(small_script):
    """gen(Z, Y, ...) / discrim(X, Y, ...) take the parameters in the lists' order, by name
    (gw -> w, gw2 -> w2, ...: the name without its network's letter)."""
    rng.set_seed(42)
    gen_params, discrim_params = small_script.init_params()
    gen_args = list(inspect.signature(small_script.gen).parameters)
    discrim_args = list(inspect.signature(small_script.discrim).parameters)
    assert gen_args[:2] == ["Z", "Y"] and discrim_args[:2] == ["X", "Y"]
    assert [p.name[1:] for p in gen_params] == gen_args[2:] == ["w", "w2", "w3", "wx"]
    assert [p.name[1:] for p in discrim_params] == discrim_args[2:] == ["w", "w2", "w3", "wy"]
    assert {p.name[0] for p in gen_params} == {"g"} and {p.name[0] for p in discrim_params} == {"d"}


def test_init_params_are_the_originals(small_script):
    """Same draws from RandomState(42) in the same order: bit-identical initial parameters."""
    rng.set_seed(42)
    gen_params, discrim_params = small_script.init_params()
    for p in gen_params + discrim_params:
        golden.assert_close("mnist_cond_step", f"init__{p.name}", p.get_value())
        assert p.get_value().dtype == np.float32


def test_training_step_matches_golden(small_script):
    data, _ = golden.load("mnist_cond_step")
    X, Z, Y = data["X"], data["Z"], data["Y"]
    np.testing.assert_array_equal(Y, script.OneHot(data["Y_labels"], 10))
    rng.set_seed(42)
    gen_params, discrim_params = small_script.init_params()
    mode = get_mode(resolve_backend(""))
    _train_g, _train_d, _gen, g_updater, d_updater, lrt = small_script.build(
        gen_params, discrim_params, mode)
    Xs, Ys = T.tensor4(), T.matrix()
    _discrim = pytensor.function([Xs, Ys], small_script.discrim(Xs, Ys, *discrim_params), mode=mode)

    gX = _gen(Z, Y)
    golden.assert_close("mnist_cond_step", "init_gX", gX)
    golden.assert_close("mnist_cond_step", "init_p_real", _discrim(X, Y))
    golden.assert_close("mnist_cond_step", "init_p_gen", _discrim(gX, Y))
    d_before = [p.get_value() for p in discrim_params]

    costs = np.asarray(_train_g(X, Z, Y))  # computed before its update: the initial costs
    golden.assert_close("mnist_cond_step", "init_costs", costs)
    golden.assert_close("mnist_cond_step", "step1_G_returned_costs", costs)
    for p in gen_params:
        golden.assert_close("mnist_cond_step", f"after_step1_G__{p.name}", p.get_value())
    for p, v in zip(discrim_params, d_before):
        np.testing.assert_array_equal(p.get_value(), v)  # a G update leaves D untouched

    g_after = [p.get_value() for p in gen_params]
    costs = np.asarray(_train_d(X, Z, Y))
    golden.assert_close("mnist_cond_step", "step2_D_returned_costs", costs)
    for p in discrim_params:
        golden.assert_close("mnist_cond_step", f"after_step2_D__{p.name}", p.get_value())
    for p, v in zip(gen_params, g_after):
        np.testing.assert_array_equal(p.get_value(), v)

    golden.assert_close("mnist_cond_step", "final_p_real", _discrim(X, Y))
    golden.assert_close("mnist_cond_step", "final_p_gen", _discrim(_gen(Z, Y), Y))
    # a third call returns the costs at the parameters after both steps
    golden.assert_close("mnist_cond_step", "final_costs", np.asarray(_train_g(X, Z, Y)))
    assert len(g_updater.state) == 1 + 2*len(gen_params)  # t, then m and v per parameter


# --------------------------------------------------------------------------------------------
# The script, end to end
# --------------------------------------------------------------------------------------------

def test_dry_run_on_the_digits_stand_in(tmp_path, monkeypatch, script_globals, capsys):
    """Two minibatches on the 8x8 digits (no MNIST files): log line with nnc/nnd scores, the
    10x20 class grids, parameter files and checkpoint."""
    monkeypatch.setenv("DCGAN_DATA_DIR", str(tmp_path / "empty"))
    result = script.main(["--dry_run", "--ngf=8", "--ndf=8", "--ngfc=32", "--ndfc=32",
                          "--nbatch=16", f"--out_dir={tmp_path}",
                          "--backend=python"])  # no cold Numba compile: faces' dry run covers numba
    captured = capsys.readouterr()
    assert "NOT MNIST" in captured.err and "8x8 digits (NOT MNIST)" in captured.out
    assert result["n_updates"] == 2 and result["n_examples"] == 32
    record = json.loads((tmp_path / "logs" / "cond_dcgan.ndjson").read_text().splitlines()[0])
    assert list(record) == ["n_epochs", "n_updates", "n_examples", "n_seconds", "1k_va_nnc_acc",
                            "10k_va_nnc_acc", "100k_va_nnc_acc", "1k_va_nnd", "10k_va_nnd",
                            "100k_va_nnd", "g_cost", "d_cost"]
    assert 0 <= record["1k_va_nnc_acc"] <= 100 and record["1k_va_nnd"] > 0
    assert record["10k_va_nnc_acc"] is None and np.isfinite(record["g_cost"])
    from PIL import Image
    for png in (tmp_path / "samples" / "cond_dcgan" / "0.png",
                tmp_path / "samples" / "cond_dcgan_etl_test.png"):
        with Image.open(png) as img:
            assert img.size == (20*28, 10*28) and img.mode == "L"
    gen_arrays = load_params(tmp_path / "models" / "cond_dcgan" / "1_gen_params.npz")
    assert [a.shape for a in gen_arrays] == [(110, 32), (42, 8*2*7*7), (26, 8, 5, 5), (18, 1, 5, 5)]
    assert (tmp_path / "models" / "cond_dcgan" / "latest_checkpoint.npz").exists()


def test_bad_data_dir_is_one_line_error(tmp_path, script_globals, capsys):
    write_mnist(tmp_path)
    (tmp_path / "t10k-labels.idx1-ubyte").write_bytes(b"\x00\x00\x08\x01\x00\x00\x00\x0c\x01")
    with pytest.raises(SystemExit) as e:
        script.main(["--dry_run", "--ngf=8", "--ndf=8", "--ngfc=32", "--ndfc=32",
                     f"--data_dir={tmp_path}", f"--out_dir={tmp_path}"])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err
    assert "t10k-labels.idx1-ubyte: truncated: expected 20 bytes" in err
