"""The JAX and PyTorch kernels of the conv Ops (lib/dispatch/jax.py, lib/dispatch/pytorch.py).

Every backend is compared with the Python backend (the Ops' NumPy ``perform``), with the golden
outputs of the original code (tests/golden.py), and with the seed presentation's 16x16
``conv2d_transpose`` example; a tiny DCGAN trains two Adam steps on each backend.
torch.compile is slow to compile, so each backend compiles one function holding every
geometry (``_geometry_results``) and one training function (``_dcgan_results``), shared by the
tests below. A backend whose package is missing is skipped locally and fails under CI.
"""
import os
import re
import zlib

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest

import golden
from backend_params import build_cache
from backend_params import get_mode as backend_mode
from lib import backend
from lib.activations import LeakyRectify, Rectify, Sigmoid, Tanh
from lib.conv_ops import Conv2d, Conv2dGradInputs, Conv2dGradWeights, conv_out_size
from lib.costs import bce
from lib.dispatch.host_shape import HostShape, host_shape
from lib.ops import batchnorm, conv2d, deconv
from lib.theano_utils import sharedX
from lib.updates import Adam

BACKENDS = [pytest.param(name, id=name, marks=[] if backend.available(name) or os.environ.get("CI")
                         else [pytest.mark.skip(reason=f"{name}: package not installed")])
            for name in ("jax", "pytorch")]

# id: kernel (kh, kw), stride, padding ((top, bottom), (left, right)), conv_mode,
#     input (N, C, H, W), output channels, whether the graph knows the shapes statically
GEOMETRIES = {
    "k1_s1_valid": ((1, 1), (1, 1), ((0, 0), (0, 0)), "conv", (2, 3, 5, 4), 2, True),
    "k3_s1_p1_cross": ((3, 3), (1, 1), ((1, 1), (1, 1)), "cross", (2, 2, 7, 6), 3, True),
    "k3_s2_asym_odd_dyn": ((3, 3), (2, 2), ((0, 1), (1, 0)), "conv", (2, 3, 9, 7), 2, False),
    "k4_s2_p1": ((4, 4), (2, 2), ((1, 1), (1, 1)), "conv", (1, 3, 8, 9), 4, True),
    "k5_s2_p2_dyn": ((5, 5), (2, 2), ((2, 2), (2, 2)), "conv", (2, 3, 11, 10), 3, False),
    "k5_s4_asym_cross": ((5, 5), (4, 4), ((0, 1), (2, 0)), "cross", (2, 2, 15, 13), 2, True),
    "k3_s4_leftover_dyn": ((3, 3), (4, 4), ((0, 0), (0, 0)), "conv", (1, 2, 14, 11), 2, False),
    "k3x5_s1x2_widepad": ((3, 5), (1, 2), ((3, 0), (0, 4)), "cross", (2, 2, 6, 9), 3, True),
    "k4_s1_asym_dyn": ((4, 4), (1, 1), ((2, 1), (1, 2)), "conv", (2, 2, 5, 5), 2, False),
}
OUTPUTS = ("conv", "conv_dX", "conv_dw", "deconv", "deconv_dtop", "deconv_dw")
GOLDEN_CASES = ("conv_k5_s2_p2", "conv_k3_s1_p1", "conv_k3_s2_p1", "conv_k4_s2_p1",
                "conv_k1_s1_p0", "deconv_k5_s2_p2", "deconv_k3_s1_p1", "deconv_k3_s2_p1",
                "deconv_k4_s2_p1", "deconv_k1_s1_p0")


def _rng(key):
    return np.random.default_rng(zlib.crc32(key.encode()))


def _f32(a):
    return np.asarray(a, dtype="float32")


def _mode(name):
    if name == "python":
        return backend.get_mode("python")
    # lib.dispatch.host_shape's rewrite carries the tags "jax" (in PyTensor's JAX mode) and
    # "pytorch" (which PyTensor's PyTorch mode lacks): dynamic sizes then compile without
    # splitting torch.compile's graph. test_pytorch_size_read_back covers the mode without it.
    return backend_mode(name).including(name)


def _call(name, fn, *args):
    """``fn(*args)``; JAX in full float32 (XLA may use TF32 for convolutions on a GPU)."""
    if name == "jax":
        import jax

        with jax.default_matmul_precision("highest"):
            return fn(*args)
    return fn(*args)


