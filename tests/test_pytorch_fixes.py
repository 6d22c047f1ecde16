"""lib/dispatch/pytorch_fixes.py: the scalar Ops PyTensor 3.0.7 maps to wrong torch functions."""
import numpy as np
import pytensor
import pytensor.tensor as T
import pytest

from backend_params import backend_params, get_mode


@pytest.mark.parametrize("backend_name", [p for p in backend_params() if p.id == "pytorch"])
def test_pow_eq_mod_round_match_numpy(backend_name):
    x, y = T.vectors("x", "y")
    outs = [x ** y, T.eq(x, y), x % y, T.round(x, mode="half_to_even"),
            (x * y).mean()]  # the mean's shape check compares two shapes with Eq
    fn = pytensor.function([x, y], outs, mode=get_mode(backend_name))
    a = np.array([2., -3., 2.5, 0.5, 4.], np.float32)
    b = np.array([3., 2., -2., 0.5, 4.], np.float32)
    power, equal, mod, rounded, mean = fn(a, b)
    np.testing.assert_allclose(power, a ** b, rtol=1e-6)
    np.testing.assert_array_equal(equal, a == b)
    np.testing.assert_allclose(mod, np.mod(a, b), rtol=1e-6)
    np.testing.assert_array_equal(rounded, np.round(a))
    np.testing.assert_allclose(mean, (a * b).mean(), rtol=1e-6)
