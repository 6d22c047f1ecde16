"""The faces yardstick: its measures against independent references, the committed attribute
network's held-out accuracy, and faces/evaluate.py end to end.

References: the Frechet distance against SciPy's general matrix square root and against the
closed form for diagonal covariances; k-NN radii against scikit-learn's NearestNeighbors;
precision/recall on point sets whose overlap is known by construction; total variation by hand.
"""
import json

import numpy as np
import pytest
import scipy.linalg
from sklearn.neighbors import NearestNeighbors

from lib import metrics
from faces import attrnet, yardstick


def _random_cov(r, d):
    a = r.normal(size=(d, d))
    return a @ a.T / d + 0.1 * np.eye(d)


@pytest.mark.parametrize("d", [1, 4, 32])
def test_frechet_distance_matches_scipy_sqrtm(d):
    r = np.random.default_rng(d)
    mu1, mu2 = r.normal(size=d), r.normal(size=d)
    s1, s2 = _random_cov(r, d), _random_cov(r, d)
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    expected = np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2 - 2 * covmean)
    # float64 throughout; sqrtm's round-off on a product of well-conditioned 32x32 covariances
    # is ~1e-12 relative
    np.testing.assert_allclose(metrics.frechet_distance(mu1, s1, mu2, s2), expected, rtol=1e-9)


def test_frechet_distance_of_diagonal_gaussians_is_closed_form():
    mu1, mu2 = np.array([0., 1., 2.]), np.array([1., 1., -1.])
    v1, v2 = np.array([1., 4., 9.]), np.array([4., 4., 1.])
    # |mu1-mu2|^2 + sum (sqrt(v1) - sqrt(v2))^2 = (1 + 0 + 9) + (1 + 0 + 4)
    assert metrics.frechet_distance(mu1, np.diag(v1), mu2, np.diag(v2)) == pytest.approx(15.)
    assert metrics.frechet_distance(mu1, np.diag(v1), mu1, np.diag(v1)) == pytest.approx(0., abs=1e-12)


def test_frechet_distance_of_samples_converges_to_the_gaussians():
    r = np.random.default_rng(0)
    X = r.normal(0., 1., size=(200000, 2))
    Y = r.normal(0., 2., size=(200000, 2)) + [3., 0.]
    # true value: 9 + 2 * (2 - 1)^2 = 11; sampling error of 2e5 draws is ~0.03
    assert metrics.frechet_distance_of(X, Y) == pytest.approx(11., abs=0.1)


def test_knn_radii_match_scikit_learn():
    X = np.random.default_rng(1).normal(size=(300, 5))
    dist, _ = NearestNeighbors(n_neighbors=4).fit(X).kneighbors(X)  # itself + 3 neighbours
    np.testing.assert_allclose(metrics.knn_radii(X, k=3, chunk=64), dist[:, 3], rtol=1e-9)


def test_precision_recall_on_known_overlap():
    """Real: two far-apart clusters A and B; fake: jittered copies of A only.

    Every fake lies in the real manifold (precision 1); only A's real points lie in the fake
    manifold (recall 1/2); swapping the roles swaps the two."""
    r = np.random.default_rng(2)
    A = r.normal(size=(100, 3))
    B = r.normal(size=(100, 3)) + 100.
    fake = A + r.normal(scale=1e-3, size=A.shape)
    real = np.concatenate([A, B])
    assert metrics.precision_recall(real, fake, k=3) == (1.0, 0.5)
    assert metrics.precision_recall(fake, real, k=3) == (0.5, 1.0)


def test_precision_recall_of_disjoint_sets_is_zero():
    r = np.random.default_rng(3)
    assert metrics.precision_recall(r.normal(size=(50, 2)), r.normal(size=(50, 2)) + 50.) == (0., 0.)


def test_total_variation_by_hand():
    a = np.array([-0.95, -0.95, 0.05, 0.95])     # bins 0, 0, 5, 9 of 10 on [-1, 1]
    b = np.array([-0.95, 0.05, 0.05, 0.05])      # bins 0, 5, 5, 5
    # |1/2 - 1/4| + |1/4 - 3/4| + |1/4 - 0| = 1, halved
    assert metrics.total_variation(a, b) == pytest.approx(0.5)
    assert metrics.total_variation(a, a) == 0.
    assert metrics.total_variation(np.array([-5.]), np.array([-0.99])) == 0.  # clipped into bin 0


