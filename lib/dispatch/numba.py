"""Native Numba kernels for the convolution Ops in ``lib.conv_ops``, cacheable by PyTensor.

Importing this module registers ``Conv2d``, ``Conv2dGradInputs`` and ``Conv2dGradWeights`` with
PyTensor's Numba dispatcher (``register_funcify_default_op_cache_key``). Without it PyTensor falls
back to object mode, which pickles every shared parameter into the compiled code (slow, and out
of memory at the paper's width). Each kernel closes over ints only (stride, padding, flip), so the
compiled code is cached under PyTensor's compiledir and keyed by the Op's props.

All three are im2col / col2im loops plus ONE matrix product (BLAS sgemm for float32) per call,
in the inputs' precision (float32 stays float32). The column buffer holds one output position
per row:

    cols[(n, ho, wo), (c, i, j)] = Xpad[n, c, ho*sh + i, wo*sw + j]       (N*Ho*Wo, C*kh*kw)

i.e. the cross-correlation windows; ``conv_mode='conv'`` (true convolution) only changes how the
kernel is packed (flipped). With ``wm`` the kernel as an (O, C*kh*kw) matrix and ``T`` the
output (or its gradient) as an (N*Ho*Wo, O) matrix:

    forward           T    = cols @ wm.T             (N*Ho*Wo, O)
    gradient in X     cols = T @ wm, then col2im     (N*Ho*Wo, C*kh*kw)
    gradient in w     wm   = T.T @ cols  if O > C*kh*kw,  else (cols.T @ T).T

The row-per-position layout is as fast as the transposed (C*kh*kw, N*Ho*Wo) one for the wide
layers and faster for the thin first and last ones (3 channels). The weight gradient contracts
over the long N*Ho*Wo axis, where OpenBLAS is far slower when the product's first (row-major)
dimension is the smaller one, so the product is taken with the taller output (bench/README.md
has the timings).
"""
import hashlib
from pathlib import Path

import numpy as np
from pytensor.link.numba.dispatch import basic as numba_basic
from pytensor.link.numba.dispatch.basic import register_funcify_default_op_cache_key

from lib.conv_ops import Conv2d, Conv2dGradInputs, Conv2dGradWeights
from lib.reduce_ops import ChannelSum

# PyTensor keys the numba cache by the Op's props only: a changed kernel with the same key would
# load the old machine code. Salting the key with this file's hash recompiles after any edit.
CACHE_VERSION = int(hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:12], 16)

njit = numba_basic.numba_njit


def _geometry(op):
    """The Op's props as plain ints: (sh, sw, pad_top, pad_bottom, pad_left, pad_right, flip)."""
    (sh, sw), ((pt, pb), (pl, pr)) = op.subsample, op.padding
    return int(sh), int(sw), int(pt), int(pb), int(pl), int(pr), int(op.conv_mode == "conv")


def _check_float(node):
    dtype = node.outputs[0].type.dtype
    if dtype not in ("float32", "float64"):
        raise TypeError(f"{node.op}: the Numba kernels take float32 or float64, got {dtype}")


# ---------------------------------------------------------------------------------------------
# Building blocks
# ---------------------------------------------------------------------------------------------

@njit
def _im2col(X, cols, kh, kw, sh, sw, pt, pl, Ho, Wo):
    """Fill ``cols`` (N*Ho*Wo, C*kh*kw) with the zero-padded windows of X (N, C, H, W)."""
    N, C, H, W = X.shape
    for n in range(N):
        for ho in range(Ho):
            for wo in range(Wo):
                r = (n * Ho + ho) * Wo + wo
                x0 = wo * sw - pl
                j_lo, j_hi = _clip(-x0, W - x0, kw)
                for c in range(C):
                    for i in range(kh):
                        h = ho * sh + i - pt
                        base = (c * kh + i) * kw
                        if h < 0 or h >= H:
                            for j in range(kw):
                                cols[r, base + j] = 0
                        elif j_lo == 0 and j_hi == kw:  # the window lies inside this row
                            for j in range(kw):
                                cols[r, base + j] = X[n, c, h, x0 + j]
                        else:  # (no `x if ... else 0`: numba would type it float64)
                            for j in range(j_lo):
                                cols[r, base + j] = 0
                            for j in range(j_lo, j_hi):
                                cols[r, base + j] = X[n, c, h, x0 + j]
                            for j in range(j_hi, kw):
                                cols[r, base + j] = 0