def _assert_close(actual, expected, what, rtol=1e-4):
    expected = np.asarray(expected)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    atol = 1e-5 * max(1.0, float(np.abs(expected).max(initial=0)))
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol, err_msg=what)


# ---------------------------------------------------------------------------------------------
# one function per backend: every geometry (forward, deconv, both gradients), golden, seed
# ---------------------------------------------------------------------------------------------

def _geometry_graph():
    """(inputs, input values, {key: output})."""
    inputs, values, outputs = [], [], {}

    def var(name, value, static):
        v = pt.tensor4(name, shape=value.shape if static else (None,) * 4)
        inputs.append(v)
        values.append(_f32(value))
        return v

    for key, (k, s, pad, mode, xshape, o, static) in GEOMETRIES.items():
        rng = _rng(key)
        n, c, h, w = xshape
        ho, wo = conv_out_size(h, k[0], s[0], pad[0]), conv_out_size(w, k[1], s[1], pad[1])
        X = var(f"{key}_X", rng.standard_normal(xshape), static)
        W = var(f"{key}_W", rng.standard_normal((o, c) + k), static)
        R = var(f"{key}_R", rng.standard_normal((n, o, ho, wo)), static)
        y = Conv2d(subsample=s, padding=pad, conv_mode=mode)(X, W)
        outputs[f"{key}_conv"] = y
        outputs[f"{key}_conv_dX"], outputs[f"{key}_conv_dw"] = pytensor.grad((y * R).sum(), [X, W])
        # the deconv of top (N, O, Ho, Wo) back to (H, W): a constant size when static, else
        # read from X's shape (a variable the Op does not take)
        top = var(f"{key}_top", rng.standard_normal((n, o, ho, wo)), static)
        R2 = var(f"{key}_R2", rng.standard_normal(xshape), static)
        in_hw = pt.constant(np.array([h, w], dtype="int64")) if static else X.shape[2:]
        d = Conv2dGradInputs(subsample=s, padding=pad, conv_mode=mode)(W, top, in_hw)
        outputs[f"{key}_deconv"] = d
        outputs[f"{key}_deconv_dtop"], outputs[f"{key}_deconv_dw"] = pytensor.grad(
            (d * R2).sum(), [top, W])

    if (golden.GOLDEN_DIR / "ops.npz").exists():
        data, _ = golden.load("ops")
        for case in GOLDEN_CASES:
            kind, k, s, p = re.fullmatch(r"(\w+?)_k(\d)_s(\d)_p(\d)", case).groups()
            s, p = (int(s),) * 2, (int(p),) * 2
            X = var(f"{case}_X", data[f"{case}_X"], True)
            W = var(f"{case}_w", data[f"{case}_w"], True)
            R = var(f"{case}_R", data[f"{case}_R"], True)
            y = (conv2d if kind == "conv" else deconv)(X, W, subsample=s, border_mode=p)
            outputs[f"{case}_out"] = y
            outputs[f"{case}_dX"], outputs[f"{case}_dw"] = pytensor.grad((y * R).sum(), [X, W])

    # the seed presentation: TensorFlow's conv2d_transpose(stride 4, 'SAME') of 1..16 by 5x5 ones
    x = var("seed_x", np.arange(1, 17).reshape(1, 1, 4, 4), True)
    w = var("seed_w", np.ones((1, 1, 5, 5)), True)
    outputs["seed"] = deconv(x, w, subsample=(4, 4), border_mode=((0, 1), (0, 1)))
    return inputs, values, outputs


def _build_geometry(name):
    inputs, values, outputs = _geometry_graph()
    fn = pytensor.function(inputs, list(outputs.values()), mode=_mode(name))
    results = _call(name, fn, *values)
    return fn, dict(zip(outputs, results))


_geometry_results = build_cache(_build_geometry)


@pytest.mark.parametrize("case", GEOMETRIES)
@pytest.mark.parametrize("name", BACKENDS)
def test_geometry_matches_perform(name, case):
    _, ref = _geometry_results("python")
    _, got = _geometry_results(name)
    for what in OUTPUTS:
        key = f"{case}_{what}"
        _assert_close(got[key], ref[key], f"{name} {key}")


