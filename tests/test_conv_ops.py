"""The convolution Ops (lib/conv_ops.py) and their kernels on every backend.

- against an independent float64 reference written as explicit loops over output positions and
  kernel taps (the definition of a strided, zero-padded true convolution / cross-correlation and
  of its two adjoints), over many geometries;
- gradients by finite differences (``verify_grad``), also of second order through deconv;
- the golden outputs of the original code's conv and deconv (Theano);
- the seed presentation's 16x16 ``conv2d_transpose`` example, exactly;
- float32 graphs stay float32; inconsistent shapes raise clear ValueErrors;
- the Numba kernels are native and cacheable (never PyTensor's object-mode fallback).

Each backend compiles one function holding every geometry (``_geometry_results``), shared by the
parametrized tests, so the file stays fast; Numba's compiled kernels are cached on disk by
PyTensor.
"""
import warnings
import zlib

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest

import golden
from backend_params import backend_params, float64_variables
from backend_params import get_mode as backend_mode
from lib.conv_ops import Conv2d, Conv2dGradInputs, Conv2dGradWeights
from lib.ops import batchnorm, conv2d, deconv

# What a backend cannot do, by design (each is explained where it is marked)
KNOWN_LIMITS = {
    ("jax", "deconv_geometry"): "XLA needs the output size at compile time: NotImplementedError",
    ("jax", "grad_weights_geometry"): "XLA needs the kernel size at compile time",
    ("jax", "conv_kernel_too_large"): "XLA returns an empty result instead of raising",
    ("pytorch", "conv_kernel_too_large"): "torch raises its own RuntimeError",
}


def _backends():
    return backend_params()


BACKENDS = _backends()
GRAPH_BACKENDS = [p for p in BACKENDS if p.values[0] in ("python", "c", "numba")]


def _once(build):
    """Memoize ``build(name)`` per backend, failures included (a failing compile runs once)."""
    cache = {}

    def get(name):
        if name not in cache:
            try:
                cache[name] = (True, build(name))
            except Exception as e:  # re-raised by every test that needs it
                cache[name] = (False, e)
        ok, value = cache[name]
        if not ok:
            raise value
        return value

    return get


def _rng(key):
    return np.random.default_rng(zlib.crc32(key.encode()))


def _f32(a):
    return np.asarray(a, dtype="float32")


# ---------------------------------------------------------------------------------------------
# Independent reference: explicit loops over output positions and kernel taps, float64
# ---------------------------------------------------------------------------------------------

def _out_len(size, k, s, pad):
    return (size + pad[0] + pad[1] - k) // s + 1


def _taps(in_hw, k_hw, stride, pad):
    """Every (ho, wo, i, j, h, w): output (ho, wo) reads input (h, w) through kernel tap (i, j).

    h = ho*sh + i - pad_top; taps that fall into the zero padding are left out.
    """
    (H, W), (kh, kw), (sh, sw) = in_hw, k_hw, stride
    Ho, Wo = _out_len(H, kh, sh, pad[0]), _out_len(W, kw, sw, pad[1])
    for ho in range(Ho):
        for wo in range(Wo):
            for i in range(kh):
                h = ho * sh + i - pad[0][0]
                if not 0 <= h < H:
                    continue
                for j in range(kw):
                    w = wo * sw + j - pad[1][0]
                    if 0 <= w < W:
                        yield ho, wo, i, j, h, w


def _tap(i, j, k_hw, mode):
    """The kernel entry that multiplies tap (i, j): a true convolution reads the kernel flipped."""
    return (k_hw[0] - 1 - i, k_hw[1] - 1 - j) if mode == "conv" else (i, j)


def ref_conv(X, w, stride, pad, mode):
    """out[n, o, ho, wo] = sum over c and taps of X[n, c, h, w] * kernel(w)[o, c, tap]."""
    X, w = np.asarray(X, np.float64), np.asarray(w, np.float64)
    N, k_hw = X.shape[0], w.shape[2:]
    Ho, Wo = (_out_len(X.shape[2 + a], k_hw[a], stride[a], pad[a]) for a in range(2))
    out = np.zeros((N, w.shape[0], Ho, Wo))
    for ho, wo, i, j, h, x in _taps(X.shape[2:], k_hw, stride, pad):
        a, b = _tap(i, j, k_hw, mode)
        out[:, :, ho, wo] += X[:, :, h, x] @ w[:, :, a, b].T
    return out