class _TableNet:
    """A stand-in attribute network: the 'prediction' of an image is read off its pixels."""

    def predict(self, X):
        X = np.asarray(X, dtype=np.float64)
        out = dict(features=X[:, 0, :2, 0], hair=np.zeros(len(X), int))
        for i, n in enumerate(attrnet.BINARY):
            out[n] = X[:, 0, 2 + i, 0]
        for i, n in enumerate(attrnet.REGRESSION):
            out[n] = X[:, 0, 5 + i, 0]
        return out


def _images(features, binary, yaw):
    X = np.zeros((len(features), 3, 64, 64), np.float32)
    X[:, 0, :2, 0] = features
    X[:, 0, 2:5, 0] = binary
    X[:, 0, 5, 0] = yaw
    return X


def test_yardstick_coverage_and_floor_by_hand():
    r = np.random.default_rng(4)
    n = 40
    real_binary = np.tile([[1., 0., 1.], [0., 0., 1.]], (n, 1))    # smiling 1/2, glasses 0, long 1
    real = _images(r.normal(size=(2 * n, 2)), real_binary, np.tile([-0.95, 0.95], n))
    ys = yardstick.Yardstick(_TableNet(), real)
    gen_binary = np.tile([[1., 1., 1.], [1., 0., 0.]], (n // 2, 1))  # smiling 1, glasses 1/2, long 1/2
    m = ys.measure(_images(r.normal(size=(n, 2)) + 10., gen_binary, np.full(n, 0.95)))
    assert (m['smiling_gen'], m['smiling_real'], m['smiling_gap']) == (1., .5, .5)
    assert (m['glasses_gap'], m['long_hair_gap']) == (.5, .5)
    assert m['yaw_tv'] == pytest.approx(0.5)          # all in the last bin against half
    assert m['precision'] == 0. and m['recall'] == 0.
    assert m['fd'] > 190.                              # the mean moved by 10 in both dimensions
    assert m['fd_floor'] == ys.floor['fd'] < 1.
    assert ys.floor['smiling_gap'] == 0. and ys.floor['yaw_tv'] == 0.


def test_unlabelled_yardstick_has_label_free_measures_only():
    real = _images(np.random.default_rng(5).normal(size=(20, 2)), np.zeros((20, 3)), np.zeros(20))
    ys = yardstick.Yardstick(_TableNet(), real, labelled=False)
    assert set(ys.measure(real[:10])) == {'fd', 'precision', 'recall', 'fd_floor'}
    with pytest.raises(ValueError, match='11 generated faces'):
        ys.measure(real[:11])


@pytest.fixture(autouse=True)
def _restore_evaluate_flags():
    """evaluate.main sets its module-level flags as --name=value does; put them back after."""
    from faces import evaluate
    saved = {k: getattr(evaluate, k) for k in evaluate.FLAGS}
    yield
    for k, v in saved.items():
        setattr(evaluate, k, v)


@pytest.fixture(scope="module")
def heldout():
    from faces import synthetic
    imgs, attrs = synthetic.render_range(attrnet.HELDOUT_SEED, 0, 1000)
    return attrnet.transform(imgs), attrnet.targets(attrs, synthetic.ATTRIBUTE_NAMES)


def test_committed_attribute_network_reaches_its_stated_accuracy(heldout):
    """The committed weights on 1000 held-out faces: the targets of the yardstick (>= 99% on each
    binary attribute, yaw RMSE <= 0.08), and the figures stated beside the weights."""
    from lib.backend import get_mode
    X, (binary, hair, reg) = heldout
    scores = attrnet.accuracy(attrnet.load(mode=get_mode("c")).predict(X), binary, hair, reg)
    for name in attrnet.BINARY:
        assert scores[name] >= 0.99, (name, scores[name])
    assert scores['yaw_rmse'] <= 0.08
    assert scores['hair'] >= 0.99


@pytest.fixture
def tiny_models(tmp_path):
    """A run's models folder holding one random ngf=4 generator, ``3_gen_params.npz``."""
    import faces.train_uncond_dcgan as script
    from lib import rng
    from lib.params import save_params
    saved = script.ngf
    script.ngf = 4
    try:
        rng.set_seed(0)
        gen_params, _ = script.init_params()
    finally:
        script.ngf = saved
    models = tmp_path / "run" / "models" / "uncond_dcgan"
    models.mkdir(parents=True)
    save_params(gen_params, models / "3_gen_params.npz")
    return models


def test_evaluate_cli_on_a_tiny_generator(tmp_path, monkeypatch, capsys, tiny_models):
    """A random ngf=4 generator: the JSON has every measure, far from the real faces."""
    from faces import evaluate
    monkeypatch.setenv("DCGAN_DATA_DIR", str(tmp_path / "data"))
    out = tmp_path / "y.json"
    evaluate.main([f"--model={tiny_models}", "--n_eval=40", "--nbatch=20", "--backend=c",
                   f"--out={out}", f"--grid={tmp_path / 'grid.png'}"])
    from PIL import Image
    assert Image.open(tmp_path / "grid.png").size == (2 * 8 * 64 + 8, 8 * 64)
    record = json.loads(out.read_text())
    (r,) = record["results"]
    assert r["epoch"] == 3
    for key in ('fd', 'precision', 'recall', 'yaw_tv', 'glasses_gap', 'fd_floor'):
        assert np.isfinite(r[key]), key
    assert '1k_va_nnd' not in r   # fewer than 1k faces: no 1k score
    # 20 faces a side: the floor itself is large (a 256-d covariance from 20 points)
    assert r["fd"] > 3 * record["floor"]["fd"]
    assert "real vs real" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["--model=/nonexistent"], "--model=/nonexistent: no such file or folder"),
    (["--model=MODELS", "--n_eval=2"], "--n_eval=2: expected at least 4"),
    (["--model=MODELS", "--epochs=7"], "--epochs=7: no gen params for epoch(s) [7]"),
    (["--model=MODELS", "--n_eval=30000"], "--n_eval=30000: the yardstick needs 60000 held-out"),
])
def test_evaluate_bad_input_is_one_line(tmp_path, monkeypatch, capsys, tiny_models, argv,
                                        message):
    from faces import evaluate
    monkeypatch.setenv("DCGAN_DATA_DIR", str(tmp_path / "data"))
    models = tiny_models
    data = tmp_path / "faces.hdf5"
    if "--n_eval=30000" in argv:
        from faces import synthetic
        synthetic.generate(n=20, seed=5, out=data, workers=1, progress=False)
        argv = argv + [f"--data={data}"]
    argv = [a.replace("MODELS", str(models)) for a in argv]
    with pytest.raises(SystemExit) as e:
        evaluate.main(argv + ["--backend=c"])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and message in err, err