@pytest.mark.parametrize("case", GOLDEN_CASES)
@pytest.mark.parametrize("name", BACKENDS)
def test_golden_conv(name, case):
    golden.load("ops")  # skips (or fails under CI) without the golden files
    _, got = _geometry_results(name)
    for what in ("out", "dX", "dw"):
        golden.assert_close("ops", f"{case}_{what}", got[f"{case}_{what}"])


def _seed_matrix():
    """The 16x16 result printed in the seed presentation (TensorFlow's output)."""
    seed_dir = golden.require(golden.SHARED / "seed")
    for path in sorted(seed_dir.glob("*.txt")):
        rows = [[float(v) for v in re.findall(r"\d+\.?", line)]
                for line in path.read_text().splitlines()
                if re.fullmatch(r"\s*\[{1,2}[\d.\s]+\]{1,2}\s*", line)]
        rows = [r for r in rows if len(r) == 16]
        if len(rows) == 16:
            return np.array(rows)
    pytest.fail(f"no 16x16 matrix in {seed_dir}/*.txt")


@pytest.mark.parametrize("name", BACKENDS)
def test_seed_deconv_example(name):
    expected = _seed_matrix()
    _, got = _geometry_results(name)
    np.testing.assert_array_equal(got["seed"][0, 0], expected)


def _require(name):
    if not backend.available(name) and not os.environ.get("CI"):
        pytest.skip(f"{name}: package not installed")


def test_host_shape_matches_the_graph():
    X = pt.tensor4("X")
    h = (X.shape[2] + 3) // 2
    size = pt.stack([pt.maximum(h, X.shape[3]) - 1, h * 2]) * np.array([2, 1])
    expected = pytensor.function([X], size, mode=_mode("python"))
    host = pytensor.function([X], host_shape(size), mode=_mode("python"))
    for shape in ((1, 1, 9, 4), (2, 3, 4, 11)):
        x = np.zeros(shape, "float32")
        np.testing.assert_array_equal(host(x), expected(x))
    assert host_shape(pt.lvector().sum() + X.shape[0]) is None  # reads a value


@pytest.mark.parametrize("name", BACKENDS)
def test_dynamic_sizes_are_read_from_shapes(name):
    fn, _ = _geometry_results(name)
    assert any(isinstance(node.op, HostShape) for node in fn.maker.fgraph.apply_nodes)


def test_jax_size_computed_from_values_is_an_error():
    _require("jax")
    w, top, hw = pt.tensor4("w"), pt.tensor4("top"), pt.lvector("hw")
    fn = pytensor.function([w, top, hw], Conv2dGradInputs(subsample=(2, 2))(w, top, hw),
                           mode=backend_mode("jax"))
    with pytest.raises(NotImplementedError, match="in_hw"):
        fn(np.ones((2, 3, 3, 3), "float32"), np.ones((1, 2, 4, 4), "float32"), [9, 9])


def test_pytorch_size_read_back():
    """Without the rewrite the size reaches the PyTorch kernels as a tensor: read eagerly."""
    _require("pytorch")
    backend_mode("pytorch")  # registers the kernels
    import torch
    from pytensor.link.pytorch.dispatch import pytorch_funcify

    rng = _rng("read_back")
    geometry = dict(subsample=(2, 2), padding=((0, 1), (1, 0)), conv_mode="conv")
    w, X = _f32(rng.standard_normal((2, 3, 3, 3))), _f32(rng.standard_normal((1, 3, 9, 7)))
    top = _f32(rng.standard_normal((1, 2, 4, 3)))
    a, b, size = pt.tensor4(), pt.tensor4(), pt.lvector()
    for op, args, hw in ((Conv2dGradInputs(**geometry), (w, top), [9, 7]),
                         (Conv2dGradWeights(**geometry), (X, top), [3, 3])):
        node = op.make_node(a, b, size)
        expected = pytensor.function([a, b, size], node.outputs[0], mode=_mode("python"))(*args, hw)
        got = pytorch_funcify(op, node=node)(*map(torch.as_tensor, args), torch.tensor(hw))
        _assert_close(got.numpy(), expected, str(op))


# ---------------------------------------------------------------------------------------------
# a tiny DCGAN: two Adam steps of both players
# ---------------------------------------------------------------------------------------------

