"""lib/updates.py against NumPy and against the original's Theano outputs (golden ops.npz).

Golden tolerance (ops.npz ``*``: rtol 1e-5, atol 1e-6): five Adam steps of a float32 linear
regression; every step moves each weight by about lr (1e-3 or 1e-2), so the float32 rounding of
one step (~1e-9) is far below atol and the costs (~2) agree to rtol 1e-5. The golden re-runs
differ by at most 1.3e-6 on adam_* ; with Theano's float32 constants reproduced (e.g. 1 - b2 is
float32(0.001), not float32(1) - float32(0.999)) the port is within ~1e-8 on the C, Python and
Numba backends.
"""
import numpy as np
import pytensor
import pytensor.tensor as T
import pytest

import golden
from backend_params import backend_params, build_cache, float64_variables, get_mode
from lib import updates
from lib.theano_utils import sharedX

ADAM_CONFIGS = {
    "lr0p01_b1_0p5_l2_1e-3": lambda: updates.Adam(lr=0.01, b1=0.5,
                                                   regularizer=updates.Regularizer(l2=1e-3)),
    "defaults_clipnorm0p5": lambda: updates.Adam(clipnorm=0.5),
}
ADAM_KEYS = [f"adam_{cfg}_{what}" for cfg in ADAM_CONFIGS
             for what in ("costs", "W_after_each_step", "c_after_each_step")]


def _run_golden_adam(backend_name):
    """Both golden Adam configurations in one function, called 5 times: the recorded outputs."""
    d, _ = golden.load("ops")
    X, Y = T.matrices("X", "Y")
    costs, all_updates, params = [], [], []
    for cfg, make in ADAM_CONFIGS.items():
        W = sharedX(d["adam_W_init"], name="W")
        c = sharedX(d["adam_c_init"], name="c")
        cost = T.mean(T.sqr(T.dot(X, W) + c - Y))
        all_updates += make()([W, c], cost)
        costs.append(cost)
        params.append((W, c))
    fn = pytensor.function([X, Y], costs, updates=all_updates, mode=get_mode(backend_name))
    record = {key: [] for key in ADAM_KEYS}
    for _ in range(5):
        step_costs = fn(d["adam_X"], d["adam_Y"])
        for cfg, cost, (W, c) in zip(ADAM_CONFIGS, step_costs, params):
            record[f"adam_{cfg}_costs"].append(cost)
            record[f"adam_{cfg}_W_after_each_step"].append(W.get_value())
            record[f"adam_{cfg}_c_after_each_step"].append(c.get_value())
    return fn, {k: np.asarray(v) for k, v in record.items()}


golden_adam = build_cache(_run_golden_adam)


@pytest.mark.parametrize("backend_name", backend_params())
@pytest.mark.parametrize("key", ADAM_KEYS)
def test_golden_adam(backend_name, key):
    _, record = golden_adam(backend_name)
    assert record[key].dtype == np.float32
    golden.assert_close("ops", key, record[key])


@pytest.mark.parametrize("backend_name", backend_params())
def test_golden_adam_graph_is_float32(backend_name):
    fn, _ = golden_adam(backend_name)
    assert float64_variables(fn) == []


REG_CASES = {
    "reg_gradient_regularize_l1_1e-3_l2_1e-2":
        lambda p, g: updates.Regularizer(l1=1e-3, l2=1e-2).gradient_regularize(p, g),
    "reg_weight_regularize_maxnorm1p5":
        lambda p, g: updates.Regularizer(maxnorm=1.5).weight_regularize(p),
    "reg_weight_regularize_l2norm":
        lambda p, g: updates.Regularizer(l2norm=True).weight_regularize(p),
    "reg_weight_regularize_frobnorm4":
        lambda p, g: updates.Regularizer(frobnorm=4).weight_regularize(p),
}


def _build_regularizers(backend_name):
    p, g = T.matrices("p", "g")
    fn = pytensor.function([p, g], [f(p, g) for f in REG_CASES.values()],
                           mode=get_mode(backend_name), on_unused_input="ignore")
    d, _ = golden.load("ops")
    return fn, dict(zip(REG_CASES, fn(d["reg_p"], d["reg_g"])))


