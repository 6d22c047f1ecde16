"""lib/ops.py (all but the conv family, see test_conv_ops.py) against NumPy and the golden ops.npz.

Golden tolerance (ops.npz ``*``: rtol 1e-5, atol 1e-6): batchnorm, distances and normalisations
are a handful of float32 reductions; the golden file's own float64 and pure-Python re-runs differ
from it by at most 1.4e-6 absolute / 2.5e-7 relative (bn4d), so a correct float32 port lands well
inside, while a wrong epsilon (1e-5 instead of 1e-8), an unbiased variance or a missing blend
(``a``) is off by 1e-3 or more.
"""
import numpy as np
import pytensor
import pytensor.tensor as T
import pytest

import golden
from backend_params import backend_params, build_cache, float64_variables, get_mode
from lib import ops, rng

BN_CASES = ["out_batchstats", "out_batchstats_gb", "out_us", "out_us_gb",
            "out_batchstats_gb_a0p5", "out_us_a0p3", "batchstats_gb_dX", "batchstats_gb_dg",
            "batchstats_gb_db"]


def _build(backend_name):
    data, _ = golden.load("ops")
    outs, inputs = [], []
    for nd, prefix in ((4, "bn4d"), (2, "bn2d")):
        X = T.tensor4("X") if nd == 4 else T.matrix("X")
        g, b, u, s, R = T.vector("g"), T.vector("b"), T.vector("u"), T.vector("s"), X.type("R")
        out_gb = ops.batchnorm(X, g=g, b=b)
        dX, dg, db = pytensor.grad((out_gb * R).sum(), [X, g, b])
        outs += [ops.batchnorm(X), out_gb, ops.batchnorm(X, u=u, s=s),
                 ops.batchnorm(X, g=g, b=b, u=u, s=s), ops.batchnorm(X, g=g, b=b, a=0.5),
                 ops.batchnorm(X, u=u, s=s, a=0.3), dX, dg, db]
        inputs += [X, g, b, u, s, R]
    x4, Y = T.tensor4("x"), T.matrix("Y")
    outs.append(ops.conv_cond_concat(x4, Y.dimshuffle(0, 1, "x", "x")))
    x2 = T.matrix("x2")
    outs += [ops.l2normalize(x2), ops.l2normalize(x2, axis=0)]
    A, B = T.matrix("A"), T.matrix("B")
    outs += [ops.euclidean(A, B), ops.cosine(A, B)]
    inputs += [x4, Y, x2, A, B]
    return pytensor.function(inputs, outs, mode=get_mode(backend_name))


compiled = build_cache(_build)


def _golden_inputs(data):
    args = []
    for prefix in ("bn4d", "bn2d"):
        args += [data[f"{prefix}_{k}"] for k in ("X", "g", "b", "u", "s", "R")]
    args += [data["conv_cond_concat_x"], data["conv_cond_concat_Y"], data["l2normalize_x"],
             data["dist_A"], data["dist_B"]]
    return args


@pytest.mark.parametrize("backend_name", backend_params())
def test_ops_match_golden(backend_name):
    data, _ = golden.load("ops")
    fn = compiled(backend_name)
    results = iter(fn(*_golden_inputs(data)))
    for prefix in ("bn4d", "bn2d"):
        for case in BN_CASES:
            golden.assert_close("ops", f"{prefix}_{case}", next(results))
    for key in ("conv_cond_concat_out", "l2normalize_out_axis1", "l2normalize_out_axis0",
                "euclidean_out", "cosine_out"):
        golden.assert_close("ops", key, next(results))
    assert not float64_variables(fn)


def _np_batchnorm(X, g=None, b=None, u=None, s=None, a=1., e=1e-8):
    axes = (0, 2, 3) if X.ndim == 4 else (0,)
    shape = (1, -1, 1, 1) if X.ndim == 4 else (1, -1)
    X = X.astype(np.float64)
    if u is None:
        u = X.mean(axis=axes)
        s = ((X - u.reshape(shape)) ** 2).mean(axis=axes)
    u, s = a * u, (1 - a) + a * s
    out = (X - u.reshape(shape)) / np.sqrt(s.reshape(shape) + e)
    if g is not None:
        out = out * g.reshape(shape) + b.reshape(shape)
    return out


