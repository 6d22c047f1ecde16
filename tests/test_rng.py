"""lib/rng.py: seeding, the symbolic t_rng, and get_state/set_state for bit-exact resumption."""
import json
import warnings

import numpy as np
import pytensor
import pytest

from lib import rng


@pytest.fixture(autouse=True)
def restore_seed():
    yield
    rng.set_seed(42)


def test_set_seed_replaces_all_three():
    old = rng.np_rng
    rng.set_seed(5)
    assert rng.seed == 5 and rng.np_rng is not old
    assert rng.np_rng.rand() == np.random.RandomState(5).rand()
    import random
    assert rng.py_rng.random() == random.Random(5).random()
    assert rng.t_rng.seed == 5 and rng.t_rng.rngs == []


def test_no_deprecated_random_stream():
    """PyTensor 3 deprecates RandomStream (FutureWarning); t_rng uses the shared_rng API."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rng.set_seed(3)
        x = rng.t_rng.normal((2, 3))
        pytensor.function([], x, updates=rng.t_rng.updates(), mode="FAST_COMPILE")()


def test_t_rng_draws_are_float32_advance_and_are_seeded():
    rng.set_seed(11)
    mask = rng.t_rng.binomial((200,), p=0.3)
    u = rng.t_rng.uniform((3,), low=-1., high=1.)
    fn = pytensor.function([], [mask, u], updates=rng.t_rng.updates(), mode="FAST_COMPILE")
    a, b = fn(), fn()
    assert a[0].dtype == np.float32 and a[1].dtype == np.float32
    assert set(np.unique(a[0])) <= {0., 1.} and 0.15 < a[0].mean() < 0.45
    assert np.all((-1 <= a[1]) & (a[1] < 1))
    assert not np.array_equal(a[1], b[1])  # the updates advanced the generators
    rng.set_seed(11)
    mask = rng.t_rng.binomial((200,), p=0.3)
    u = rng.t_rng.uniform((3,), low=-1., high=1.)
    again = pytensor.function([], [mask, u], mode="FAST_COMPILE")()
    np.testing.assert_array_equal(a[0], again[0])
    np.testing.assert_array_equal(a[1], again[1])


def test_get_state_is_json_and_restores_all_generators_bit_exactly():
    rng.set_seed(9)
    x = rng.t_rng.normal((4,))
    fn = pytensor.function([], x, updates=rng.t_rng.updates(), mode="FAST_COMPILE")
    fn(), rng.np_rng.rand(3), rng.py_rng.random()  # advance everything a little
    state = json.loads(json.dumps(rng.get_state()))

    def draw():
        return fn(), rng.np_rng.normal(size=3), rng.py_rng.random(), rng.np_rng.randint(9, size=4)

    first = draw()
    rng.set_state(state)
    second = draw()
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)


def test_set_state_refuses_a_different_graph():
    rng.set_seed(9)
    state = rng.get_state()
    rng.t_rng.normal((2,))  # one more draw than when the state was taken
    with pytest.raises(ValueError, match="draws"):
        rng.set_state(state)