@njit
def _col2im(cols, dX, kh, kw, sh, sw, pt, pl, Ho, Wo):
    """Scatter-add ``cols`` (N*Ho*Wo, C*kh*kw) into the zeroed dX (N, C, H, W): the adjoint."""
    N, C, H, W = dX.shape
    for n in range(N):
        for ho in range(Ho):
            for wo in range(Wo):
                r = (n * Ho + ho) * Wo + wo
                x0 = wo * sw - pl
                j_lo, j_hi = _clip(-x0, W - x0, kw)
                for c in range(C):
                    for i in range(kh):
                        h = ho * sh + i - pt
                        if h < 0 or h >= H:
                            continue
                        base = (c * kh + i) * kw
                        for j in range(j_lo, j_hi):
                            dX[n, c, h, x0 + j] += cols[r, base + j]


@njit
def _clip(lo, hi, k):
    """[lo, hi) intersected with [0, k), as an empty range at 0 if they do not meet."""
    lo = max(lo, 0)
    hi = min(hi, k)
    return (lo, hi) if lo < hi else (0, 0)


@njit
def _pack_kernel(w, wm, flip):
    """wm[o, (c, i, j)] = w[o, c, i, j], or w[o, c, kh-1-i, kw-1-j] for a true convolution."""
    O, C, kh, kw = w.shape
    for o in range(O):
        for c in range(C):
            for i in range(kh):
                for j in range(kw):
                    ii, jj = (kh - 1 - i, kw - 1 - j) if flip else (i, j)
                    wm[o, (c * kh + i) * kw + j] = w[o, c, ii, jj]


@njit
def _pack_top(top, T):
    """T[(n, ho, wo), o] = top[n, o, ho, wo], transposed in blocks of 16 channels."""
    N, O, Ho, Wo = top.shape
    for n in range(N):
        for o0 in range(0, O, 16):
            o1 = min(O, o0 + 16)
            for ho in range(Ho):
                for wo in range(Wo):
                    r = (n * Ho + ho) * Wo + wo
                    for o in range(o0, o1):
                        T[r, o] = top[n, o, ho, wo]


@njit
def _unpack_out(res, out):
    """out[n, o, ho, wo] = res[(n, ho, wo), o]."""
    N, O, Ho, Wo = out.shape
    for n in range(N):
        for o in range(O):
            for ho in range(Ho):
                for wo in range(Wo):
                    out[n, o, ho, wo] = res[(n * Ho + ho) * Wo + wo, o]


@njit
def _unpack_kernel_grad(dwm, dw, flip):
    """dw[o, c, i, j] = dwm[o, (c, i, j)], with the kernel flip of ``_pack_kernel`` undone."""
    O, C, kh, kw = dw.shape
    for o in range(O):
        for c in range(C):
            for i in range(kh):
                for j in range(kw):
                    ii, jj = (kh - 1 - i, kw - 1 - j) if flip else (i, j)
                    dw[o, c, ii, jj] = dwm[o, (c * kh + i) * kw + j]


@njit
def _out_size(size, k, s, p0, p1):
    return (size + p0 + p1 - k) // s + 1


# ---------------------------------------------------------------------------------------------
# The three kernels, geometry as arguments; they raise ValueError on inconsistent shapes
# ---------------------------------------------------------------------------------------------

@njit
def _conv2d(X, w, sh, sw, pt, pb, pl, pr, flip):
    N, C, H, W = X.shape
    O, C2, kh, kw = w.shape
    if C != C2:
        raise ValueError("conv2d: X.shape[1] (input channels) != w.shape[1]")
    Ho = _out_size(H, kh, sh, pt, pb)
    Wo = _out_size(W, kw, sw, pl, pr)
    if Ho < 1 or Wo < 1:
        raise ValueError("conv2d: the kernel is larger than the padded input")
    dtype = (np.empty(0, X.dtype) + np.empty(0, w.dtype)).dtype
    out = np.empty((N, O, Ho, Wo), dtype)
    if out.size == 0 or C == 0:
        out[...] = 0
        return out
    cols = np.empty((N * Ho * Wo, C * kh * kw), dtype)
    _im2col(X, cols, kh, kw, sh, sw, pt, pl, Ho, Wo)
    wm = np.empty((O, C * kh * kw), dtype)
    _pack_kernel(w, wm, flip)
    _unpack_out(np.dot(cols, wm.T), out)
    return out