golden_reg = build_cache(_build_regularizers)


@pytest.mark.parametrize("backend_name", backend_params())
@pytest.mark.parametrize("key", list(REG_CASES))
def test_golden_regularizer(backend_name, key):
    _, outs = golden_reg(backend_name)
    golden.assert_close("ops", key, outs[key])


def test_regularizer_against_numpy():
    d, _ = golden.load("ops")
    p, g = d["reg_p"].astype(np.float64), d["reg_g"].astype(np.float64)
    _, outs = golden_reg("python")
    norms = np.sqrt((p ** 2).sum(axis=0))
    expected = {
        "reg_gradient_regularize_l1_1e-3_l2_1e-2": g + 1e-2 * p + 1e-3 * np.sign(p),
        "reg_weight_regularize_maxnorm1p5": p * np.clip(norms, 0, 1.5) / (1e-7 + norms),
        "reg_weight_regularize_l2norm": p / np.sqrt((p ** 2).sum(axis=0, keepdims=True) + 1e-8),
        "reg_weight_regularize_frobnorm4": p / np.sqrt((p ** 2).sum()) * 2,
    }
    for key, value in expected.items():
        np.testing.assert_allclose(outs[key], value, rtol=1e-6, atol=1e-7, err_msg=key)


# NumPy references: cost = sum(A*W) + 0.5*sum(W^2), so the gradient is A + W.
def _np_steps(name, W0, A, n, hp):
    W = W0.astype(np.float64)
    state = {}
    out = []
    for t in range(1, n + 1):
        g = A + W
        if name == "SGD":
            W = W - hp["lr"] * g
        elif name == "Momentum":
            m = hp["momentum"] * state.get("m", 0) - hp["lr"] * g
            state["m"] = m
            W = W + m
        elif name == "NAG":
            m = hp["momentum"] * state.get("m", 0) - hp["lr"] * g
            state["m"] = m
            W = W + hp["momentum"] * m - hp["lr"] * g
        elif name == "RMSprop":
            acc = hp["rho"] * state.get("acc", 0) + (1 - hp["rho"]) * g ** 2
            state["acc"] = acc
            W = W - hp["lr"] * g / np.sqrt(acc + hp["epsilon"])
        elif name == "Adagrad":
            acc = state.get("acc", 0) + g ** 2
            state["acc"] = acc
            W = W - hp["lr"] / np.sqrt(acc + hp["epsilon"]) * g
        elif name == "Adadelta":
            acc = hp["rho"] * state.get("acc", 0) + (1 - hp["rho"]) * g ** 2
            step = g * np.sqrt(state.get("delta", 0) + hp["epsilon"]) / np.sqrt(acc + hp["epsilon"])
            state["acc"] = acc
            state["delta"] = hp["rho"] * state.get("delta", 0) + (1 - hp["rho"]) * step ** 2
            W = W - hp["lr"] * step
        elif name == "Adam":
            m = hp["b1"] * state.get("m", 0) + (1 - hp["b1"]) * g
            v = hp["b2"] * state.get("v", 0) + (1 - hp["b2"]) * g ** 2
            state["m"], state["v"] = m, v
            W = W - hp["lr"] * (m / (1 - hp["b1"] ** t)) / (np.sqrt(v / (1 - hp["b2"] ** t)) + 1e-8)
        elif name == "NoUpdate":
            pass
        out.append(W)
    return out


OPTIMIZERS = {
    "SGD": dict(lr=0.1),
    "Momentum": dict(lr=0.1, momentum=0.9),
    "NAG": dict(lr=0.1, momentum=0.9),
    "RMSprop": dict(lr=0.01, rho=0.9, epsilon=1e-6),
    "Adagrad": dict(lr=0.1, epsilon=1e-6),
    "Adadelta": dict(lr=0.5, rho=0.95, epsilon=1e-6),
    "Adam": dict(lr=0.01, b1=0.9, b2=0.999),
    "NoUpdate": dict(lr=0.01, momentum=0.9),
}