def ref_grad_inputs(w, top, in_hw, stride, pad, mode):
    """The adjoint of ``ref_conv`` in X: every tap sends top back to the input it read."""
    w, top = np.asarray(w, np.float64), np.asarray(top, np.float64)
    k_hw = w.shape[2:]
    dX = np.zeros((top.shape[0], w.shape[1]) + tuple(in_hw))
    for ho, wo, i, j, h, x in _taps(in_hw, k_hw, stride, pad):
        a, b = _tap(i, j, k_hw, mode)
        dX[:, :, h, x] += top[:, :, ho, wo] @ w[:, :, a, b]
    return dX


def ref_grad_weights(X, top, k_hw, stride, pad, mode):
    """The adjoint of ``ref_conv`` in w: each kernel entry collects input x top over its taps."""
    X, top = np.asarray(X, np.float64), np.asarray(top, np.float64)
    dw = np.zeros((top.shape[1], X.shape[1]) + tuple(k_hw))
    for ho, wo, i, j, h, x in _taps(X.shape[2:], k_hw, stride, pad):
        a, b = _tap(i, j, k_hw, mode)
        dw[:, :, a, b] += top[:, :, ho, wo].T @ X[:, :, h, x]
    return dw


def test_reference_is_adjoint():
    """<conv(X), T> == <X, grad_inputs(T)> == <w, grad_weights(X, T)> for the reference."""
    rng = _rng("adjoint")
    stride, pad = (2, 3), ((1, 2), (0, 1))
    X, w = rng.standard_normal((2, 3, 7, 9)), rng.standard_normal((4, 3, 3, 4))
    for mode in ("conv", "cross"):
        out = ref_conv(X, w, stride, pad, mode)
        T = rng.standard_normal(out.shape)
        lhs = np.vdot(out, T)
        np.testing.assert_allclose(np.vdot(X, ref_grad_inputs(w, T, X.shape[2:], stride, pad,
                                                              mode)), lhs, rtol=1e-12)
        np.testing.assert_allclose(np.vdot(w, ref_grad_weights(X, T, w.shape[2:], stride, pad,
                                                               mode)), lhs, rtol=1e-12)


def test_reference_small_by_hand():
    """A 1-D-like case small enough to check by hand: true convolution flips the kernel."""
    X = np.array([1., 2., 3.]).reshape(1, 1, 1, 3)
    w = np.array([1., 10.]).reshape(1, 1, 1, 2)
    pad = ((0, 0), (1, 0))  # one zero on the left: [0, 1, 2, 3]
    assert ref_conv(X, w, (1, 1), pad, "cross").ravel().tolist() == [10., 21., 32.]
    assert ref_conv(X, w, (1, 1), pad, "conv").ravel().tolist() == [1., 12., 23.]
    assert ref_conv(X, w, (1, 2), pad, "conv").ravel().tolist() == [1., 23.]


# ---------------------------------------------------------------------------------------------
# (a) every backend against the reference, over many geometries
# ---------------------------------------------------------------------------------------------

