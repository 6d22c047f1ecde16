"""The conv Ops' C code (lib/c_code/conv.cpp, run by the CVM linker) against their NumPy perform.

Every geometry runs all three Ops (forward, input gradient, weight gradient) in float32 and
float64. The geometry reaches the C code as run-time params, so the whole file compiles six
small modules (three Ops x two dtypes) once per compiledir.
"""
import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from pytensor.compile.mode import Mode
from pytensor.gradient import verify_grad
from pytensor.link.vm import VMLinker

from lib.backend import get_mode
from lib.conv_ops import (Conv2d, Conv2dGradInputs, Conv2dGradWeights, conv_out_size,
                          normalize_padding, normalize_subsample)

pytestmark = pytest.mark.skipif(not pytensor.config.cxx, reason="no C++ compiler")

TOL = {"float32": dict(rtol=1e-5, atol=1e-5), "float64": dict(rtol=1e-12, atol=1e-12)}

# (N, C, H, W), (O, kh, kw), subsample, padding, conv_mode
GEOMETRIES = {
    "k1-s1-batch2": ((2, 3, 5, 7), (4, 1, 1), 1, 0, "conv"),
    "k1-s2-batch1-cross": ((1, 2, 7, 6), (3, 1, 1), 2, 0, "cross"),
    "k3-s1-p1": ((2, 3, 8, 8), (5, 3, 3), 1, 1, "conv"),
    "k3-s1-p1-odd-cross": ((1, 4, 9, 7), (2, 3, 3), 1, 1, "cross"),
    "k3-s2-p1-odd": ((3, 2, 9, 11), (4, 3, 3), 2, 1, "conv"),
    "k3-s2-p0-unused-border": ((2, 3, 10, 10), (2, 3, 3), 2, 0, "conv"),
    "k4-s2-p1": ((2, 3, 8, 8), (3, 4, 4), 2, 1, "conv"),
    "k4-s2-asym-cross": ((2, 3, 9, 10), (4, 4, 4), 2, ((1, 2), (2, 1)), "cross"),
    "k4-s4-p0": ((2, 3, 8, 8), (2, 4, 4), 4, 0, "conv"),
    "k5-s2-p2-paper": ((2, 3, 16, 16), (8, 5, 5), 2, 2, "conv"),
    "k5-s2-p2-odd-cross": ((1, 5, 13, 15), (6, 5, 5), 2, 2, "cross"),
    "k5-s4-asym-seed-demo": ((1, 1, 16, 16), (1, 5, 5), 4, ((0, 1), (0, 1)), "conv"),
    "k5-s4-p0-cross": ((2, 2, 19, 17), (3, 5, 5), 4, 0, "cross"),
    "k5-s1-pad-exceeds-input": ((2, 2, 3, 3), (3, 5, 5), 1, 2, "conv"),
    "k5-s2x1-asym-cross": ((3, 2, 11, 6), (5, 5, 5), (2, 1), ((0, 3), (4, 0)), "cross"),
    "k3-s1x2-asym": ((2, 3, 7, 9), (4, 3, 3), (1, 2), ((2, 0), (1, 3)), "conv"),
    "k3x5-s2-p1x2": ((2, 2, 10, 12), (3, 3, 5), 2, (1, 2), "conv"),
    "k5-s2-p2-wide": ((4, 16, 12, 12), (32, 5, 5), 2, 2, "conv"),
    # more channels than output pixels: the forward GEMM's result is pixel-major
    "k5-s2-p2-deep": ((3, 16, 8, 8), (32, 5, 5), 2, 2, "conv"),
    "k3-s2-p1-deep-batch1-cross": ((1, 4, 5, 5), (12, 3, 3), 2, 1, "cross"),
    # several images per work unit of im2col/col2im, blocks of uneven size
    "k3-s2-p1-image-blocks": ((12, 16, 7, 7), (8, 3, 3), 2, 1, "conv"),
    "k5-s1-p2-uneven-blocks-cross": ((13, 2, 6, 5), (3, 5, 5), 1, 2, "cross"),
    # large enough (> 4 MB of columns and of output) for the loops to run on several threads
    "k5-s1-p2-threaded": ((16, 8, 32, 32), (64, 5, 5), 1, 2, "conv"),
    "k5-s2-p2-deep-threaded": ((64, 16, 8, 8), (1024, 5, 5), 2, 2, "conv"),
}