@pytest.mark.parametrize("shape", [(5, 3, 4, 6), (9, 7)], ids=["4d", "2d"])
def test_batchnorm_numpy_reference(shape):
    r = np.random.RandomState(sum(shape))
    x = r.normal(2., 3., size=shape).astype("float32")
    g, b = r.normal(1, .1, shape[1]).astype("float32"), r.normal(0, .1, shape[1]).astype("float32")
    X = T.tensor(dtype="float32", shape=(None,) * len(shape))
    f = pytensor.function([X], [ops.batchnorm(X), ops.batchnorm(X, g=g, b=b, a=0.7)],
                          mode=get_mode("python"))
    plain, blended = f(x)
    np.testing.assert_allclose(plain, _np_batchnorm(x), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(blended, _np_batchnorm(x, g, b, a=0.7), rtol=1e-5, atol=1e-5)


def test_with_population_stats_averages_batch_statistics():
    """Two stacked batchnorms rebuilt with the per-batch means and variances averaged over three
    batches of different sizes, against NumPy; the output of one image is then its own."""
    rs = np.random.RandomState(1)
    w = rs.normal(size=(3, 5)).astype("float32")
    batches = [rs.normal(size=(m, 3, 4, 4)).astype("float32") for m in (6, 4, 5)]
    X = T.tensor4()

    def build(x):
        h = ops.batchnorm(x)
        return ops.batchnorm(T.dot(h.mean(axis=(2, 3)), w))
    y = ops.with_population_stats(build, X, batches, mode=get_mode("python"))
    f = pytensor.function([X], y, mode=get_mode("python"))
    u1 = np.mean([b.mean(axis=(0, 2, 3)) for b in batches], 0)
    s1 = np.mean([b.var(axis=(0, 2, 3)) for b in batches], 0)
    hs = [_np_batchnorm(b, u=u1, s=s1).mean(axis=(2, 3)) @ w for b in batches]   # per batch
    # the second layer's statistics come from the first layer normalised by each batch's own
    h_batch = [_np_batchnorm(b).mean(axis=(2, 3)) @ w for b in batches]
    u2 = np.mean([h.mean(0) for h in h_batch], 0)
    s2 = np.mean([h.var(0) for h in h_batch], 0)
    for b, h in zip(batches, hs):
        np.testing.assert_allclose(f(b), _np_batchnorm(h, u=u2, s=s2), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(f(batches[0][:1]), f(batches[0])[:1], rtol=1e-4, atol=1e-5)


def test_batchnorm_stats_collect_and_replace():
    """``batchnorm_stats`` collects batch statistics and substitutes population ones."""
    x = np.random.RandomState(0).normal(size=(6, 3, 4, 4)).astype("float32")
    X = T.tensor4()
    with ops.batchnorm_stats() as stats:
        ops.batchnorm(X)
    f = pytensor.function([X], list(stats[0]), mode=get_mode("python"))
    u, s = f(x)
    np.testing.assert_allclose(u, x.mean(axis=(0, 2, 3)), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(s, x.var(axis=(0, 2, 3)), rtol=1e-5, atol=1e-6)
    pop_u, pop_s = np.float32([1, 2, 3]), np.float32([4, 5, 6])
    with ops.batchnorm_stats(use=[(pop_u, pop_s)]):
        y = ops.batchnorm(X)
    out = pytensor.function([X], y, mode=get_mode("python"))(x)
    np.testing.assert_allclose(out, _np_batchnorm(x, u=pop_u, s=pop_s), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="2 statistics given for 1"):
        with ops.batchnorm_stats(use=[(pop_u, pop_s)] * 2):
            ops.batchnorm(X)


def test_mean_over_batches_weights_every_batch_alike():
    """Per-batch means and variances of 10 images in batches of 4, 4, 2, averaged as the original's
    infer_bnorm_stats did (the short batch counts as much as the others): a NumPy loop."""
    x = np.random.RandomState(1).normal(size=(10, 3, 2, 2)).astype("float32")
    batches = [x[0:4], x[4:8], x[8:10]]
    stats = ops.mean_over_batches(lambda b: [b.mean(axis=(0, 2, 3)), b.var(axis=(0, 2, 3))], batches)
    u_ref = sum(b.mean(axis=(0, 2, 3)) for b in batches) / 3
    s_ref = sum(b.var(axis=(0, 2, 3)) for b in batches) / 3
    np.testing.assert_allclose(stats[0], u_ref, rtol=1e-6)
    np.testing.assert_allclose(stats[1], s_ref, rtol=1e-6)
    assert stats[0].dtype == np.float32
    assert not np.allclose(stats[0], x.mean(axis=(0, 2, 3)), rtol=1e-3)   # not the pooled mean
    with pytest.raises(ValueError, match="no batches"):
        ops.mean_over_batches(lambda b: [b], [])


@pytest.mark.parametrize("backend_name", backend_params())
@pytest.mark.parametrize("ws", [1, 2, 4], ids=lambda w: f"pool{w}")
def test_max_pool(backend_name, ws):
    """The original's dnn_pool(mode='max', ignore_border=True) against NumPy, with odd sizes."""
    x = np.random.RandomState(ws).normal(size=(2, 3, 9, 7)).astype("float32")
    X = T.tensor(dtype="float32", shape=(None, None, 9, 7))  # static H, W: XLA needs them
    out = pytensor.function([X], ops.max_pool(X, (ws, ws), (ws, ws)), mode=get_mode(backend_name))(x)
    ho, wo = 9 // ws, 7 // ws
    ref = x[:, :, :ho * ws, :wo * ws].reshape(2, 3, ho, ws, wo, ws).max(axis=(3, 5))
    np.testing.assert_array_equal(out, ref)


def test_max_pool_gradient():
    pytensor.gradient.verify_grad(lambda x: ops.max_pool(x, (2, 2)),
                                  [np.random.RandomState(1).normal(size=(2, 2, 4, 6))],
                                  rng=np.random.RandomState(2))


def test_dropout_scales_and_advances():
    rng.set_seed(3)
    X = T.matrix()
    f = pytensor.function([X], ops.dropout(X, p=0.25), updates=rng.t_rng.updates(),
                          mode=get_mode("python"))
    x = np.ones((200, 50), dtype="float32")
    a, b = f(x), f(x)
    assert set(np.unique(a)) <= {0., np.float32(1 / 0.75)}
    assert abs((a == 0).mean() - 0.25) < 0.02
    assert not np.array_equal(a, b)
    assert ops.dropout(X, p=0.) is X