nz, ngf, ndf, nc, nbatch = 8, 4, 4, 2, 6
relu, lrelu, tanh, sigmoid = Rectify(), LeakyRectify(), Tanh(), Sigmoid()


def gen(Z, w, w2, g2, b2, wx):
    h = pt.dot(Z, w).reshape((Z.shape[0], ngf * 2, 4, 4))                    # (nbatch, 8, 4, 4)
    h2 = deconv(h, w2, subsample=(2, 2), border_mode=(2, 2))                 # (nbatch, 4, 8, 8)
    h2 = relu(batchnorm(h2, g=g2, b=b2))
    return tanh(deconv(h2, wx, subsample=(2, 2), border_mode=(2, 2)))        # (nbatch, 2, 16, 16)


def discrim(X, w, w2, wy):
    h = lrelu(conv2d(X, w, subsample=(2, 2), border_mode=(2, 2)))            # (nbatch, 4, 8, 8)
    h2 = conv2d(h, w2, subsample=(2, 2), border_mode=(2, 2))                 # (nbatch, 8, 4, 4)
    return sigmoid(pt.dot(pt.flatten(h2, 2), wy))                            # (nbatch, 1)


def _build_dcgan(name):
    rng = np.random.RandomState(1)
    gen_params = [sharedX(rng.normal(0, 0.3, (nz, ngf * 2 * 16)), name="gw"),
                  sharedX(rng.normal(0, 0.3, (ngf * 2, ngf, 5, 5)), name="gw2"),
                  sharedX(rng.normal(1, 0.1, (ngf,)), name="gg2"),
                  sharedX(rng.normal(0, 0.1, (ngf,)), name="gb2"),
                  sharedX(rng.normal(0, 0.3, (ngf, nc, 5, 5)), name="gwx")]
    discrim_params = [sharedX(rng.normal(0, 0.3, (ndf, nc, 5, 5)), name="dw"),
                      sharedX(rng.normal(0, 0.3, (ndf * 2, ndf, 5, 5)), name="dw2"),
                      sharedX(rng.normal(0, 0.3, (ndf * 2 * 16, 1)), name="dwy")]
    X, Z = pt.tensor4("X"), pt.matrix("Z")  # dynamic shapes, as in the train scripts
    gX = gen(Z, *gen_params)
    p_real, p_gen = discrim(X, *discrim_params), discrim(gX, *discrim_params)
    d_cost = bce(pt.ones(p_real.shape), p_real) + bce(pt.zeros(p_gen.shape), p_gen)
    g_cost = bce(pt.ones(p_gen.shape), p_gen)
    updates = (Adam(lr=0.01, b1=0.5)(discrim_params, d_cost)
               + Adam(lr=0.01, b1=0.5)(gen_params, g_cost))
    fn = pytensor.function([X, Z], [g_cost, d_cost, p_gen, gX], updates=updates,
                           mode=_mode(name))

    data = np.random.RandomState(2)
    xs = [_f32(data.uniform(-1, 1, (nbatch, nc, 16, 16))) for _ in range(2)]
    zs = [_f32(data.uniform(-1, 1, (nbatch, nz))) for _ in range(2)]
    outs = [_call(name, fn, x, z) for x, z in zip(xs, zs)]
    params = {p.name: p.get_value() for p in gen_params + discrim_params}
    return fn, outs, params


_dcgan_results = build_cache(_build_dcgan)


@pytest.mark.parametrize("name", BACKENDS)
def test_dcgan_two_adam_steps_match_python(name):
    _, ref_outs, ref_params = _dcgan_results("python")
    fn, outs, params = _dcgan_results(name)
    for step, (got, ref) in enumerate(zip(outs, ref_outs), 1):
        for what, a, b in zip(("g_cost", "d_cost", "p_gen", "gX"), got, ref):
            _assert_close(np.asarray(a), b, f"{name} call {step}: {what}")
    for key, ref in ref_params.items():
        _assert_close(params[key], ref, f"{name} {key} after two steps")
    if name == "pytorch":
        # lib/dispatch/pytorch_linker.py exported the whole graph on fake tensors (no value read
        # in Python, so no eager fallback) once, and the second call reused it
        jit = fn.vm.jit_fn
        assert jit.eager_reason is None, jit.eager_reason
        assert len(jit.compiled) == 1, list(jit.compiled)
