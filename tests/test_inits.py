"""lib/inits.py: shapes, dtypes, names, and draws that replay NumPy's RandomState(seed) exactly."""
import numpy as np
import pytest

from lib import inits, rng

SEED = 1234


@pytest.fixture(autouse=True)
def seeded():
    rng.set_seed(SEED)
    yield
    rng.set_seed(42)


def _reference():
    """What the initializers must have drawn: a fresh RandomState(SEED), in float64."""
    return np.random.RandomState(SEED)


@pytest.mark.parametrize("shape", [(5, 7), (4, 3, 5, 5)], ids=["dense", "conv"])
def test_normal_replays_np_rng_in_float64_then_casts(shape):
    w = inits.Normal(loc=1., scale=0.02)(shape, name="g")
    assert w.name == "g" and w.dtype == "float32" and w.get_value().shape == shape
    np.testing.assert_array_equal(w.get_value(),
                                  _reference().normal(1., 0.02, shape).astype(np.float32))


def test_draws_follow_creation_order_and_read_rng_at_call_time():
    """Initializers made before set_seed still draw from the new np_rng, one after the other."""
    ifn = inits.Normal(scale=0.02)
    rng.set_seed(7)
    a, b = ifn((3, 4)), ifn((2,))
    ref = np.random.RandomState(7)
    np.testing.assert_array_equal(a.get_value(), ref.normal(0, 0.02, (3, 4)).astype(np.float32))
    np.testing.assert_array_equal(b.get_value(), ref.normal(0, 0.02, (2,)).astype(np.float32))


def test_uniform_ignores_scale_like_the_original():
    w = inits.Uniform(scale=10.)((6, 6))
    np.testing.assert_array_equal(w.get_value(),
                                  _reference().uniform(-0.05, 0.05, (6, 6)).astype(np.float32))


def test_constant_draws_nothing():
    state = rng.np_rng.get_state()[1].copy()
    w = inits.Constant(c=0.5)((3, 2), name="b")
    np.testing.assert_array_equal(w.get_value(), np.full((3, 2), 0.5, np.float32))
    np.testing.assert_array_equal(rng.np_rng.get_state()[1], state)
    assert rng.np_rng.rand() == _reference().rand()


@pytest.mark.parametrize("shape", [(6, 4), (4, 6), (8, 2, 3, 3)], ids=["tall", "wide", "conv"])
def test_orthogonal(shape):
    w = inits.Orthogonal(scale=1.1)(shape).get_value()
    assert w.shape == shape and w.dtype == np.float32
    flat = w.reshape(shape[0], -1) / 1.1
    gram = flat @ flat.T if flat.shape[0] <= flat.shape[1] else flat.T @ flat
    np.testing.assert_allclose(gram, np.eye(len(gram)), atol=1e-5)


def test_frob():
    w = inits.Frob()((10, 4)).get_value()
    np.testing.assert_allclose(np.sqrt((w.astype(np.float64) ** 2).sum()), 2.0, rtol=1e-6)


@pytest.mark.parametrize("shape", [(4, 4, 3, 3), (6, 3, 3, 3)], ids=["square", "more_outputs"])
def test_conv_identity(shape):
    w = inits.ConvIdentity(scale=2.)(shape).get_value()
    centre = w[:, :, 1, 1]
    assert (centre == 2.).sum(axis=1).tolist() == [1] * shape[0]
    assert w.sum() == 2. * shape[0]
    if shape[0] == shape[1]:
        np.testing.assert_array_equal(centre, 2 * np.eye(shape[0]))


def test_conv_identity_refuses_fewer_outputs():
    with pytest.raises(NotImplementedError):
        inits.ConvIdentity()((2, 4, 3, 3))


@pytest.mark.parametrize("shape", [(5, 5), (6, 4), (3, 5)], ids=["square", "tall", "wide"])
def test_identity(shape):
    w = inits.Identity(scale=0.25)(shape).get_value()
    assert w.shape == shape and (w == 0.25).sum(axis=1).tolist() == [1] * shape[0]
    assert w.sum() == 0.25 * shape[0]


@pytest.mark.parametrize("shape,fan_in", [((200, 300), 200), ((64, 8, 5, 5), 200)],
                         ids=["dense", "conv"])
def test_relu_init(shape, fan_in):
    w = inits.ReluInit()(shape).get_value()
    expected = _reference().normal(size=shape, scale=np.sqrt(2. / fan_in)).astype(np.float32)
    np.testing.assert_array_equal(w, expected)