def _problem():
    r = np.random.RandomState(3)
    return r.randn(4, 3).astype(np.float32), r.randn(4, 3).astype(np.float32)


def _compile_step(updater, W, A):
    cost = T.sum(A * W) + np.float32(0.5) * T.sum(T.sqr(W))
    return pytensor.function([], cost, updates=updater([W], cost), mode=get_mode("python"))


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_optimizer_against_numpy(name):
    W0, A = _problem()
    W = sharedX(W0, name="W")
    updater = getattr(updates, name)(**OPTIMIZERS[name])
    step = _compile_step(updater, W, A)
    expected = _np_steps(name, W0, A.astype(np.float64), 4, OPTIMIZERS[name])
    for i in range(4):
        step()
        assert W.get_value().dtype == np.float32
        np.testing.assert_allclose(W.get_value(), expected[i], rtol=2e-5, atol=2e-6,
                                   err_msg=f"{name} step {i + 1}")
    assert all(s.dtype == "float32" for s in updater.state)


def test_state_is_exposed_in_creation_order():
    W0, A = _problem()
    W, c = sharedX(W0, name="W"), sharedX(W0[0], name="c")
    updater = updates.Adam()
    cost = T.sum(A * W) + T.sum(c ** 2)
    updater([W, c], cost)
    assert [s.name for s in updater.state] == ["adam_t", "W_m", "W_v", "c_m", "c_v"]
    assert updater.state[0].get_value() == 1 and updater.state[0].dtype == "float32"
    assert [s.get_value().shape for s in updater.state[1:]] == [(4, 3), (4, 3), (3,), (3,)]
    assert updates.SGD().state == []


def test_adam_resumes_bit_exactly_from_its_state():
    """Restoring params + updater.state values after k steps replays the same trajectory."""
    W0, A = _problem()
    W = sharedX(W0, name="W")
    updater = updates.Adam(lr=0.05, regularizer=updates.Regularizer(l2=1e-3))
    step = _compile_step(updater, W, A)
    for _ in range(2):
        step()
    snapshot = [v.get_value() for v in [W] + updater.state]
    first = [(step(), W.get_value()) for _ in range(3)]
    for v, value in zip([W] + updater.state, snapshot):
        v.set_value(value)
    again = [(step(), W.get_value()) for _ in range(3)]
    for (c1, w1), (c2, w2) in zip(first, again):
        assert c1 == c2
        np.testing.assert_array_equal(w1, w2)


def test_adam_lr_float_or_shared():
    """A float lr and a float32 shared lr give identical steps; the shared one can be annealed."""
    W0, A = _problem()
    results = []
    for lr in (0.01, sharedX(0.01)):
        W = sharedX(W0)
        step = _compile_step(updates.Adam(lr=lr), W, A)
        step()
        results.append(W.get_value())
    np.testing.assert_array_equal(*results)
    lr.set_value(np.float32(0))
    before = W.get_value()
    step()
    np.testing.assert_array_equal(W.get_value(), before)


def test_adam_b1_decay_is_a_float32_no_op():
    """float32(1 - 1e-8) == 1, so b1_t == b1 at every step, as in Theano with floatX=float32."""
    assert np.float32(1 - 1e-8) == np.float32(1)


def test_clip_norms_against_numpy():
    gs = [T.matrix("g1"), T.vector("g2")]
    fn = pytensor.function(gs, updates.clip_norms(gs, 1.0), mode=get_mode("python"))
    g1, g2 = np.full((2, 2), 1., np.float32), np.full(5, 1., np.float32)  # norm 3
    c1, c2 = fn(g1, g2)
    np.testing.assert_allclose(c1, g1 / 3, rtol=1e-6)
    np.testing.assert_allclose(c2, g2 / 3, rtol=1e-6)
    small = fn(g1 / 10, g2 / 10)  # norm 0.3 < 1: unchanged
    np.testing.assert_array_equal(small[0], g1 / 10)
    assert updates.clip_norm(gs[1], 0, T.scalar()) is gs[1]