def _ops(subsample, padding, conv_mode):
    kw = dict(subsample=normalize_subsample(subsample), padding=normalize_padding(padding),
              conv_mode=conv_mode)
    return Conv2d(**kw), Conv2dGradInputs(**kw), Conv2dGradWeights(**kw)


_FUNCTIONS = {}


def functions(dtype, subsample, padding, conv_mode, mode):
    """One compiled function computing the three Ops from (X, w, top, in_hw, k_hw)."""
    key = (dtype, normalize_subsample(subsample), normalize_padding(padding), conv_mode, mode)
    if key not in _FUNCTIONS:
        conv, grad_inputs, grad_weights = _ops(subsample, padding, conv_mode)
        X, w, top = (pt.tensor4(n, dtype=dtype) for n in ("X", "w", "top"))
        in_hw, k_hw = pt.lvector("in_hw"), pt.lvector("k_hw")
        outs = [conv(X, w), grad_inputs(w, top, in_hw), grad_weights(X, top, k_hw)]
        _FUNCTIONS[key] = pytensor.function([X, w, top, in_hw, k_hw], outs,
                                            mode=get_mode(mode))
    return _FUNCTIONS[key]


def assert_runs_c_code(f, n_ops=None):
    """The conv nodes of ``f`` run compiled C thunks (CVM silently runs the Python perform
    instead when an Op has no C code for its dtype, or when no C++ compiler is configured)."""
    conv_ops = (Conv2d, Conv2dGradInputs, Conv2dGradWeights)
    checked = 0
    for node, thunk in zip(f.vm.nodes, f.vm.thunks, strict=True):
        if isinstance(node.op, conv_ops):
            assert hasattr(thunk, "cthunk"), f"{node.op} ran its Python perform, not C code"
            checked += 1
    assert checked == (n_ops if n_ops is not None else checked) and checked > 0


def random_inputs(rng, dtype, xshape, wshape, subsample, padding):
    (N, C, H, W), (O, kh, kw) = xshape, wshape
    s, pad = normalize_subsample(subsample), normalize_padding(padding)
    Ho, Wo = conv_out_size(H, kh, s[0], pad[0]), conv_out_size(W, kw, s[1], pad[1])
    # scaled so that every output is O(1), as with a trained net's activations and gradients:
    # float32 tolerances then measure rounding, not the size of the sums
    X = rng.standard_normal((N, C, H, W)).astype(dtype)
    w = (rng.standard_normal((O, C, kh, kw)) / np.sqrt(C * kh * kw)).astype(dtype)
    top = (rng.standard_normal((N, O, Ho, Wo)) / np.sqrt(max(1, N * Ho * Wo))).astype(dtype)
    return X, w, top, np.array([H, W]), np.array([kh, kw])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", list(GEOMETRIES))
def test_c_matches_perform(name, dtype):
    xshape, wshape, subsample, padding, conv_mode = GEOMETRIES[name]
    rng = np.random.default_rng([len(name), sum(map(ord, name)), dtype == "float64"])
    inputs = random_inputs(rng, dtype, xshape, wshape, subsample, padding)
    f_c = functions(dtype, subsample, padding, conv_mode, "c")
    f_py = functions(dtype, subsample, padding, conv_mode, "python")
    assert_runs_c_code(f_c, n_ops=3)
    for _ in range(2):  # the second call reuses the output storage and the workspace
        for out_c, out_py, what in zip(f_c(*inputs), f_py(*inputs),
                                       ["conv2d", "grad_inputs", "grad_weights"]):
            assert out_c.dtype == dtype
            assert out_c.shape == out_py.shape, what
            np.testing.assert_allclose(out_c, out_py, **TOL[dtype], err_msg=what)