def test_evaluate_refuses_a_model_of_another_shape(tmp_path, monkeypatch, capsys):
    """A parameter file that is not a faces generator (5 arrays): one line naming --model."""
    from faces import evaluate
    monkeypatch.setenv("DCGAN_DATA_DIR", str(tmp_path / "data"))
    from lib.params import save_params
    save_params([np.zeros((3, 3), np.float32)] * 5, tmp_path / "1_gen_params.npz")
    with pytest.raises(SystemExit) as e:
        evaluate.main([f"--model={tmp_path}", "--n_eval=8", "--backend=c",
                       f"--out={tmp_path / 'y.json'}"])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --model") and "13" in err and "\n" not in err, err
    assert not (tmp_path / "y.json").exists()


def test_training_logs_the_yardstick_every_epoch(tmp_path, monkeypatch):
    """The dry run's log line carries FD, precision, recall and coverage (n_eval = nbatch)."""
    import faces.train_uncond_dcgan as script
    monkeypatch.setenv("DCGAN_DATA_DIR", str(tmp_path / "data"))
    saved = {k: getattr(script, k) for k in script.FLAGS + ["nx"]}
    try:
        script.main(["--dry_run", "--ngf=8", "--ndf=8", "--nbatch=16", "--nvis=16",
                     "--backend=c", f"--out_dir={tmp_path}"])
    finally:
        for k, v in saved.items():
            setattr(script, k, v)
    record = json.loads((tmp_path / "logs" / "uncond_dcgan.ndjson").read_text().splitlines()[0])
    for key in ('fd', 'fd_floor', 'precision', 'recall', 'smiling_gen', 'glasses_gap',
                'long_hair_gap', 'yaw_tv'):
        assert np.isfinite(record[key]), key
    assert record['fd'] > record['fd_floor']
