"""lib/costs.py against NumPy and against the original's Theano outputs (golden ops.npz).

Golden tolerance (ops.npz ``*``: rtol 1e-5, atol 1e-6): float32 logs, softpluses and means of a
few dozen terms agree to a few ulps between compilers; the golden re-runs differ by at most
9.5e-7 absolute (1.2e-7 relative) on bce_*. The saturated-logit costs (= |z| up to 100) only pass
if they are finite and computed as a softplus, as Theano's rewrite did; tiny ones (3.8e-44) are
covered by atol.
"""
import numpy as np
import pytensor
import pytensor.tensor as T
import pytest

import golden
from backend_params import backend_params, build_cache, float64_variables, get_mode
from lib import activations, costs

SIGMOID_KEYS = ["bce_sigmoid_p", "bce_sigmoid_target1_elementwise",
                "bce_sigmoid_target0_elementwise", "bce_sigmoid_target1_mean",
                "bce_sigmoid_target0_mean"]
PROB_KEYS = ["bce_elementwise", "bce_BCE_mean"]
REG_KEYS = ["mse_out", "mae_out", "squared_hinge_out", "hinge_out"]
KEYS = SIGMOID_KEYS + PROB_KEYS + ["cce_out"] + REG_KEYS


def _build_golden(backend_name):
    z = T.matrix("z")
    p_t = T.matrices("p", "t")
    cce_true, cce_pred, reg_true, reg_pred = T.matrices("cce_true", "cce_pred", "reg_true",
                                                        "reg_pred")
    # built exactly as the training scripts do: bce = costs.binary_crossentropy on sigmoid outputs
    bce = costs.binary_crossentropy
    p = activations.Sigmoid()(z)
    outs = [p, bce(p, T.ones(p.shape)), bce(p, T.zeros(p.shape)),
            bce(p, T.ones(p.shape)).mean(), bce(p, T.zeros(p.shape)).mean(),
            bce(*p_t), costs.BCE(p_t[1], p_t[0]),
            costs.CCE(cce_true, cce_pred)]
    outs += [cost(reg_true, reg_pred) for cost in (costs.MSE, costs.MAE, costs.SquaredHinge,
                                                    costs.Hinge)]
    fn = pytensor.function([z, *p_t, cce_true, cce_pred, reg_true, reg_pred], outs,
                           mode=get_mode(backend_name))

    def run():
        d, _ = golden.load("ops")
        return dict(zip(KEYS, fn(d["bce_sigmoid_logits"], d["bce_p"], d["bce_t"],
                                 d["cce_y_true"], d["cce_y_pred"], d["reg_y_true"],
                                 d["reg_y_pred"])))

    return fn, run


golden_fn = build_cache(_build_golden)


@pytest.mark.parametrize("backend_name", backend_params())
@pytest.mark.parametrize("key", KEYS)
def test_golden(backend_name, key):
    _, run = golden_fn(backend_name)
    out = run()[key]
    assert out.dtype == np.float32
    golden.assert_close("ops", key, out)


@pytest.mark.parametrize("backend_name", backend_params())
def test_golden_graph_is_float32(backend_name):
    fn, _ = golden_fn(backend_name)
    assert float64_variables(fn) == []


def _python_fn(inputs, outputs):
    return pytensor.function(inputs, outputs, mode=get_mode("python"))


@pytest.mark.parametrize("sigmoid", [activations.Sigmoid(), T.sigmoid],
                         ids=["activations.Sigmoid", "pt.sigmoid"])
def test_bce_of_sigmoid_is_softplus_of_logit(sigmoid):
    """Finite, = |z| for saturated logits, with finite gradients: both sigmoids are recognised."""
    z = T.vector("z")
    t = T.vector("t")
    cost = costs.binary_crossentropy(sigmoid(z), t)
    fn = _python_fn([z, t], [cost, pytensor.grad(cost.sum(), z)])
    zs = np.array([-100., -30., 0., 30., 100.], dtype=np.float32)
    for target in (np.ones_like(zs), np.zeros_like(zs), np.full_like(zs, 0.3)):
        out, grad = fn(zs, target)
        zz = zs.astype(np.float64)
        expected = target * np.logaddexp(0, -zz) + (1 - target) * np.logaddexp(0, zz)
        np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-37)  # float32 denormals
        np.testing.assert_allclose(grad, 1 / (1 + np.exp(-zz)) - target, atol=1e-6)


def test_bce_of_probabilities_against_numpy():
    p, t = T.vectors("p", "t")
    fn = _python_fn([p, t], costs.binary_crossentropy(p, t))
    r = np.random.RandomState(0)
    pv = r.uniform(1e-6, 1 - 1e-6, 50).astype(np.float32)
    tv = r.choice([0., 1., 0.3], 50).astype(np.float32)
    p64 = pv.astype(np.float64)
    expected = -(tv * np.log(p64) + (1 - tv) * np.log1p(-p64))
    np.testing.assert_allclose(fn(pv, tv), expected, rtol=1e-5)


def test_bce_argument_orders():
    """BCE(y_true, y_pred) is the mean of binary_crossentropy(output=y_pred, target=y_true)."""
    p, t = T.vectors("p", "t")
    fn = _python_fn([p, t], [costs.BCE(t, p), costs.binary_crossentropy(p, t).mean()])
    a, b = fn(np.array([0.2, 0.9], np.float32), np.array([0., 1.], np.float32))
    assert a == b
    assert costs.bce is costs.BCE is costs.BinaryCrossEntropy


def test_cce_against_numpy_one_hot_and_labels():
    y_true, y_pred = T.matrices("y_true", "y_pred")
    labels = T.lvector("labels")
    fn = _python_fn([y_true, y_pred, labels],
                    [costs.CCE(y_true, y_pred), costs.CategoricalCrossEntropy(labels, y_pred)])
    r = np.random.RandomState(1)
    pred = r.dirichlet(np.ones(6), 8).astype(np.float32)
    lab = r.randint(0, 6, 8)
    one_hot = np.eye(6, dtype=np.float32)[lab]
    from_one_hot, from_labels = fn(one_hot, pred, lab)
    expected = -np.mean(np.log(pred[np.arange(8), lab].astype(np.float64)))
    np.testing.assert_allclose([from_one_hot, from_labels], [expected, expected], rtol=1e-6)


def test_regression_costs_against_numpy():
    y_true, y_pred = T.matrices("y_true", "y_pred")
    fn = _python_fn([y_true, y_pred], [costs.mse(y_true, y_pred), costs.mae(y_true, y_pred),
                                       costs.SquaredHinge(y_true, y_pred),
                                       costs.Hinge(y_true, y_pred)])
    r = np.random.RandomState(2)
    yt = r.choice([-1., 1.], (4, 5)).astype(np.float32)
    yp = r.randn(4, 5).astype(np.float32)
    a, b = yt.astype(np.float64), yp.astype(np.float64)
    hinge = np.maximum(1 - a * b, 0)
    np.testing.assert_allclose(fn(yt, yp), [np.mean((b - a) ** 2), np.mean(np.abs(b - a)),
                                            np.mean(hinge ** 2), np.mean(hinge)], rtol=1e-6)
    assert costs.MSE is costs.MeanSquaredError and costs.MAE is costs.MeanAbsoluteError
    assert costs.cce is costs.CCE is costs.CategoricalCrossEntropy
