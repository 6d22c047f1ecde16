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


@pytest.mark.parametrize("backend_name", [p for p in backend_params() if p.id == "pytorch"])
def test_variadic_add_mul_chain_left_to_right(backend_name, monkeypatch):
    """a * b * c and a + b + c with broadcasting: chained binary ops in C's order, bit for bit,
    and no ``torch.stack`` (PyTensor's own dispatch stacks the broadcast inputs, which is slow
    under torch.compile)."""
    import torch
    from pytensor.scalar.basic import add, mul

    def no_stack(*args, **kwargs):
        raise AssertionError("torch.stack called for a variadic Add/Mul")

    monkeypatch.setattr(torch, "stack", no_stack)
    from pytensor.tensor.elemwise import Elemwise

    a, b = T.matrix("a"), T.matrix("b")
    c = T.row("c")
    outs = [Elemwise(mul)(a, b, c), Elemwise(add)(a, b, c, a)]
    mode = get_mode(backend_name).excluding("fusion", "canonicalize", "specialize")
    fn = pytensor.function([a, b, c], outs, mode=mode)
    r = np.random.RandomState(0)
    A, B = (r.standard_normal((5, 7)).astype(np.float32) for _ in range(2))
    C = r.standard_normal((1, 7)).astype(np.float32)
    product, total = fn(A, B, C)
    assert product.dtype == np.float32 and product.shape == (5, 7)
    np.testing.assert_array_equal(product, (A * B) * C)
    np.testing.assert_array_equal(total, ((A + B) + C) + A)


def test_runtime_broadcast_check_raises_exactly_when_pytensor_does():
    """Every combination of static sizes (unknown, 1, 3) and run-time sizes (1, 3) for two and
    three inputs of two dimensions, against ``Elemwise._check_runtime_broadcast``."""
    import itertools

    from pytensor.scalar.basic import add
    from pytensor.tensor.elemwise import Elemwise

    from lib.dispatch.pytorch_fixes import runtime_broadcast_check

    def raises(check, node, arrays):
        try:
            check(node, arrays)
        except ValueError:
            return True
        return False

    static_sizes = [(a, b) for a in (None, 1, 3) for b in (None, 1, 3)]
    checked = disagreements = raised = 0
    for n in (2, 3):
        for statics in itertools.product(static_sizes, repeat=n):
            node = Elemwise(add)(*[T.tensor("x", shape=s) for s in statics]).owner
            ours = runtime_broadcast_check(node)
            per_input = [list(itertools.product(*[(s,) if s is not None else (1, 3) for s in st]))
                         for st in statics]
            for shapes in itertools.product(*per_input):
                arrays = [np.zeros(s, np.float32) for s in shapes]
                expected = raises(lambda nd, xs: Elemwise._check_runtime_broadcast(nd, xs),
                                  node, arrays)
                got = ours is not None and raises(lambda nd, xs: ours(xs), node, arrays)
                checked += 1
                raised += expected
                disagreements += expected != got
    assert checked > 1000 and raised > 100 and disagreements == 0


@pytest.mark.parametrize("backend_name", [p for p in backend_params() if p.id == "pytorch"])
def test_cast_and_makevector_match_numpy(backend_name):
    """Casts (float to int truncates toward zero, to bool is != 0) and a vector of scalars,
    against NumPy."""
    x = T.matrix("x")
    s = T.scalar("s")
    fn = pytensor.function([x, s], [T.cast(x, "int32"), T.cast(x, "bool"),
                                    T.stack([s, s * 2, x.shape[0]])],
                           mode=get_mode(backend_name))
    a = np.array([[-2.7, -0.5, 0.], [0.5, 1.5, 3.9]], np.float32)
    ints, bools, vec = fn(a, np.float32(1.25))
    np.testing.assert_array_equal(ints, a.astype(np.int32))
    assert ints.dtype == np.int32
    np.testing.assert_array_equal(bools, a.astype(bool))
    np.testing.assert_array_equal(vec, [1.25, 2.5, 2.])