def test_output_storage_reused_and_resized():
    """The C code writes into the previous call's output array while the shape holds (kept
    between calls when the linker does not garbage-collect), and replaces it when it changes."""
    X, w = pt.tensor4("X"), pt.tensor4("w")
    conv = _ops(2, 2, "conv")[0]
    y = conv(X, w)
    no_gc = Mode(linker=VMLinker(allow_gc=False, use_cloop=True), optimizer="fast_run")
    f = pytensor.function([X, w], (y**2).sum(), mode=no_gc)  # y stays an intermediate
    assert_runs_c_code(f, n_ops=1)
    node = next(n for n in f.vm.nodes if isinstance(n.op, Conv2d))
    f_py = pytensor.function([X, w], y, mode=get_mode("python"))
    rng = np.random.default_rng(0)
    w_v = rng.standard_normal((4, 3, 5, 5)).astype("float32")
    buffers = []
    for n in (2, 2, 3, 3):
        X_v = rng.standard_normal((n, 3, 8, 8)).astype("float32")
        out = f(X_v, w_v)
        buffers.append(f.vm.storage_map[node.outputs[0]][0])
        np.testing.assert_allclose(buffers[-1], f_py(X_v, w_v), **TOL["float32"])
        np.testing.assert_allclose(out, (buffers[-1].astype("float64")**2).sum(), rtol=1e-5)
    assert buffers[1] is buffers[0]
    assert buffers[2] is not buffers[1] and buffers[2].shape == (3, 4, 4, 4)
    assert buffers[3] is buffers[2]


def test_mixed_dtypes_and_strided_inputs():
    """Inputs are cast to the output dtype and made contiguous by the C code."""
    X, w = pt.tensor4("X", dtype="float32"), pt.tensor4("w", dtype="float64")
    conv, grad_inputs, grad_weights = _ops(2, ((1, 2), (0, 1)), "conv")
    # transposed views of the inputs reach the Ops as non-contiguous arrays
    Xt, wt = X.transpose(0, 1, 3, 2), w.transpose(0, 1, 3, 2)
    top = conv(Xt, wt)
    outs = [top, grad_inputs(wt, top, Xt.shape[2:]), grad_weights(Xt, top, wt.shape[2:])]
    f_c = pytensor.function([X, w], outs, mode=get_mode("c"))
    f_py = pytensor.function([X, w], outs, mode=get_mode("python"))
    assert_runs_c_code(f_c, n_ops=3)
    rng = np.random.default_rng(1)
    X_v = rng.standard_normal((2, 3, 9, 8)).astype("float32")
    w_v = rng.standard_normal((4, 3, 3, 4))
    for out_c, out_py in zip(f_c(X_v, w_v), f_py(X_v, w_v)):
        assert out_c.dtype == "float64"
        np.testing.assert_allclose(out_c, out_py, **TOL["float64"])


def test_empty_batch():
    inputs = random_inputs(np.random.default_rng(2), "float32", (0, 3, 8, 8), (4, 5, 5), 2, 2)
    for out_c, out_py in zip(functions("float32", 2, 2, "conv", "c")(*inputs),
                             functions("float32", 2, 2, "conv", "python")(*inputs)):
        assert out_c.shape == out_py.shape
        np.testing.assert_array_equal(out_c, out_py)


@pytest.mark.parametrize("op, args, match", [
    ("conv2d", dict(X=(2, 4, 8, 8)), "conv2d: X has 4 channels but w expects 3"),
    ("conv2d", dict(X=(2, 3, 2, 2), pad=0), r"conv2d: kernel \(5, 5\) larger than the padded"),
    ("grad_inputs", dict(top=(2, 5, 4, 4)), "deconv: input has 5 channels but w expects 4"),
    ("grad_inputs", dict(in_hw=[9, 8]),
     r"deconv: inconsistent sizes on axis 2: input 9, kernel 5, stride 2, padding \(2, 2\) "
     "give 5, not 4"),
    ("grad_inputs", dict(in_hw=[8]), "deconv: in_hw must have 2 entries"),
    ("grad_weights", dict(k_hw=[5, 4]),
     r"conv2d weight gradient: inconsistent sizes on axis 3: input 8, kernel 4, stride 2, "
     r"padding \(2, 2\) give 5, not 4"),
    ("grad_weights", dict(top=(3, 4, 4, 4)), "X has batch size 2 but top has 3"),
    ("grad_weights", dict(k_hw=[0, 5]), "k_hw must be >= 1"),
], ids=["conv-channels", "conv-kernel-too-large", "deconv-channels", "deconv-geometry",
        "deconv-in_hw-length", "grad_weights-geometry", "grad_weights-batch",
        "grad_weights-k_hw"])
