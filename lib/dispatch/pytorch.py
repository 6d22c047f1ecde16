"""PyTorch kernels for the convolution Ops of ``lib.conv_ops``, and a compile-friendly SpecifyShape.

Importing this module registers them with PyTensor's ``pytorch_funcify``;
``lib.backend.get_mode('pytorch')`` does it. Its linker (``lib.dispatch.pytorch_linker``) exports
the whole graph on fake tensors and compiles it with AOTInductor, so the kernels are plain tensor
code with no Python branch on tensor values: the forward Op is ``F.conv2d``, the input gradient
``F.conv_transpose2d`` and the weight gradient ``aten.convolution_backward`` (what autograd and
``torch.nn.grad`` call). Asymmetric padding: the symmetric part goes to the convolution, the
remainder is an explicit ``F.pad`` (forward, weight gradient) or a crop of the input gradient.

The size input of a gradient Op is read at compile time when it is a constant (static shapes),
or from traced shapes when ``lib.dispatch.host_shape`` rewrote it (a mode including the
``pytorch`` tag: ``get_mode('pytorch').including('pytorch')``); otherwise it is a tensor whose
values are read back, which is correct but cannot be traced on fake tensors: such a graph runs
eagerly.
"""
import numpy as np
import torch
import torch.nn.functional as F
from pytensor.graph.basic import Constant
from pytensor.link.pytorch.dispatch import pytorch_funcify
from pytensor.tensor.shape import SpecifyShape

import lib.dispatch.pytorch_fixes  # noqa: F401  (PyTensor's own PyTorch dispatch: Pow, ...)
from lib.conv_ops import (Conv2d, Conv2dGradInputs, Conv2dGradWeights,
                          check_geometry)
from lib.dispatch.host_shape import HostShape
from lib.dispatch.kernel_flip import FlipHW  # (and its rewrites, tag pytorch)
from lib.reduce_ops import AXES, ChannelSum


@pytorch_funcify.register(SpecifyShape)
def pytorch_funcify_SpecifyShape(op, node, **kwargs):
    # PORT: PyTensor 3.0.7 compares the shape with the expected sizes passed as tensors, a
    # data-dependent branch that splits torch.compile's graph at every SpecifyShape. The sizes
    # are constants when known: compare them as ints (sizes given as variables are not checked).
    expected = [int(v.data) if isinstance(v, Constant) and v.data is not None else None
                for v in node.inputs[1:]]

    def specifyshape(x, *shape):
        for axis, (actual, size) in enumerate(zip(x.shape, expected)):
            if size is not None and actual != size:
                raise ValueError(f"SpecifyShape: axis {axis} has size {actual}, not {size}")
        return x

    return specifyshape


@torch.library.custom_op("dcgan::flip_hw", mutates_args=())
def flip_hw(x: torch.Tensor) -> torch.Tensor:
    """``x`` with its last two axes reversed: the original's true convolution flips the kernel.

    The kernel of ``FlipHW`` (lib/dispatch/kernel_flip.py) and of the conv Ops' own flips. An
    opaque op for Inductor, so ATen's flip runs as a pass of its own (about a copy's time).
    Inlined, Inductor fuses the reversed read into the kernel that uses the result (the Adam
    update of a weight, from its flipped gradient), which then cannot vectorise: for a
    (1024, 512, 5, 5) weight that kernel took 117 ms, against 54 + 19 ms as two passes.
    """
    return torch.flip(x, (2, 3)).contiguous()


@flip_hw.register_fake
def _flip_hw_fake(x):
    return torch.empty_like(x, memory_format=torch.contiguous_format)


@pytorch_funcify.register(FlipHW)
def pytorch_funcify_FlipHW(op, node, **kwargs):
    return flip_hw


class _Geometry:
    """``op``'s padding split into a symmetric part (for the conv) and an asymmetric rest."""

    def __init__(self, op, dtype):
        (t, b), (l, r) = op.padding
        self.stride, self.padding = op.subsample, op.padding
        self.flip = op.flip
        self.dtype = getattr(torch, dtype)
        self.sym = (min(t, b), min(l, r))
        # F.pad order: (left, right, top, bottom); None when the padding is symmetric
        rest = (l - self.sym[1], r - self.sym[1], t - self.sym[0], b - self.sym[0])
        self.rest = rest if any(rest) else None

    def kernel(self, w):
        w = w.to(self.dtype)
        return flip_hw(w) if self.flip else w

    def pad_rest(self, X):
        X = X.to(self.dtype)
        return X if self.rest is None else F.pad(X, self.rest)

    def transpose(self, top, w, h, wd):
        """The gradient w.r.t. an (h, wd) input of the symmetric conv: ``conv_transpose2d``,
        which needs no input tensor (``convolution_backward`` with a broadcast stand-in for the
        input copied it to a full tensor first: 17 copies, ~70 ms per paper-scale G update)."""
        (kh, kw), (sh, sw), (ph, pw) = w.shape[2:], self.stride, self.sym
        extra = (h - ((top.shape[2] - 1) * sh - 2 * ph + kh),
                 wd - ((top.shape[3] - 1) * sw - 2 * pw + kw))
        return F.conv_transpose2d(top, w, stride=self.stride, padding=self.sym,
                                  output_padding=extra)

    def backward(self, top, X, w, mask):
        return torch.ops.aten.convolution_backward(
            top, X, w, None, self.stride, self.sym, (1, 1), False, (0, 0), 1, mask)