@njit
def _conv2d_grad_inputs(w, top, in_hw, sh, sw, pt, pb, pl, pr, flip):
    O, C, kh, kw = w.shape
    N, O2, Ho, Wo = top.shape
    if O != O2:
        raise ValueError("deconv: the input's channels (top.shape[1]) != w.shape[0]")
    if in_hw.shape[0] != 2:
        raise ValueError("deconv: in_hw must hold two sizes (height, width)")
    H, W = in_hw[0], in_hw[1]
    if H < 1 or W < 1:
        raise ValueError("deconv: the output size must be positive")
    if _out_size(H, kh, sh, pt, pb) != Ho or _out_size(W, kw, sw, pl, pr) != Wo:
        raise ValueError("deconv: inconsistent sizes: a conv of the requested output size "
                         "by this kernel, stride and padding does not give the input size")
    dtype = (np.empty(0, w.dtype) + np.empty(0, top.dtype)).dtype
    dX = np.zeros((N, C, H, W), dtype)
    if N == 0 or C == 0 or O == 0:
        return dX
    wm = np.empty((O, C * kh * kw), dtype)
    _pack_kernel(w, wm, flip)
    T = np.empty((N * Ho * Wo, O), dtype)
    _pack_top(top, T)
    _col2im(np.dot(T, wm), dX, kh, kw, sh, sw, pt, pl, Ho, Wo)
    return dX


@njit
def _conv2d_grad_weights(X, top, k_hw, sh, sw, pt, pb, pl, pr, flip):
    N, C, H, W = X.shape
    N2, O, Ho, Wo = top.shape
    if N != N2:
        raise ValueError("conv2d weight gradient: X and top have different batch sizes")
    if k_hw.shape[0] != 2:
        raise ValueError("conv2d weight gradient: k_hw must hold two sizes (height, width)")
    kh, kw = k_hw[0], k_hw[1]
    if kh < 1 or kw < 1:
        raise ValueError("conv2d weight gradient: the kernel size must be positive")
    if _out_size(H, kh, sh, pt, pb) != Ho or _out_size(W, kw, sw, pl, pr) != Wo:
        raise ValueError("conv2d weight gradient: inconsistent sizes: a conv of X by this "
                         "kernel size, stride and padding does not give top's size")
    dtype = (np.empty(0, X.dtype) + np.empty(0, top.dtype)).dtype
    dw = np.empty((O, C, kh, kw), dtype)
    if dw.size == 0 or N * Ho * Wo == 0:
        dw[...] = 0
        return dw
    cols = np.empty((N * Ho * Wo, C * kh * kw), dtype)
    _im2col(X, cols, kh, kw, sh, sw, pt, pl, Ho, Wo)
    T = np.empty((N * Ho * Wo, O), dtype)
    _pack_top(top, T)
    if O > C * kh * kw:  # the product with the taller output (module docstring)
        _unpack_kernel_grad(np.dot(T.T, cols), dw, flip)
    else:
        _unpack_kernel_grad(np.dot(cols.T, T).T, dw, flip)
    return dw


# ---------------------------------------------------------------------------------------------
# Registration: one wrapper per Op instance, closing over the Op's geometry (ints only)
# ---------------------------------------------------------------------------------------------

@register_funcify_default_op_cache_key(Conv2d)
def numba_funcify_Conv2d(op, node=None, **kwargs):
    _check_float(node)
    sh, sw, pt, pb, pl, pr, flip = _geometry(op)

    @njit
    def conv2d(X, w):
        return _conv2d(X, w, sh, sw, pt, pb, pl, pr, flip)

    return conv2d, CACHE_VERSION


@register_funcify_default_op_cache_key(Conv2dGradInputs)
def numba_funcify_Conv2dGradInputs(op, node=None, **kwargs):
    _check_float(node)
    sh, sw, pt, pb, pl, pr, flip = _geometry(op)

    @njit
    def conv2d_grad_inputs(w, top, in_hw):
        return _conv2d_grad_inputs(w, top, in_hw, sh, sw, pt, pb, pl, pr, flip)

    return conv2d_grad_inputs, CACHE_VERSION


@register_funcify_default_op_cache_key(Conv2dGradWeights)
def numba_funcify_Conv2dGradWeights(op, node=None, **kwargs):
    _check_float(node)
    sh, sw, pt, pb, pl, pr, flip = _geometry(op)

    @njit
    def conv2d_grad_weights(X, top, k_hw):
        return _conv2d_grad_weights(X, top, k_hw, sh, sw, pt, pb, pl, pr, flip)

    return conv2d_grad_weights, CACHE_VERSION


@register_funcify_default_op_cache_key(ChannelSum)
def numba_funcify_ChannelSum(op, node=None, **kwargs):
    _check_float(node)

    @njit
    def channel_sum(X):
        N, C, H, W = X.shape
        out = np.empty(C, dtype=X.dtype)
        for c in range(C):
            acc = 0.0  # float64, as lib.reduce_ops
            for n in range(N):
                for y in range(H):
                    for x in range(W):
                        acc += X[n, c, y, x]
            out[c] = acc
        return out

    return channel_sum, CACHE_VERSION
