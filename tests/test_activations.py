"""lib/activations.py against NumPy and against the original's Theano outputs (golden ops.npz).

Golden tolerance (ops.npz ``*``: rtol 1e-5, atol 1e-6): the same float32 formulas evaluated by a
different compiler (operation order, fused kernels, libm) differ by a few ulps; the golden file's
own re-runs (float64, Theano's Python implementations) differ by up to 7.6e-6 absolute on
act_* values of magnitude 100, i.e. 7.6e-8 relative, well inside rtol 1e-5. Exact 0/0.5/0.6/1
values (gradients at 0, saturated sigmoid) must match exactly and do, as atol 1e-6 is far below
their spacing.
"""
import numpy as np
import pytensor
import pytensor.tensor as T
import pytest

import golden
from backend_params import backend_params, build_cache, float64_variables, get_mode
from lib import activations

GOLDEN = {  # golden key infix -> activation
    "rectify": activations.Rectify(),
    "lrelu0p2": activations.LeakyRectify(0.2),
    "lrelu_default": activations.LeakyRectify(),
    "sigmoid": activations.Sigmoid(),
    "tanh": activations.Tanh(),
}
GOLDEN_KEYS = [f"act_{name}_{what}" for name in GOLDEN for what in ("out", "grad_of_sum")]


def _build_golden(backend_name):
    x = T.vector("x")
    outs = []
    for f in GOLDEN.values():
        y = f(x)
        outs += [y, pytensor.grad(y.sum(), x)]
    return pytensor.function([x], outs, mode=get_mode(backend_name))


golden_fn = build_cache(_build_golden)


@pytest.mark.parametrize("backend_name", backend_params())
@pytest.mark.parametrize("key", GOLDEN_KEYS)
def test_golden(backend_name, key):
    data, _ = golden.load("ops")
    fn = golden_fn(backend_name)
    outs = dict(zip(GOLDEN_KEYS, fn(data["act_x"])))
    assert outs[key].dtype == np.float32
    golden.assert_close("ops", key, outs[key])


@pytest.mark.parametrize("backend_name", backend_params())
def test_golden_graph_is_float32(backend_name):
    assert float64_variables(golden_fn(backend_name)) == []


@pytest.mark.parametrize("backend_name", backend_params())
def test_exact_values_at_kinks_and_saturation(backend_name):
    """Gradient 0.5 (Rectify) and 0.6 (LeakyRectify 0.2) at exactly 0; Theano's sigmoid is
    exactly 1 above 15 and 0 below -88, with gradient exactly 0 there."""
    data, _ = golden.load("ops")
    x = data["act_x"].copy()  # same length as the golden input: no recompilation for PyTorch
    x[:6] = [0., 15.5, 16., 100., -88.5, -100.]
    outs = {k: v[:6] for k, v in zip(GOLDEN_KEYS, golden_fn(backend_name)(x))}
    assert outs["act_rectify_grad_of_sum"][0] == np.float32(0.5)
    assert outs["act_lrelu0p2_grad_of_sum"][0] == np.float32(0.6)
    np.testing.assert_array_equal(outs["act_sigmoid_out"][1:], [1, 1, 1, 0, 0])
    np.testing.assert_array_equal(outs["act_sigmoid_grad_of_sum"][1:], [0, 0, 0, 0, 0])


# NumPy references, in float64
def _np_softmax(x, axis=1):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _np_sigmoid(x):
    return np.where(x > 15, 1., np.where(x < -88, 0., 1 / (1 + np.exp(-x))))


def _np_maxout(x, n_pool):
    return np.max([x[:, n::n_pool] for n in range(n_pool)], axis=0)


def _np_lrelu(x, leak):
    return np.where(x > 0, x, leak * x)