# id: input (N, C, H, W), output channels O, kernel (kh, kw), stride (sh, sw),
#     padding ((top, bottom), (left, right)), conv_mode
GEOMETRIES = {
    "k1_s1_p0_n2_c3_7x9": ((2, 3, 7, 9), 4, (1, 1), (1, 1), ((0, 0), (0, 0)), "conv"),
    "k1_s2_p0_n1_c1_6x5_cross": ((1, 1, 6, 5), 1, (1, 1), (2, 2), ((0, 0), (0, 0)), "cross"),
    "k3_s1_p1_n2_c3_7x9": ((2, 3, 7, 9), 5, (3, 3), (1, 1), ((1, 1), (1, 1)), "conv"),
    "k3_s2_asym_n1_c4_9x8_cross": ((1, 4, 9, 8), 2, (3, 3), (2, 2), ((0, 1), (1, 0)), "cross"),
    "k3_s3_p0_n4_c6_9x7": ((4, 6, 9, 7), 7, (3, 3), (3, 3), ((0, 0), (0, 0)), "conv"),
    "k4_s2_p1_n3_c5_8x8": ((3, 5, 8, 8), 3, (4, 4), (2, 2), ((1, 1), (1, 1)), "conv"),
    "k4_s4_p0_n2_c1_11x13": ((2, 1, 11, 13), 3, (4, 4), (4, 4), ((0, 0), (0, 0)), "conv"),
    "k5_s1_p0_n2_c3_9x7_cross": ((2, 3, 9, 7), 2, (5, 5), (1, 1), ((0, 0), (0, 0)), "cross"),
    "k5_s2_p2_n2_c3_9x8": ((2, 3, 9, 8), 4, (5, 5), (2, 2), ((2, 2), (2, 2)), "conv"),
    "k5_s3_asym_n1_c3_13x10_cross": ((1, 3, 13, 10), 2, (5, 5), (3, 3), ((2, 0), (1, 3)),
                                     "cross"),
    "k5_s4_seed_n1_c1_16x16": ((1, 1, 16, 16), 1, (5, 5), (4, 4), ((0, 1), (0, 1)), "conv"),
    "k5_s1_full_n1_c2_5x7_cross": ((1, 2, 5, 7), 2, (5, 5), (1, 1), ((4, 4), (4, 4)), "cross"),
    "k3x5_s1x2_rect_n2_c2_7x9": ((2, 2, 7, 9), 3, (3, 5), (1, 2), ((1, 1), (2, 2)), "conv"),
    "k3_s2_widepad_n2_c2_5x6": ((2, 2, 5, 6), 2, (3, 3), (2, 2), ((3, 2), (0, 4)), "conv"),
}
KERNELS = ("forward", "deconv", "grad_weights")


def _geometry_data(gid):
    """float32 X, w and an output gradient R for geometry ``gid``, and the float64 references."""
    x_shape, O, k_hw, stride, pad, mode = GEOMETRIES[gid]
    rng = _rng(gid)
    X = _f32(rng.standard_normal(x_shape))
    w = _f32(rng.standard_normal((O, x_shape[1]) + k_hw))
    out_hw = tuple(_out_len(x_shape[2 + a], k_hw[a], stride[a], pad[a]) for a in range(2))
    R = _f32(rng.standard_normal((x_shape[0], O) + out_hw))
    refs = {"forward": ref_conv(X, w, stride, pad, mode),
            "deconv": ref_grad_inputs(w, R, x_shape[2:], stride, pad, mode),
            "grad_weights": ref_grad_weights(X, R, k_hw, stride, pad, mode)}
    return (X, w, R), refs


def _build_geometries(name):
    """One function per backend: for every geometry, conv2d(X, w) and the gradients of
    sum(conv2d(X, w) * R), i.e. deconv(R) = grad_inputs(w, R) and grad_weights(X, R)."""
    ins, outs, args = [], [], []
    for gid, (x_shape, O, k_hw, stride, pad, mode) in GEOMETRIES.items():
        (X, w, R), _ = _geometry_data(gid)
        Xv = pt.tensor(f"X_{gid}", dtype="float32", shape=X.shape)
        wv = pt.tensor(f"w_{gid}", dtype="float32", shape=w.shape)
        Rv = pt.tensor(f"R_{gid}", dtype="float32", shape=R.shape)
        out = Conv2d(subsample=stride, padding=pad, conv_mode=mode)(Xv, wv)
        dX, dw = pytensor.grad((out * Rv).sum(), [Xv, wv])
        ins += [Xv, wv, Rv]
        outs += [out, dX, dw]
        args += [X, w, R]
    f = pytensor.function(ins, outs, mode=backend_mode(name))
    values = f(*args)
    return f, {gid: dict(zip(KERNELS, values[3 * i: 3 * i + 3]))
               for i, gid in enumerate(GEOMETRIES)}


_geometry_results = _once(_build_geometries)


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("gid", list(GEOMETRIES))
@pytest.mark.parametrize("name", BACKENDS)
def test_against_reference(name, gid, kernel):
    _, results = _geometry_results(name)
    actual = results[gid][kernel]
    expected = _geometry_data(gid)[1][kernel]
    assert actual.dtype == np.float32
    assert actual.shape == expected.shape
    scale = max(1.0, np.abs(expected).max())
    np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=2e-6 * scale)


@pytest.mark.parametrize("name", GRAPH_BACKENDS)
def test_gradient_graph_uses_the_three_ops(name):
    """conv2d's gradients are our two gradient Ops (nothing rewritten into a slow generic path)."""
    f, _ = _geometry_results(name)
    kinds = {type(node.op) for node in f.maker.fgraph.apply_nodes}
    assert {Conv2d, Conv2dGradInputs, Conv2dGradWeights} <= kinds