def _sized(node, compute):
    """``compute(a, b, h, w)`` as the function of the Op's inputs ``(a, b, size)``."""
    size = node.inputs[2]
    if isinstance(size, Constant):
        h, w = (int(v) for v in np.asarray(size.data))
        return lambda a, b, _: compute(a, b, h, w)

    def sized(a, b, size):
        if isinstance(size, tuple):  # from HostShape: ints, or SymInts under torch.compile
            return compute(a, b, *size)
        return _read_back(compute, a, b, size)

    return sized


@torch.compiler.disable
def _read_back(compute, a, b, size):
    # Sizes computed as tensor values: reading them splits torch.compile's graph anyway, and
    # inductor failed to lower the gradients with the sizes it then sees as symbolic; run eagerly.
    return compute(a, b, int(size[0]), int(size[1]))


@pytorch_funcify.register(Conv2d)
def pytorch_funcify_Conv2d(op, node, **kwargs):
    g = _Geometry(op, node.outputs[0].dtype)

    def conv2d(X, w):
        # checks on sizes, not values: torch.compile turns them into guards, not graph breaks
        if X.shape[1] != w.shape[1]:
            raise ValueError(f"conv2d: X has {X.shape[1]} channels but w expects {w.shape[1]}")
        return F.conv2d(g.pad_rest(X), g.kernel(w), stride=g.stride, padding=g.sym)

    return conv2d


@pytorch_funcify.register(Conv2dGradInputs)
def pytorch_funcify_Conv2dGradInputs(op, node, **kwargs):
    g = _Geometry(op, node.outputs[0].dtype)

    def conv2d_grad_inputs(w, top, h, wd):
        if top.shape[1] != w.shape[0]:
            raise ValueError(f"deconv: input has {top.shape[1]} channels but w expects "
                             f"{w.shape[0]} (w.shape[0])")
        check_geometry("deconv", (h, wd), w.shape[2:], top.shape[2:], g.stride, g.padding)
        w, top = g.kernel(w), top.to(g.dtype)
        if g.rest is None:
            return g.transpose(top, w, h, wd)
        # the gradient w.r.t. the input padded by the asymmetric rest, cropped to the input
        left, right, upper, lower = g.rest
        dX = g.transpose(top, w, h + upper + lower, wd + left + right)
        return dX[:, :, upper:upper + h, left:left + wd]

    return _sized(node, conv2d_grad_inputs)


@pytorch_funcify.register(Conv2dGradWeights)
def pytorch_funcify_Conv2dGradWeights(op, node, **kwargs):
    g = _Geometry(op, node.outputs[0].dtype)

    def conv2d_grad_weights(X, top, kh, kw):
        check_geometry("conv2d weight gradient", X.shape[2:], (kh, kw), top.shape[2:],
                       g.stride, g.padding)
        X, top = g.pad_rest(X), top.to(g.dtype)
        w = top.new_empty(1).expand(top.shape[1], X.shape[1], kh, kw)
        dw = g.backward(top, X, w, (False, True, False))[1]
        return flip_hw(dw) if g.flip else dw

    return _sized(node, conv2d_grad_weights)


@pytorch_funcify.register(HostShape)
def pytorch_funcify_HostShape(op, node, **kwargs):
    # Shapes, not values: ints, or SymInts when torch.compile traces dynamic shapes; the
    # compiled graph stays whole.
    def host_shape(*sources):
        out = op.evaluate([x.shape for x in sources])
        return tuple(out) if isinstance(out, list) else out

    return host_shape


@pytorch_funcify.register(ChannelSum)
def pytorch_funcify_ChannelSum(op, node, **kwargs):
    def channel_sum(X):
        return X.sum(dim=AXES, dtype=torch.float64).to(X.dtype)

    return channel_sum