def test_errors_are_value_errors(op, args, match):
    pad = args.get("pad", 2)
    conv, grad_inputs, grad_weights = _ops(2, pad, "conv")
    X, w, top = pt.tensor4("X"), pt.tensor4("w"), pt.tensor4("top")
    in_hw, k_hw = pt.lvector("in_hw"), pt.lvector("k_hw")
    rng = np.random.default_rng(3)
    X_v = rng.standard_normal(args.get("X", (2, 3, 8, 8))).astype("float32")
    w_v = rng.standard_normal((4, 3, 5, 5)).astype("float32")
    top_v = rng.standard_normal(args.get("top", (2, 4, 4, 4))).astype("float32")
    graph, inputs = {
        "conv2d": (conv(X, w), [(X, X_v), (w, w_v)]),
        "grad_inputs": (grad_inputs(w, top, in_hw),
                        [(w, w_v), (top, top_v), (in_hw, args.get("in_hw", [8, 8]))]),
        "grad_weights": (grad_weights(X, top, k_hw),
                         [(X, X_v), (top, top_v), (k_hw, args.get("k_hw", [5, 5]))]),
    }[op]
    f = pytensor.function([v for v, _ in inputs], graph, mode=get_mode("c"))
    assert_runs_c_code(f, n_ops=1)
    with pytest.raises(ValueError, match=match):
        f(*[value for _, value in inputs])


@pytest.mark.parametrize("subsample, padding, conv_mode", [
    (2, 2, "conv"), ((1, 2), ((2, 0), (1, 1)), "cross")])
def test_gradients_of_c_code(subsample, padding, conv_mode):
    """The C Ops are each other's adjoints (their pullbacks are built from the same Ops)."""
    conv, grad_inputs, _ = _ops(subsample, padding, conv_mode)
    rng = np.random.default_rng(4)
    X_v, w_v, top_v, in_hw, _ = random_inputs(rng, "float64", (2, 2, 6, 7), (3, 3, 3),
                                              subsample, padding)
    verify_grad(lambda X, w: conv(X, w), [X_v, w_v], rng=rng, mode=get_mode("c"))
    verify_grad(lambda w, top: grad_inputs(w, top, in_hw), [w_v, top_v], rng=rng,
                mode=get_mode("c"))


def test_concurrent_calls_from_python_threads():
    """The Ops release the GIL: calls running at once (from separate functions: a PyTensor
    function is not itself thread-safe) share compiled modules but not the cached workspace."""
    from concurrent.futures import ThreadPoolExecutor

    rng = np.random.default_rng(5)
    cases = [random_inputs(rng, "float32", (8, 8, 32, 32), (16, 5, 5), 2, 2) for _ in range(4)]
    f_py = functions("float32", 2, 2, "conv", "python")
    expected = [f_py(*inputs) for inputs in cases]
    conv, grad_inputs, grad_weights = _ops(2, 2, "conv")
    X, w, top = (pt.tensor4(n) for n in ("X", "w", "top"))
    in_hw, k_hw = pt.lvector("in_hw"), pt.lvector("k_hw")
    outs = [conv(X, w), grad_inputs(w, top, in_hw), grad_weights(X, top, k_hw)]
    fns = [pytensor.function([X, w, top, in_hw, k_hw], outs, mode=get_mode("c"))
           for _ in cases]

    def run(i):
        return [fns[i](*cases[i]) for _ in range(3)]

    with ThreadPoolExecutor(len(cases)) as pool:
        results = list(pool.map(run, range(len(cases))))
    for outs_per_call, want in zip(results, expected):
        for outs in outs_per_call:
            for got, ref in zip(outs, want):
                np.testing.assert_allclose(got, ref, **TOL["float32"])