@pytest.mark.parametrize("name", BACKENDS)
def test_non_contiguous_inputs(name):
    """Transposed and reversed views (a layout the kernels get from DimShuffle or Subtensor)."""
    if name == "pytorch":
        pytest.xfail("PyTensor's PyTorch backend refuses negative slice steps (not our kernels)")
    stride, pad, mode = (2, 1), ((1, 0), (2, 1)), "conv"
    rng = _rng("non-contiguous")
    Xt = _f32(rng.standard_normal((2, 3, 9, 7)))  # the graph transposes it to (2, 3, 7, 9)
    w = _f32(rng.standard_normal((4, 3, 3, 4)))
    X = np.ascontiguousarray(Xt.transpose(0, 1, 3, 2))
    out_hw = tuple(_out_len(X.shape[2 + a], w.shape[2 + a], stride[a], pad[a]) for a in range(2))
    R = _f32(rng.standard_normal((2, 4) + out_hw))
    wr, Rr = np.ascontiguousarray(w[..., ::-1]), np.ascontiguousarray(R[:, ::-1])
    Xv, wv, Rv = (pt.tensor(n, dtype="float32", shape=a.shape)
                  for n, a in (("Xt", Xt), ("wr", wr), ("Rr", Rr)))
    Xs, ws, Rs = Xv.transpose(0, 1, 3, 2), wv[..., ::-1], Rv[:, ::-1]
    out = Conv2d(subsample=stride, padding=pad, conv_mode=mode)(Xs, ws)
    dX, dw = pytensor.grad((out * Rs).sum(), [Xs, ws])
    f = pytensor.function([Xv, wv, Rv], [out, dX, dw], mode=backend_mode(name))
    actual = f(Xt, wr, Rr)
    expected = [ref_conv(X, w, stride, pad, mode),
                ref_grad_inputs(w, R, X.shape[2:], stride, pad, mode),
                ref_grad_weights(X, R, w.shape[2:], stride, pad, mode)]
    for a, e in zip(actual, expected):
        np.testing.assert_allclose(a, e, rtol=1e-5, atol=2e-6 * max(1.0, np.abs(e).max()))


