"""lib/metrics.py against NumPy and against the original's Theano outputs (golden ops.npz).

Golden tolerances: predicted labels and accuracies are exact (a nearest neighbour either is or
is not the same row); nnd scores use ``*`` (rtol 1e-5, atol 1e-6): means of float32 distances
that differ between BLAS implementations by a few ulps (the golden re-runs: 4.8e-7 on ~2.7).
"""
import subprocess
import sys

import numpy as np
from sklearn.metrics import accuracy_score
import pytest

import golden
from backend_params import backend_params, get_mode
from lib import metrics

SCORE_KEYS = ["nnd_score_euclidean", "nnd_score_cosine", "nnc_score_euclidean",
              "nnc_score_cosine", "nnd_score_euclidean_batch7", "nnc_pred_euclidean_batch7",
              "nnc_pred_cosine"]


def _golden_scores(backend_name):
    get_mode(backend_name)  # fails under CI when the backend's package is missing
    d, _ = golden.load("ops")
    trX, trY, teX, teY = d["nn_trX"], d["nn_trY"], d["nn_teX"], d["nn_teY"]
    m = backend_name
    return {
        "nnd_score_euclidean": metrics.nnd_score(trX, teX, metric="euclidean", mode=m),
        "nnd_score_cosine": metrics.nnd_score(trX, teX, metric="cosine", mode=m),
        "nnc_score_euclidean": metrics.nnc_score(trX, trY, teX, teY, metric="euclidean", mode=m),
        "nnc_score_cosine": metrics.nnc_score(trX, trY, teX, teY, metric="cosine", mode=m),
        "nnd_score_euclidean_batch7": metrics.gpu_nnd_score(trX, teX, metric="euclidean",
                                                            batch_size=7, mode=m),
        "nnc_pred_euclidean_batch7": metrics.gpu_nnc_predict(trX, trY, teX, metric="euclidean",
                                                             batch_size=7, mode=m),
        "nnc_pred_cosine": metrics.gpu_nnc_predict(trX, trY, teX, metric="cosine", mode=m),
    }


_scores = {}


@pytest.mark.parametrize("backend_name", backend_params())
@pytest.mark.parametrize("key", SCORE_KEYS)
def test_golden(backend_name, key):
    if backend_name not in _scores:
        _scores[backend_name] = _golden_scores(backend_name)
    value = _scores[backend_name][key]
    d, _ = golden.load("ops")
    golden.assert_close("ops", key, np.asarray(value, dtype=d[key].dtype))


def _np_distances(A, B, metric):
    A, B = A.astype(np.float64), B.astype(np.float64)
    if metric == "cosine":
        return (A @ B.T) / np.sqrt((A ** 2).sum(1) + 1e-8)[:, None] / np.sqrt((B ** 2).sum(1) + 1e-8)
    return np.sqrt(((A[:, None, :] - B[None, :, :]) ** 2).sum(-1))


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
@pytest.mark.parametrize("batch_size", [4096, 5, 1], ids=["one_block", "blocks_of_5", "rows"])
def test_against_numpy(metric, batch_size):
    r = np.random.RandomState(0)
    trX, teX = r.randn(23, 6), r.randn(11, 6)
    trY = r.randint(0, 4, 23)
    dist = _np_distances(teX, trX, metric)
    nearest = dist.argmax(1) if metric == "cosine" else dist.argmin(1)
    best = dist.max(1) if metric == "cosine" else dist.min(1)
    pred = metrics.gpu_nnc_predict(trX, trY, teX, metric=metric, batch_size=batch_size,
                                   mode="python")
    np.testing.assert_array_equal(pred, trY[nearest])
    score = metrics.gpu_nnd_score(trX, teX, metric=metric, batch_size=batch_size, mode="python")
    np.testing.assert_allclose(score, best.mean(), rtol=1e-5)


def test_blocks_bound_memory(monkeypatch):
    """No distance block is larger than batch_size x batch_size."""
    shapes = []
    real = metrics.euclid_dist

    def recording(A, B, mode=None):
        shapes.append((len(A), len(B)))
        return real(A, B, mode=mode)

    monkeypatch.setattr(metrics, "euclid_dist", recording)
    r = np.random.RandomState(1)
    metrics.gpu_nnd_score(r.randn(50, 3), r.randn(20, 3), metric="euclidean", batch_size=16,
                          mode="python")
    assert max(max(s) for s in shapes) <= 16 and len(shapes) == 2 * 4


