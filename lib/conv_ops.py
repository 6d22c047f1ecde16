"""The 2-D convolution Ops: forward, gradient w.r.t. the input, gradient w.r.t. the weights.

All three share one geometry (``subsample``, ``padding``, ``conv_mode``) and close over each
other under differentiation, so any order of gradient is available:

- ``Conv2d(X, w)``                  X (N, C, H, W), w (O, C, kh, kw) -> (N, O, Ho, Wo)
- ``Conv2dGradInputs(w, top, hw)``  the adjoint of ``Conv2d`` in X -> (N, C, hw[0], hw[1]);
                                    this is ``deconv`` (the original's "fractionally strided"
                                    convolution, set up as the gradient of a dummy forward pass)
- ``Conv2dGradWeights(X, top, k)``  the adjoint of ``Conv2d`` in w -> (O, C, k[0], k[1])

with ``Ho = (H + pad_top + pad_bottom - kh) // sh + 1`` (likewise W).

``conv_mode='conv'`` is a TRUE convolution (the kernel is flipped), as cuDNN's default mode used
by the original's ``dnn_conv``; ``'cross'`` is cross-correlation. Padding is zero padding given as
``((top, bottom), (left, right))``.

Each Op has a NumPy ``perform`` (the reference; one BLAS matmul via ``tensordot``) and C code
for PyTensor's C/CVM backend; the Numba, JAX and PyTorch kernels are registered in
``lib/dispatch``.
"""
import hashlib
from functools import cache
from pathlib import Path

import numpy as np
import pytensor.tensor as pt
from numpy.lib.stride_tricks import sliding_window_view
from pytensor.gradient import disconnected_type
from pytensor.graph.basic import Apply, Constant
from pytensor.link.c.op import COp
from pytensor.link.c.params_type import ParamsType
from pytensor.scalar import int64
from pytensor.scalar.basic import upcast
from pytensor.tensor.type import TensorType, integer_dtypes

CONV_MODES = ("conv", "cross")


def normalize_padding(border_mode):
    """``border_mode`` as ``((top, bottom), (left, right))`` of non-negative ints.

    Accepts ``'valid'``, an int, ``(ph, pw)`` (the original's symmetric form) or the nested form.
    """
    if isinstance(border_mode, str):
        if border_mode != "valid":
            raise ValueError(f"border_mode={border_mode!r}: expected 'valid', an int, (ph, pw) "
                             "or ((top, bottom), (left, right))")
        return ((0, 0), (0, 0))
    if isinstance(border_mode, (int, np.integer)):
        border_mode = (int(border_mode), int(border_mode))
    if len(border_mode) != 2:
        raise ValueError(f"border_mode={border_mode!r}: expected 2 entries (height, width)")
    pads = []
    for p in border_mode:
        if isinstance(p, (int, np.integer)):
            p = (int(p), int(p))
        p = tuple(int(v) for v in p)
        if len(p) != 2 or min(p) < 0:
            raise ValueError(f"border_mode={border_mode!r}: paddings must be non-negative ints")
        pads.append(p)
    return tuple(pads)


def normalize_subsample(subsample):
    """``subsample`` as ``(sh, sw)`` of positive ints."""
    if isinstance(subsample, (int, np.integer)):
        subsample = (int(subsample), int(subsample))
    subsample = tuple(int(s) for s in subsample)
    if len(subsample) != 2 or min(subsample) < 1:
        raise ValueError(f"subsample={subsample!r}: expected two positive ints")
    return subsample


def conv_out_size(size, k, s, pad):
    """Output length of a strided, padded convolution along one axis."""
    return (size + pad[0] + pad[1] - k) // s + 1


# ---------------------------------------------------------------------------------------------
# NumPy reference kernels (cross-correlation; the Ops flip the kernel for conv_mode='conv')
# ---------------------------------------------------------------------------------------------

def _windows(Xp, kh, kw, s, out_hw):
    """(N, C, Ho, Wo, kh, kw) strided view of the padded input's receptive fields."""
    v = sliding_window_view(Xp, (kh, kw), axis=(2, 3))
    return v[:, :, : (out_hw[0] - 1) * s[0] + 1 : s[0], : (out_hw[1] - 1) * s[1] + 1 : s[1]]


def _pad(X, pad):
    if pad == ((0, 0), (0, 0)):
        return X
    return np.pad(X, ((0, 0), (0, 0), pad[0], pad[1]))