# id -> (activation on symbolic inputs ``v``, NumPy reference on float64 arrays ``a``)
REFERENCE = {
    "Softmax": (lambda v: activations.Softmax()(v["x2"]), lambda a: _np_softmax(a["x2"])),
    "ConvSoftmax": (lambda v: activations.ConvSoftmax()(v["x4"]), lambda a: _np_softmax(a["x4"])),
    "Maxout2d": (lambda v: activations.Maxout(3)(v["x2"]), lambda a: _np_maxout(a["x2"], 3)),
    "Maxout4d": (lambda v: activations.Maxout()(v["x4"]), lambda a: _np_maxout(a["x4"], 2)),
    "Rectify": (lambda v: activations.Rectify()(v["x2"]), lambda a: np.maximum(a["x2"], 0)),
    "ClippedRectify": (lambda v: activations.ClippedRectify(clip=1.5)(v["x2"]),
                       lambda a: np.clip(a["x2"], 0, 1.5)),
    "LeakyRectify": (lambda v: activations.LeakyRectify(0.1)(v["x2"]),
                     lambda a: _np_lrelu(a["x2"], 0.1)),
    "Prelu2d": (lambda v: activations.Prelu()(v["x2"], v["leak"]),
                lambda a: _np_lrelu(a["x2"], a["leak"])),
    "Prelu4d": (lambda v: activations.Prelu()(v["x4"], v["leak_c"]),
                lambda a: _np_lrelu(a["x4"], a["leak_c"][None, :, None, None])),
    "Tanh": (lambda v: activations.Tanh()(v["x2"]), lambda a: np.tanh(a["x2"])),
    "Sigmoid": (lambda v: activations.Sigmoid()(v["x2"]), lambda a: _np_sigmoid(a["x2"])),
    "Linear": (lambda v: activations.Linear()(v["x2"]), lambda a: a["x2"]),
    "HardSigmoid": (lambda v: activations.HardSigmoid()(v["x2"]),
                    lambda a: np.clip(a["x2"] + 0.5, 0, 1)),
    "TRec": (lambda v: activations.TRec(t=0.5)(v["x2"]),
             lambda a: np.where(a["x2"] > 0.5, a["x2"], 0)),
    "HardTanh": (lambda v: activations.HardTanh()(v["x2"]), lambda a: np.clip(a["x2"], -1, 1)),
}


def _reference_inputs():
    r = np.random.RandomState(0)
    x2 = (r.randn(5, 6) * 3).astype(np.float32)
    x2[0, :3] = [0., 20., -100.]
    return {"x2": x2, "x4": r.randn(2, 4, 3, 3).astype(np.float32),
            "leak": np.float32(0.25), "leak_c": r.uniform(0, 0.5, 4).astype(np.float32)}


@pytest.fixture(scope="module")
def reference_fn():
    v = {"x2": T.matrix("x2"), "x4": T.tensor4("x4"), "leak": T.scalar("leak"),
         "leak_c": T.vector("leak_c")}
    outs = [build(v) for build, _ in REFERENCE.values()]
    fn = pytensor.function(list(v.values()), outs, mode=get_mode("python"))
    return lambda a: dict(zip(REFERENCE, fn(*a.values())))


@pytest.mark.parametrize("name", list(REFERENCE))
def test_against_numpy(reference_fn, name):
    inputs = _reference_inputs()
    out = reference_fn(inputs)[name]
    expected = REFERENCE[name][1]({k: np.asarray(a, np.float64) for k, a in inputs.items()})
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", ["Rectify", "LeakyRectify", "Sigmoid", "Tanh", "Softmax"])
def test_gradient(name):
    """Finite differences, away from the kinks at 0 and the sigmoid's thresholds."""
    f = {"Rectify": activations.Rectify(), "LeakyRectify": activations.LeakyRectify(0.2),
         "Sigmoid": activations.Sigmoid(), "Tanh": activations.Tanh(),
         "Softmax": activations.Softmax()}[name]
    r = np.random.RandomState(1)
    x = r.uniform(0.2, 3, (3, 4)) * r.choice([-1, 1], (3, 4))
    pytensor.gradient.verify_grad(lambda v: f(v), [x.astype(np.float32)], rng=r,
                                  mode=get_mode("python"), abs_tol=1e-3, rel_tol=1e-3)


def test_maxout_rejects_other_ranks():
    with pytest.raises(NotImplementedError):
        activations.Maxout()(T.tensor3())
