"""lib/dispatch/kernel_flip.py: the kernel flips of true convolutions as graph nodes (PyTorch)."""
import numpy as np
import pytensor
import pytensor.tensor as T
import pytest

from backend_params import backend_params, get_mode

pytestmark = pytest.mark.parametrize(
    "backend_name", [p for p in backend_params() if p.id == "pytorch"])


def _ops(fn):
    """{name: count} of the conv Ops (with their mode) and FlipHW nodes of compiled ``fn``."""
    counts = {}
    for node in fn.maker.fgraph.apply_nodes:
        name = type(node.op).__name__
        if name.startswith("Conv2d"):
            name += f"{{{node.op.conv_mode}}}"
        if name.startswith(("Conv2d", "FlipHW")):
            counts[name] = counts.get(name, 0) + 1
    return counts


def test_flip_hw_kernels_match_numpy(backend_name):
    from lib.dispatch.kernel_flip import flip_hw

    x = T.tensor4("x")
    a = np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 3, 4, 5)
    for mode in (get_mode("python"), get_mode(backend_name)):
        out = pytensor.function([x], flip_hw(x), mode=mode)(a)
        np.testing.assert_array_equal(out, a[:, :, ::-1, ::-1])
        assert out.flags.c_contiguous


def test_one_flip_per_weight_and_summed_gradient(backend_name):
    """Two uses of a conv weight, a deconv, and the gradients: one FlipHW for each weight and
    one for the weight gradient summed over both uses; the same numbers as the Ops flipping
    their own kernels (bit for bit) and as the NumPy reference."""
    from lib.ops import conv2d, deconv
    from lib.theano_utils import sharedX

    r = np.random.RandomState(0)
    w = sharedX(r.normal(0, 0.3, (4, 3, 5, 5)), name="w")
    gw = sharedX(r.normal(0, 0.3, (5, 3, 5, 5)), name="gw")
    X, Z = T.tensor4("X"), T.tensor4("Z")
    gX = deconv(Z, gw, subsample=(2, 2), border_mode=(2, 2))
    cost = (conv2d(X, w, subsample=(2, 2), border_mode=(2, 2)) ** 2).sum() + \
        T.tanh(conv2d(gX, w, subsample=(2, 2), border_mode=(2, 2))).sum()
    outs = [cost, *T.grad(cost, [w, gw, Z])]
    Xv = r.uniform(-1, 1, (2, 3, 8, 8)).astype(np.float32)
    Zv = r.uniform(-1, 1, (2, 5, 4, 4)).astype(np.float32)

    fn = pytensor.function([X, Z], outs, mode=get_mode(backend_name))
    assert _ops(fn) == {"Conv2d{cross}": 3, "Conv2dGradInputs{cross}": 2,
                        "Conv2dGradWeights{cross}": 3, "FlipHW": 4}, _ops(fn)
    got = fn(Xv, Zv)
    unflipped = pytensor.function([X, Z], outs,
                                  mode=get_mode(backend_name).excluding("flip_kernels"))
    assert "FlipHW" not in _ops(unflipped)
    for a, b in zip(got, unflipped(Xv, Zv)):
        np.testing.assert_array_equal(a, b)
    ref = pytensor.function([X, Z], outs, mode=get_mode("python"))(Xv, Zv)
    for a, b in zip(got, ref):
        np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-4)


def test_faces_updates_flip_each_weight_once(backend_name):
    """The faces model's G and D updates: 12 flips each (8 weights' forward uses, 4 summed
    gradients), not one per Op use (26 in the D update)."""
    import faces.train_uncond_dcgan as m
    from lib import rng

    m.ngf = m.ndf = 4
    m.nbatch = 2
    rng.set_seed(0)
    train_g, train_d, gen = m.build(*m.init_params(), get_mode(backend_name))[:3]
    for fn, n_convs in ((train_g, 24), (train_d, 26), (gen, 4)):
        counts = _ops(fn)
        assert not any(k.endswith("{conv}") for k in counts), counts
        assert sum(v for k, v in counts.items() if k.startswith("Conv2d")) == n_convs, counts
    assert _ops(train_g)["FlipHW"] == 12 and _ops(train_d)["FlipHW"] == 12
    assert _ops(gen)["FlipHW"] == 4