def corr2d(X, w, s, pad):
    """Strided, zero-padded cross-correlation: (N, C, H, W) x (O, C, kh, kw) -> (N, O, Ho, Wo)."""
    kh, kw = w.shape[2:]
    out_hw = (conv_out_size(X.shape[2], kh, s[0], pad[0]),
              conv_out_size(X.shape[3], kw, s[1], pad[1]))
    win = _windows(_pad(X, pad), kh, kw, s, out_hw)
    out = np.tensordot(win, w, axes=([1, 4, 5], [1, 2, 3]))  # (N, Ho, Wo, O)
    return np.ascontiguousarray(out.transpose(0, 3, 1, 2))


def corr2d_grad_inputs(w, top, in_hw, s, pad):
    """Adjoint of ``corr2d`` in its input: scatter ``top`` back through ``w`` to (N, C, *in_hw)."""
    N, _, Ho, Wo = top.shape
    C, kh, kw = w.shape[1:]
    Hp, Wp = in_hw[0] + sum(pad[0]), in_hw[1] + sum(pad[1])
    cols = np.tensordot(top, w, axes=([1], [0]))  # (N, Ho, Wo, C, kh, kw)
    Xp = np.zeros((N, C, Hp, Wp), dtype=top.dtype)
    for i in range(kh):
        for j in range(kw):
            Xp[:, :, i : i + (Ho - 1) * s[0] + 1 : s[0], j : j + (Wo - 1) * s[1] + 1 : s[1]] += (
                cols[..., i, j].transpose(0, 3, 1, 2))
    return np.ascontiguousarray(Xp[:, :, pad[0][0] : pad[0][0] + in_hw[0],
                                      pad[1][0] : pad[1][0] + in_hw[1]])


def corr2d_grad_weights(X, top, k_hw, s, pad):
    """Adjoint of ``corr2d`` in its kernel: (N, C, H, W), (N, O, Ho, Wo) -> (O, C, kh, kw)."""
    win = _windows(_pad(X, pad), k_hw[0], k_hw[1], s, top.shape[2:])
    return np.ascontiguousarray(np.tensordot(top, win, axes=([0, 2, 3], [0, 2, 3])))


def check_geometry(op_name, in_hw, k_hw, out_hw, s, pad):
    """Raise ValueError unless ``out_hw`` is what a conv of ``in_hw`` by ``k_hw`` produces."""
    for axis in range(2):
        expect = conv_out_size(in_hw[axis], k_hw[axis], s[axis], pad[axis])
        if expect < 1 or expect != out_hw[axis]:
            raise ValueError(
                f"{op_name}: inconsistent sizes on axis {axis + 2}: input {in_hw[axis]}, kernel "
                f"{k_hw[axis]}, stride {s[axis]}, padding {pad[axis]} give {expect}, "
                f"not {out_hw[axis]}")


def _static_pair(v):
    """The two ints of a constant shape vector, or (None, None)."""
    if isinstance(v, Constant):
        return tuple(int(x) for x in np.asarray(v.data))
    return (None, None)


def _shape_vector(v, name):
    v = pt.as_tensor_variable(v)
    if v.ndim != 1 or v.dtype not in integer_dtypes:
        raise TypeError(f"{name} must be an integer vector of length 2, got {v.type}")
    return v


@cache
def _c_source():
    """The C++ kernels shared by the three Ops, and a hash of them (part of the cache version)."""
    text = (Path(__file__).parent / "c_code" / "conv.cpp").read_text()
    return text, int(hashlib.sha256(text.encode()).hexdigest()[:12], 16)