def test_nothing_is_compiled_at_import():
    code = "import lib.metrics as m; assert m._compiled == {}, m._compiled"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_cv_reg_lr_picks_the_best_validation_model(capsys):
    r = np.random.RandomState(2)
    X = r.randn(60, 4)
    y = (X[:, 0] + 0.1 * r.randn(60) > 0).astype(int)
    model = metrics.cv_reg_lr(X[:40], y[:40], X[40:], y[40:], Cs=[0.001, 1.])
    assert (model.predict(X[40:]) == y[40:]).mean() >= 0.9
    assert "best model C" in capsys.readouterr().out


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
@pytest.mark.parametrize("batch_size,n_samples,ns,n_te", [
    (7, 50, (3, 14, 20, 49, 60), 17),  # prefixes ending inside, at and past the blocks
    (4096, 10000, (1000, 10000, 100000), 700),  # the training log's blocks and sizes
], ids=["small_blocks", "training_blocks"])
def test_streamed_nnd_scores_equal_the_kept_ones(metric, batch_size, n_samples, ns, n_te):
    """Samples streamed in uneven pieces give nnd_score's numbers (and, labelled, nnc's
    predictions) for every prefix, bit for bit (the same blocks, the same compiled function),
    and None past the samples."""
    r = np.random.RandomState(batch_size)
    X = r.randn(n_samples, 12).astype("float32")
    teX = r.randn(n_te, 12).astype("float32")
    Y = r.randint(0, 10, n_samples)
    teY = r.randint(0, 10, n_te)
    stream = metrics.StreamedNNDScores(teX, ns, metric=metric, batch_size=batch_size, teY=teY)
    i = 0
    while i < len(X):
        m = r.randint(1, 300)
        stream.add(X[i:i + m], Y[i:i + m])
        i += m
    expected = {n: metrics.gpu_nnd_score(X[:n], teX, metric=metric, batch_size=batch_size)
                if n <= len(X) else None for n in ns}
    assert stream.scores() == expected
    expected_nnc = {n: accuracy_score(
        teY, metrics.gpu_nnc_predict(X[:n], Y[:n], teX, metric=metric, batch_size=batch_size)) * 100.
        if n <= len(X) else None for n in ns}
    assert stream.nnc() == expected_nnc


def test_streamed_blocks_stay_small():
    """The default block holds at most 8 MiB of samples: 170 rows of 64x64x3 images, 512 of
    64x64 grey ones, at most 4096 rows."""
    assert [metrics.block_rows(d) for d in (64 * 64 * 3, 64 * 64, 2)] == [170, 512, 4096]


@pytest.mark.parametrize("mode", [None, "c"], ids=["default", "c"])
@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_split_pieces_equal_the_whole_function(metric, mode):
    """Norms computed apart (in uneven row pieces) and the distances given them: the whole
    compiled function's numbers, bit for bit, at the width of 64x64x3 images."""
    r = np.random.RandomState(5)
    A = r.uniform(-1, 1, (37, 64 * 64 * 3)).astype("float32")
    B = r.uniform(-1, 1, (50, 64 * 64 * 3)).astype("float32")
    whole = metrics._metric_fn(metric, mode)(A, B)
    norms, given = metrics._split_fns(metric, mode)
    nA = np.concatenate([norms(A[:5]), norms(A[5:])])
    np.testing.assert_array_equal(given(A, B, nA, norms(B)), whole)


def test_streamed_scores_at_image_width_equal_the_original_blocks():
    """64x64x3 samples streamed in the default 170-row blocks: the scores of the original's
    4096-row blocks (the same distances, whatever the blocks), bit for bit."""
    r = np.random.RandomState(6)
    d = 64 * 64 * 3
    teX = r.uniform(-1, 1, (400, d)).astype("float32")
    X = r.uniform(-1, 1, (1000, d)).astype("float32")
    stream = metrics.StreamedNNDScores(teX, (100, 1000))
    assert stream.batch_size == 170
    for i in range(0, len(X), 128):
        stream.add(X[i:i + 128])
    assert stream.scores() == {n: metrics.gpu_nnd_score(X[:n], teX, metric="euclidean")
                               for n in (100, 1000)}


def test_epoch_nnd_scores_generate_every_sample_and_score_only_what_exists():
    """``lib.train.nnd_scores``: all n samples are generated (in the original's batches, so the
    random stream advances as it did), prefixes up to n are the kept samples' scores, and a size
    past n is None, with no distances computed for it."""
    from lib.train import nnd_scores
    r = np.random.RandomState(7)
    teX = r.randn(30, 2048).astype("float32")
    X = r.randn(2500, 2048).astype("float32")  # blocks of 1024 rows
    asked = []

    def gen_batch(m):
        start = sum(asked)
        asked.append(m)
        return X[start:start + m]

    blocks = []
    real = metrics.StreamedNNDScores._nearest

    def recording(self, B, L):
        blocks.append(len(B))
        return real(self, B, L)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(metrics.StreamedNNDScores, "_nearest", recording)
        scores = nnd_scores(teX, 2500, gen_batch, nbatch=1000, sizes=(1000, 2000, 5000))
    assert asked == [1000, 1000, 500]
    assert blocks == [1000, 1024, 976]  # the 1k prefix, a full block, the 2k prefix's end
    assert scores == {"1k_va_nnd": metrics.gpu_nnd_score(X[:1000], teX, metric="euclidean"),
                      "2k_va_nnd": metrics.gpu_nnd_score(X[:2000], teX, metric="euclidean"),
                      "5k_va_nnd": None}
    assert nnd_scores(teX, 500, gen_batch, nbatch=1000, sizes=(1000,)) == {"1k_va_nnd": None}
    assert asked[-1] == 500