def test_numba_float64_and_mixed_precision():
    """The Numba kernels compute in the Op's output dtype: float64, also from mixed inputs."""
    stride, pad, mode = (2, 2), ((1, 2), (2, 1)), "cross"
    rng = _rng("float64")
    X, w = rng.standard_normal((2, 3, 8, 7)), rng.standard_normal((2, 3, 4, 3))
    out_hw = tuple(_out_len(X.shape[2 + a], w.shape[2 + a], stride[a], pad[a]) for a in range(2))
    R = rng.standard_normal((2, 2) + out_hw)
    Xv = pt.tensor("X", dtype="float64", shape=X.shape)
    wv = pt.tensor("w", dtype="float32", shape=w.shape)
    Rv = pt.tensor("R", dtype="float64", shape=R.shape)
    out = Conv2d(subsample=stride, padding=pad, conv_mode=mode)(Xv, wv)
    dX, dw = pytensor.grad((out * Rv).sum(), [Xv, wv])
    f = pytensor.function([Xv, wv, Rv], [out, dX, dw], mode=backend_mode("numba"))
    w32 = _f32(w)
    actual = f(X, w32, R)
    expected = [ref_conv(X, w32, stride, pad, mode),
                ref_grad_inputs(w32, R, X.shape[2:], stride, pad, mode),
                ref_grad_weights(X, R, w.shape[2:], stride, pad, mode)]
    for a, e in zip(actual, expected):
        assert a.dtype == np.float64
        np.testing.assert_allclose(a, e, rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------------------------------------
# (b) finite differences, float64, first and second order
# ---------------------------------------------------------------------------------------------

VG_GEOMETRIES = {  # kernel, stride, padding, mode, input (N, C, H, W), output channels
    "k3_s2_asym_conv": ((3, 3), (2, 2), ((1, 0), (0, 1)), "conv", (2, 2, 6, 5), 3),
    "k2x3_s1x2_cross": ((2, 3), (1, 2), ((0, 1), (1, 1)), "cross", (1, 3, 4, 5), 2),
}


def _vg_setup(gid):
    k_hw, stride, pad, mode, x_shape, O = VG_GEOMETRIES[gid]
    kw = dict(subsample=stride, padding=pad, conv_mode=mode)
    out_hw = tuple(_out_len(x_shape[2 + a], k_hw[a], stride[a], pad[a]) for a in range(2))
    rng = _rng("vg" + gid)
    X = rng.standard_normal(x_shape)
    w = rng.standard_normal((O, x_shape[1]) + k_hw)
    top = rng.standard_normal((x_shape[0], O) + out_hw)
    in_hw = np.array(x_shape[2:], dtype="int64")
    k = np.array(k_hw, dtype="int64")
    return kw, X, w, top, in_hw, k, rng


@pytest.mark.parametrize("gid", list(VG_GEOMETRIES))
@pytest.mark.parametrize("op", ["conv", "deconv", "grad_weights"])
def test_verify_grad(op, gid):
    kw, X, w, top, in_hw, k, rng = _vg_setup(gid)
    fun, inputs = {
        "conv": (lambda X, w: Conv2d(**kw)(X, w), [X, w]),
        "deconv": (lambda w, top: Conv2dGradInputs(**kw)(w, top, in_hw), [w, top]),
        "grad_weights": (lambda X, top: Conv2dGradWeights(**kw)(X, top, k), [X, top]),
    }[op]
    pytensor.gradient.verify_grad(fun, inputs, rng=rng, mode=backend_mode("python"))


@pytest.mark.parametrize("gid", list(VG_GEOMETRIES))
def test_verify_grad_second_order_through_deconv(gid):
    """The gradient of deconv's gradients: pullbacks of pullbacks, all three Ops involved."""
    kw, X, w, top, in_hw, k, rng = _vg_setup(gid)

    def fun(w, top):
        y = Conv2dGradInputs(**kw)(w, top, in_hw)
        g_w, g_top = pytensor.grad(0.5 * (y ** 2).sum() + (y * y[:, :, ::-1]).sum(), [w, top])
        return pt.concatenate([g_w.ravel(), g_top.ravel()])

    pytensor.gradient.verify_grad(fun, [w, top], rng=rng, mode=backend_mode("python"))


# ---------------------------------------------------------------------------------------------
# (c) the original code's conv and deconv (golden outputs from Theano)
# ---------------------------------------------------------------------------------------------

GOLDEN_CASES = ("conv_k1_s1_p0", "conv_k3_s1_p1", "conv_k3_s2_p1", "conv_k4_s2_p1",
                "conv_k5_s2_p2", "deconv_k1_s1_p0", "deconv_k3_s1_p1", "deconv_k3_s2_p1",
                "deconv_k4_s2_p1", "deconv_k5_s2_p2")


def _build_golden(name):
    """One function per backend: every golden case's out and the gradients of sum(out * R)."""
    data, _ = golden.load("ops")
    ins, outs, args = [], [], []
    for case in GOLDEN_CASES:
        kind, k, s, p = case.split("_")
        s, p = int(s[1:]), int(p[1:])
        X, w, R = (pt.tensor(f"{case}_{v}", dtype="float32", shape=data[f"{case}_{v}"].shape)
                   for v in "XwR")
        layer = conv2d if kind == "conv" else deconv
        out = layer(X, w, subsample=(s, s), border_mode=(p, p))
        dX, dw = pytensor.grad((out * R).sum(), [X, w])
        ins += [X, w, R]
        outs += [out, dX, dw]
        args += [data[f"{case}_{v}"] for v in "XwR"]
    values = pytensor.function(ins, outs, mode=backend_mode(name))(*args)
    return {f"{case}_{v}": values[3 * i + j]
            for i, case in enumerate(GOLDEN_CASES) for j, v in enumerate(("out", "dX", "dw"))}


_golden_results = _once(_build_golden)


@pytest.mark.parametrize("output", ["out", "dX", "dw"])
@pytest.mark.parametrize("case", GOLDEN_CASES)
@pytest.mark.parametrize("name", BACKENDS)
def test_golden(name, case, output):
    key = f"{case}_{output}"
    golden.assert_close("ops", key, _golden_results(name)[key])


# ---------------------------------------------------------------------------------------------
# (d) the seed presentation's conv2d_transpose example (TensorFlow, stride 4, 'SAME'), exactly
# ---------------------------------------------------------------------------------------------

SEED_16x16 = np.array([
    [1, 1, 1, 1, 3, 2, 2, 2, 5, 3, 3, 3, 7, 4, 4, 4],
    [1, 1, 1, 1, 3, 2, 2, 2, 5, 3, 3, 3, 7, 4, 4, 4],
    [1, 1, 1, 1, 3, 2, 2, 2, 5, 3, 3, 3, 7, 4, 4, 4],
    [1, 1, 1, 1, 3, 2, 2, 2, 5, 3, 3, 3, 7, 4, 4, 4],
    [6, 6, 6, 6, 14, 8, 8, 8, 18, 10, 10, 10, 22, 12, 12, 12],
    [5, 5, 5, 5, 11, 6, 6, 6, 13, 7, 7, 7, 15, 8, 8, 8],
    [5, 5, 5, 5, 11, 6, 6, 6, 13, 7, 7, 7, 15, 8, 8, 8],
    [5, 5, 5, 5, 11, 6, 6, 6, 13, 7, 7, 7, 15, 8, 8, 8],
    [14, 14, 14, 14, 30, 16, 16, 16, 34, 18, 18, 18, 38, 20, 20, 20],
    [9, 9, 9, 9, 19, 10, 10, 10, 21, 11, 11, 11, 23, 12, 12, 12],
    [9, 9, 9, 9, 19, 10, 10, 10, 21, 11, 11, 11, 23, 12, 12, 12],
    [9, 9, 9, 9, 19, 10, 10, 10, 21, 11, 11, 11, 23, 12, 12, 12],
    [22, 22, 22, 22, 46, 24, 24, 24, 50, 26, 26, 26, 54, 28, 28, 28],
    [13, 13, 13, 13, 27, 14, 14, 14, 29, 15, 15, 15, 31, 16, 16, 16],
    [13, 13, 13, 13, 27, 14, 14, 14, 29, 15, 15, 15, 31, 16, 16, 16],
    [13, 13, 13, 13, 27, 14, 14, 14, 29, 15, 15, 15, 31, 16, 16, 16],
], dtype="float32")


@pytest.mark.parametrize("name", BACKENDS)
def test_seed_conv2d_transpose_example(name):
    X = pt.tensor4("X", dtype="float32")
    W = pt.tensor4("W", dtype="float32")
    y = deconv(X, W, subsample=(4, 4), border_mode=((0, 1), (0, 1)))
    f = pytensor.function([X, W], y, mode=backend_mode(name))
    out = f(np.arange(1, 17, dtype="float32").reshape(1, 1, 4, 4),
            np.ones((1, 1, 5, 5), dtype="float32"))
    assert out.shape == (1, 1, 16, 16)
    np.testing.assert_array_equal(out[0, 0], SEED_16x16)


def test_seed_matrix_is_the_reference():
    """The published matrix is what the independent reference gives (the test vector is sound)."""
    X = np.arange(1, 17, dtype="float64").reshape(1, 1, 4, 4)
    out = ref_grad_inputs(np.ones((1, 1, 5, 5)), X, (16, 16), (4, 4), ((0, 1), (0, 1)), "conv")
    np.testing.assert_array_equal(out[0, 0], SEED_16x16)


# ---------------------------------------------------------------------------------------------
# (e) float32 graphs stay float32
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", BACKENDS)
def test_faces_like_graph_is_float32(name):
    """A small faces-shaped generator (deconvs) and discriminator (convs) with their gradients:
    no float64 variable anywhere in the compiled graph."""
    rng = _rng("faces-like")
    p = lambda *shape: pytensor.shared(_f32(rng.normal(0, 0.02, shape)))  # noqa: E731
    gw2, gwx, dw, dw2, dwy = p(16, 8, 5, 5), p(8, 3, 5, 5), p(8, 3, 5, 5), p(16, 8, 5, 5), p(256, 1)
    g2, b2 = pytensor.shared(_f32(np.ones(8))), pytensor.shared(_f32(np.zeros(8)))
    Z = pt.tensor("Z", dtype="float32", shape=(4, 16, 4, 4))
    X = pt.tensor("X", dtype="float32", shape=(4, 3, 16, 16))
    h = pt.maximum(batchnorm(deconv(Z, gw2, subsample=(2, 2), border_mode=(2, 2)), g=g2, b=b2),
                   0)
    gX = pt.tanh(deconv(h, gwx, subsample=(2, 2), border_mode=(2, 2)))  # (4, 3, 16, 16)

    def discrim(X):
        h = conv2d(X, dw, subsample=(2, 2), border_mode=(2, 2))
        h = 0.6 * h + 0.4 * abs(h)
        h2 = conv2d(h, dw2, subsample=(2, 2), border_mode=(2, 2))  # (4, 16, 4, 4)
        return pt.sigmoid(pt.dot(h2.flatten(2), dwy))

    cost = -pt.log(discrim(X)).mean() - pt.log(1 - discrim(gX)).mean()
    params = [gw2, g2, b2, gwx, dw, dw2, dwy]
    grads = pytensor.grad(cost, params)
    f = pytensor.function([X, Z], [cost, gX] + grads, mode=backend_mode(name))
    assert not float64_variables(f)
    bad = [v for v in f.maker.fgraph.variables
           if getattr(v.type, "dtype", "float32") not in ("float32", "bool")
           and not str(getattr(v.type, "dtype", "")).startswith(("int", "uint"))]
    assert not bad, f"non-float32 variables: {bad}"
    outs = f(_f32(rng.uniform(-1, 1, (4, 3, 16, 16))), _f32(rng.uniform(-1, 1, (4, 16, 4, 4))))
    assert all(o.dtype == np.float32 and np.isfinite(o).all() for o in outs)


# ---------------------------------------------------------------------------------------------
# (f) inconsistent shapes are clear ValueErrors, at graph construction or at run time
# ---------------------------------------------------------------------------------------------

def test_static_channel_mismatch_raises_at_construction():
    X = pt.tensor("X", dtype="float32", shape=(2, 3, 8, 8))
    with pytest.raises(ValueError, match="channels"):
        conv2d(X, pt.tensor("w", dtype="float32", shape=(4, 5, 3, 3)))
    with pytest.raises(ValueError, match="channels"):
        deconv(X, pt.tensor("w", dtype="float32", shape=(4, 2, 3, 3)))


_BAD_CALLS = {
    # id: (Op class, geometry, inputs, match)
    "conv_channels": (Conv2d, ((2, 2), ((1, 1), (1, 1))),
                      [(2, 3, 8, 8), (4, 5, 3, 3)], "channels"),
    "conv_kernel_too_large": (Conv2d, ((1, 1), ((1, 0), (0, 1))),
                              [(1, 2, 3, 3), (1, 2, 5, 5)], "larger"),
    "deconv_channels": (Conv2dGradInputs, ((2, 2), ((1, 1), (1, 1))),
                        [(4, 3, 3, 3), (2, 5, 4, 4), [8, 8]], "channels"),
    "deconv_geometry": (Conv2dGradInputs, ((2, 2), ((1, 1), (1, 1))),
                        [(4, 3, 3, 3), (2, 4, 4, 4), [12, 12]], "inconsistent sizes"),
    "grad_weights_geometry": (Conv2dGradWeights, ((2, 2), ((1, 1), (1, 1))),
                              [(2, 3, 8, 8), (2, 4, 5, 4), [3, 3]], "inconsistent sizes"),
}


def test_static_kernel_too_large_raises_at_construction():
    X = pt.tensor("X", dtype="float32", shape=(1, 2, 3, 3))
    with pytest.raises(ValueError, match="kernel"):
        conv2d(X, pt.tensor("w", dtype="float32", shape=(1, 2, 5, 5)))


@pytest.mark.parametrize("case", list(_BAD_CALLS))
@pytest.mark.parametrize("name", BACKENDS)
def test_runtime_shape_errors(name, case):
    """Shapes unknown to the graph: the kernel itself refuses inconsistent inputs."""
    if (name, case) in KNOWN_LIMITS:
        pytest.xfail(KNOWN_LIMITS[name, case])
    op_class, (stride, pad), shapes, match = _BAD_CALLS[case]
    op = op_class(subsample=stride, padding=pad)
    a, b = pt.tensor4("a", dtype="float32"), pt.tensor4("b", dtype="float32")
    extra = [pt.lvector("hw")] if len(shapes) == 3 else []
    f = pytensor.function([a, b] + extra, op(a, b, *extra), mode=backend_mode(name))
    args = [_f32(np.ones(s)) for s in shapes[:2]] + [np.array(s, "int64") for s in shapes[2:]]
    with pytest.raises(ValueError, match=match):
        f(*args)


# ---------------------------------------------------------------------------------------------
# The Numba kernels are native and cacheable
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("op_class", [Conv2d, Conv2dGradInputs, Conv2dGradWeights])
def test_numba_kernels_are_registered_and_cacheable(op_class):
    from pytensor.link.numba.dispatch.basic import numba_funcify_and_cache_key

    import lib.dispatch.numba  # noqa: F401

    X = pt.tensor4("X", dtype="float32")
    w = pt.tensor4("w", dtype="float32")
    op = op_class(subsample=(2, 2), padding=((1, 2), (0, 1)))
    node = (op(X, w) if op_class is Conv2d else op(w, X, np.array([5, 5]))).owner
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the object-mode fallback warns
        fn, key = numba_funcify_and_cache_key(op, node)
    assert key is not None, "not cacheable: PyTensor would recompile it in every process"
    other = op_class(subsample=(2, 2), padding=((1, 2), (1, 0)))
    assert numba_funcify_and_cache_key(other, node)[1] != key  # props are part of the key


def test_numba_mode_never_falls_back_to_object_mode():
    """A graph holding the three Ops compiles in the Numba backend without the object-mode
    fallback (which would pickle shared parameters into the code)."""
    w = pytensor.shared(_f32(np.ones((4, 3, 3, 3))))
    X = pt.tensor("X", dtype="float32", shape=(2, 3, 8, 8))
    y = conv2d(X, w, subsample=(2, 2), border_mode=(1, 1))
    cost = (y ** 2).sum() + (deconv(y, w, subsample=(2, 2), border_mode=(1, 1)) ** 2).sum()
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*object mode.*")
        f = pytensor.function([X], pytensor.grad(cost, [X, w]), mode=backend_mode("numba"))
        f(_f32(np.ones((2, 3, 8, 8))))


def test_default_mode_uses_the_numba_kernels():
    """``import lib.ops`` alone (PyTensor's default mode is Numba) registers the kernels."""
    import subprocess
    import sys

    code = ("import warnings; warnings.simplefilter('error', UserWarning)\n"
            "import numpy as np, pytensor, pytensor.tensor as pt\n"
            "from lib.ops import conv2d\n"
            "X = pt.tensor4('X'); w = pt.tensor4('w')\n"
            "f = pytensor.function([X, w], conv2d(X, w, border_mode=(1, 1)))\n"
            "print(f(np.ones((1, 1, 3, 3), 'float32'), np.ones((1, 1, 3, 3), 'float32')).sum())\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert float(r.stdout.split()[-1]) == 49.0


def test_numba_kernels_have_no_float64_temporaries():
    """Typed for float32 inputs, no value inside the kernels is float64 (e.g. ``x if c else 0``
    unifies float32 with an int literal to float64)."""
    import io

    import numba

    import lib.dispatch.numba as kernels

    X, w = _f32(np.ones((2, 3, 9, 9))), _f32(np.ones((4, 3, 5, 5)))
    top, wide = _f32(np.ones((2, 4, 5, 5))), _f32(np.ones((2, 80, 5, 5)))
    geometry = (2, 2, 2, 2, 2, 2, 1)
    fresh = {name: numba.njit(getattr(kernels, name).py_func)  # compiled here, not from cache
             for name in ("_conv2d", "_conv2d_grad_inputs", "_conv2d_grad_weights")}
    fresh["_conv2d"](X, w, *geometry)
    fresh["_conv2d_grad_inputs"](w, top, np.array([9, 9]), *geometry)
    fresh["_conv2d_grad_weights"](X, top, np.array([5, 5]), *geometry)
    fresh["_conv2d_grad_weights"](X, wide, np.array([5, 5]), *geometry)  # the O > C*kh*kw branch
    helpers = [v for k, v in vars(kernels).items()
               if k.startswith("_") and isinstance(v, numba.core.registry.CPUDispatcher)]
    checked = 0
    for fn in list(fresh.values()) + helpers:
        for sig in fn.signatures:  # the float32 ones (other tests may compile float64 kernels)
            if any(getattr(t, "dtype", None) == numba.float64 for t in sig):
                continue
            typed = io.StringIO()
            fn.inspect_types(file=typed, signature=sig)
            bad = [line.strip() for line in typed.getvalue().splitlines()
                   if "::" in line and "float64" in line]
            assert not bad, f"{fn.py_func.__name__}{sig}: {bad[:3]}"
            checked += 1
    assert checked >= len(fresh) + 7