class _ConvBase(COp):
    __props__ = ("subsample", "padding", "conv_mode")

    def __init__(self, subsample=(1, 1), padding=((0, 0), (0, 0)), conv_mode="conv"):
        if conv_mode not in CONV_MODES:
            raise ValueError(f"conv_mode={conv_mode!r}: expected 'conv' or 'cross'")
        self.subsample = normalize_subsample(subsample)
        self.padding = normalize_padding(padding)
        self.conv_mode = conv_mode

    @property
    def flip(self):
        return self.conv_mode == "conv"

    def _ops(self):
        kw = dict(subsample=self.subsample, padding=self.padding, conv_mode=self.conv_mode)
        return Conv2d(**kw), Conv2dGradInputs(**kw), Conv2dGradWeights(**kw)

    @staticmethod
    def _as4d(x, name):
        x = pt.as_tensor_variable(x)
        if x.ndim != 4:
            raise TypeError(f"{name} must be a 4-D tensor, got {x.type}")
        return x

    # --- C implementation (PyTensor's C/CVM backend); the kernels are in c_code/conv.cpp ---
    # im2col/col2im and one GEMM by numpy's own BLAS per call (no BLAS to configure). Each Op
    # class keeps, per dtype and process, one scratch buffer as large as its largest call's
    # im2col matrix (~450 MB at the faces paper's scale in float32).
    _c_kernel = None  # the C++ function of lib/c_code/conv.cpp computing this Op

    # The geometry reaches the C code as run-time params, not literals, so one compiled module
    # serves every stride/padding/mode (``perform`` does not take params in PyTensor 3).
    params_type = ParamsType(sh=int64, sw=int64, pad_t=int64, pad_b=int64, pad_l=int64,
                             pad_r=int64, flip=int64)

    def get_params(self, node):
        (sh, sw), ((pad_t, pad_b), (pad_l, pad_r)) = self.subsample, self.padding
        return self.params_type.get_params(sh=sh, sw=sw, pad_t=pad_t, pad_b=pad_b, pad_l=pad_l,
                                           pad_r=pad_r, flip=int(self.flip))

    def c_support_code(self, **kwargs):
        return _c_source()[0]

    def c_code(self, node, name, inputs, outputs, sub):
        dtype = node.outputs[0].dtype
        if dtype not in ("float32", "float64"):
            # PyTensor falls back to ``perform`` for other dtypes
            raise NotImplementedError(f"{type(self).__name__}: no C code for {dtype}")
        p = sub["params"]
        args = ", ".join(inputs)
        return f"""
        {{
            const dcgan_conv::Geom geom = {{{p}->sh, {p}->sw, {p}->pad_t, {p}->pad_b,
                                           {p}->pad_l, {p}->pad_r, (int){p}->flip}};
            if (dcgan_conv::{self._c_kernel}<npy_{dtype}>({args}, &{outputs[0]}, geom) != 0) {{
                {sub["fail"]}
            }}
        }}"""

    def c_code_cache_version(self):
        return (3, _c_source()[1])  # bump the 3 when c_code or get_params change


class Conv2d(_ConvBase):
    """``conv2d``: X (N, C, H, W) with kernels w (O, C, kh, kw) -> (N, O, Ho, Wo)."""

    _c_kernel = "forward"

    def make_node(self, X, w):
        X, w = self._as4d(X, "X"), self._as4d(w, "w")
        dtype = upcast(X.dtype, w.dtype)
        n, c, h, wd = X.type.shape
        o, c2, kh, kw = w.type.shape
        if c is not None and c2 is not None and c != c2:
            raise ValueError(f"conv2d: X has {c} channels but w expects {c2}")
        s, pad = self.subsample, self.padding
        ho = conv_out_size(h, kh, s[0], pad[0]) if None not in (h, kh) else None
        wo = conv_out_size(wd, kw, s[1], pad[1]) if None not in (wd, kw) else None
        if (ho is not None and ho < 1) or (wo is not None and wo < 1):
            raise ValueError(f"conv2d: kernel {(kh, kw)} is larger than the padded input "
                             f"{(h, wd)} with padding {pad}")
        out = TensorType(dtype, shape=(n, o, ho, wo))()
        return Apply(self, [X, w], [out])

    def perform(self, node, inputs, outputs):
        X, w = inputs
        if X.shape[1] != w.shape[1]:
            raise ValueError(f"conv2d: X has {X.shape[1]} channels but w expects {w.shape[1]}")
        k_hw = w.shape[2:]
        if any(X.shape[2 + i] + sum(self.padding[i]) < k_hw[i] for i in range(2)):
            raise ValueError(f"conv2d: kernel {k_hw} is larger than the padded input "
                             f"{X.shape[2:]} with padding {self.padding}")
        if self.flip:
            w = w[:, :, ::-1, ::-1]
        out = corr2d(X, w, self.subsample, self.padding)
        outputs[0][0] = out.astype(node.outputs[0].dtype, copy=False)

    def infer_shape(self, *args):
        node, shapes = args[-2:]  # PyTensor 3.0: (fgraph, node, shapes); later: (node, shapes)
        xs, ws = shapes
        s, pad = self.subsample, self.padding
        ho = (xs[2] + sum(pad[0]) - ws[2]) // s[0] + 1
        wo = (xs[3] + sum(pad[1]) - ws[3]) // s[1] + 1
        return [(xs[0], ws[0], ho, wo)]

    def pullback(self, inputs, outputs, output_grads):
        X, w = inputs
        (g,) = output_grads
        _, grad_inputs, grad_weights = self._ops()
        return [grad_inputs(w, g, spatial_shape(X)), grad_weights(X, g, spatial_shape(w))]


