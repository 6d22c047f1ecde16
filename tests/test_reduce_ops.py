"""lib/reduce_ops.py: ChannelSum on every backend against a float64 loop, and the C mode's rewrite."""
import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from pytensor.gradient import verify_grad
from pytensor.tensor.math import Sum

from lib.reduce_ops import ChannelSum, channel_sum
from tests.backend_params import backend_params, get_mode

SHAPES = [(2, 3, 5, 7), (4, 16, 8, 8), (1, 1, 1, 1), (3, 5, 3, 11)]


def reference(X):
    """Per-channel sums, one channel at a time, in float64."""
    return np.array([sum(float(v) for v in X[:, c].ravel()) for c in range(X.shape[1])])


def _ops(fn):
    return [type(n.op) for n in fn.maker.fgraph.toposort()]


# float64 everywhere but JAX, which PyTensor runs without jax_enable_x64 (no float64 arrays)
CASES = [pytest.param(p.values[0], dtype, id=f"{p.values[0]}-{dtype}", marks=p.marks)
         for dtype in ("float32", "float64") for p in backend_params()
         if not (dtype == "float64" and p.values[0] == "jax")]


@pytest.mark.parametrize("name, dtype", CASES)
def test_channel_sum_against_loops(name, dtype):
    X = pt.tensor4(dtype=dtype)
    f = pytensor.function([X], channel_sum(X), mode=get_mode(name))
    for i, shape in enumerate(SHAPES):
        x = np.random.RandomState(i).uniform(-1, 2, shape).astype(dtype)
        got = f(x)
        assert got.dtype == dtype and got.shape == (shape[1],)
        # float32: one rounding of a float64 sum, or XLA's float32 tree sum (JAX without x64)
        np.testing.assert_allclose(got, reference(x), rtol=1e-6 if dtype == "float32" else 1e-12)


@pytest.mark.parametrize("name", ["python", "c", "numba"])
def test_non_contiguous_input(name):
    X = pt.tensor4()
    f = pytensor.function([X], channel_sum(X), mode=get_mode(name))
    x = np.random.RandomState(5).standard_normal((6, 4, 9, 10)).astype("float32")
    view = x.transpose(1, 0, 2, 3)[:, :, ::2, 1:]  # strided, not C-contiguous
    np.testing.assert_allclose(f(view), reference(view), rtol=1e-6, atol=1e-6)


def test_large_sum_is_float64_accurate():
    """A sum whose float32 accumulation would drift: 2**24 + many ones."""
    X = pt.tensor4()
    f = pytensor.function([X], channel_sum(X), mode=get_mode("c"))
    x = np.ones((64, 2, 64, 64), dtype="float32")
    x[0, :, 0, 0] = 2.0 ** 24
    np.testing.assert_array_equal(f(x), np.float32(2.0 ** 24 + 64 * 64 * 64 - 1))


def test_c_mode_rewrites_batchnorm_sums():
    """The C backend's graph of batchnorm statistics and their gradient has no Sum over
    (0, 2, 3) left; other sums stay; values equal the Python backend's."""
    X = pt.tensor4()
    u = X.mean(axis=[0, 2, 3])
    s = pt.sqr(X - u.dimshuffle("x", 0, "x", "x")).mean(axis=[0, 2, 3])
    cost = (s ** 2).sum() + u.sum() + X.sum(axis=1).max()
    outs = [u, s, pytensor.grad(cost, X)]
    fc = pytensor.function([X], outs, mode=get_mode("c"))
    fp = pytensor.function([X], outs, mode=get_mode("python"))
    ops = _ops(fc)
    assert ChannelSum in ops
    sums = [n.op for n in fc.maker.fgraph.toposort() if isinstance(n.op, Sum)]
    assert all(tuple(sorted(op.axis)) != (0, 2, 3) for op in sums)
    x = np.random.RandomState(0).standard_normal((4, 3, 5, 5)).astype("float32")
    for a, b in zip(fc(x), fp(x)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_rewrite_leaves_other_reductions():
    X = pt.tensor4()
    f = pytensor.function([X], [X.sum(axis=(0, 2)), X.sum(axis=(0, 2, 3), dtype="float64")],
                          mode=get_mode("c"))
    assert ChannelSum not in _ops(f)  # other axes; a float64 output from float32 input


def test_verify_grad():
    x = np.random.RandomState(1).standard_normal((2, 3, 4, 5))
    verify_grad(lambda X: channel_sum(X) ** 2, [x], rng=np.random.RandomState(2),
                mode=get_mode("python"))


def test_bad_input_is_one_clear_error():
    with pytest.raises(TypeError, match="4-D float32/float64"):
        channel_sum(pt.matrix())
    with pytest.raises(TypeError, match="4-D float32/float64"):
        channel_sum(pt.tensor4(dtype="int32"))