class Conv2dGradInputs(_ConvBase):
    """Adjoint of ``Conv2d`` in X: w (O, C, kh, kw), top (N, O, Ho, Wo), in_hw -> (N, C, *in_hw).

    With the forward pass's geometry this is the "deconvolution" (fractionally strided
    convolution) of ``top`` by ``w``.
    """

    _c_kernel = "grad_inputs"

    def make_node(self, w, top, in_hw):
        w, top = self._as4d(w, "w"), self._as4d(top, "top")
        in_hw = _shape_vector(in_hw, "in_hw")
        dtype = upcast(w.dtype, top.dtype)
        o, c, _, _ = w.type.shape
        n, o2, _, _ = top.type.shape
        if o is not None and o2 is not None and o != o2:
            raise ValueError(f"deconv: input has {o2} channels but w expects {o} (w.shape[0])")
        out = TensorType(dtype, shape=(n, c) + _static_pair(in_hw))()
        return Apply(self, [w, top, in_hw], [out])

    def perform(self, node, inputs, outputs):
        w, top, in_hw = inputs
        in_hw = tuple(int(v) for v in in_hw)
        if top.shape[1] != w.shape[0]:
            raise ValueError(f"deconv: input has {top.shape[1]} channels but w expects {w.shape[0]}")
        check_geometry("deconv", in_hw, w.shape[2:], top.shape[2:], self.subsample, self.padding)
        if self.flip:
            w = w[:, :, ::-1, ::-1]
        out = corr2d_grad_inputs(w, top, in_hw, self.subsample, self.padding)
        outputs[0][0] = out.astype(node.outputs[0].dtype, copy=False)

    def infer_shape(self, *args):
        node, shapes = args[-2:]  # PyTensor 3.0: (fgraph, node, shapes); later: (node, shapes)
        ws, ts, _ = shapes
        in_hw = node.inputs[2]
        return [(ts[0], ws[1], in_hw[0], in_hw[1])]

    def connection_pattern(self, node):
        return [[True], [True], [False]]

    def pullback(self, inputs, outputs, output_grads):
        w, top, _ = inputs
        (g,) = output_grads
        conv, _, grad_weights = self._ops()
        return [grad_weights(g, top, spatial_shape(w)), conv(g, w), disconnected_type()]


class Conv2dGradWeights(_ConvBase):
    """Adjoint of ``Conv2d`` in w: X (N, C, H, W), top (N, O, Ho, Wo), k_hw -> (O, C, *k_hw)."""

    _c_kernel = "grad_weights"

    def make_node(self, X, top, k_hw):
        X, top = self._as4d(X, "X"), self._as4d(top, "top")
        k_hw = _shape_vector(k_hw, "k_hw")
        dtype = upcast(X.dtype, top.dtype)
        out = TensorType(dtype, shape=(top.type.shape[1], X.type.shape[1]) + _static_pair(k_hw))()
        return Apply(self, [X, top, k_hw], [out])

    def perform(self, node, inputs, outputs):
        X, top, k_hw = inputs
        k_hw = tuple(int(v) for v in k_hw)
        check_geometry("conv2d weight gradient", X.shape[2:], k_hw, top.shape[2:],
                       self.subsample, self.padding)
        dw = corr2d_grad_weights(X, top, k_hw, self.subsample, self.padding)
        if self.flip:
            dw = np.ascontiguousarray(dw[:, :, ::-1, ::-1])
        outputs[0][0] = dw.astype(node.outputs[0].dtype, copy=False)

    def infer_shape(self, *args):
        node, shapes = args[-2:]  # PyTensor 3.0: (fgraph, node, shapes); later: (node, shapes)
        xs, ts, _ = shapes
        k_hw = node.inputs[2]
        return [(ts[1], xs[1], k_hw[0], k_hw[1])]

    def connection_pattern(self, node):
        return [[True], [True], [False]]

    def pullback(self, inputs, outputs, output_grads):
        X, top, _ = inputs
        (g,) = output_grads
        conv, grad_inputs, _ = self._ops()
        return [grad_inputs(g, top, spatial_shape(X)), conv(X, g), disconnected_type()]


def spatial_shape(x):
    """The (H, W) of a 4-D variable: a constant when its static shape knows it."""
    h, w = x.type.shape[2:]
    if h is not None and w is not None:
        return pt.constant(np.array([h, w], dtype="int64"))
    return x.shape[2:]
