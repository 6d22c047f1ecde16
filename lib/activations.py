"""The original activations: callable objects mapping a tensor to a tensor of the same shape.

Every graph is built from plain PyTensor elementwise ops, so it runs on every backend
(C, Numba, JAX, PyTorch) and differentiates with PyTensor's own gradients.
"""
import numpy as np
import pytensor.tensor as T

import lib  # noqa: F401  (sets floatX)

# Theano's float32 C sigmoid: exactly 1 above 15, exactly 0 below -88 (and so gradient 0 there).
SIGMOID_HI = np.float32(15.0)
SIGMOID_LO = np.float32(-88.0)


def sigmoid(x):
    """Theano's float32 sigmoid 1/(1+exp(-x)) of a tensor ``x`` (any shape).

    Returns exactly 1.0 for x > 15 and 0.0 for x < -88 (gradient 0 there), as Theano's C code
    did. The logit is kept in ``out.tag.logit`` so ``costs.binary_crossentropy`` can compute
    log(sigmoid) as a softplus of it, as Theano's graph rewrites did.
    """
    # PORT: PyTensor's sigmoid does not saturate (1 - 1.9e-7 at 15.5); a switch on Theano's
    # thresholds reproduces the float32 C values with ops every backend supports.
    out = T.switch(T.gt(x, SIGMOID_HI), np.float32(1.0),
                   T.switch(T.lt(x, SIGMOID_LO), np.float32(0.0), T.sigmoid(x)))
    out.tag.logit = x
    return out


class Softmax:
    """Softmax over axis 1 of a matrix (N, K), shifted by the row max."""

    def __call__(self, x):
        e_x = T.exp(x - x.max(axis=1).dimshuffle(0, 'x'))
        return e_x / e_x.sum(axis=1).dimshuffle(0, 'x')


class ConvSoftmax:
    """Softmax over axis 1 (channels) of a tensor of any rank >= 2, e.g. (N, C, H, W)."""

    def __call__(self, x):
        e_x = T.exp(x - x.max(axis=1, keepdims=True))
        return e_x / e_x.sum(axis=1, keepdims=True)


class Maxout:
    """Max over groups of ``n_pool`` interleaved channels: (N, C) -> (N, C/n_pool), likewise 4-D."""

    def __init__(self, n_pool=2):
        self.n_pool = n_pool

    def __call__(self, x):
        if x.ndim == 2:
            pieces = [x[:, n::self.n_pool] for n in range(self.n_pool)]
        elif x.ndim == 4:
            pieces = [x[:, n::self.n_pool, :, :] for n in range(self.n_pool)]
        else:
            raise NotImplementedError(f"Maxout of a {x.ndim}-d tensor: expected 2-d or 4-d")
        return T.max(T.stack(pieces), axis=0)


class Rectify:
    """ReLU written as (x + |x|)/2: gradient 0.5 at exactly 0, as in the original."""

    # d|x|/dx is sgn(x) in PyTensor as in Theano, 0 at 0: the golden act_*_grad_of_sum check it.

    def __call__(self, x):
        return (x + abs(x)) / np.float32(2.0)


class ClippedRectify:
    """ReLU clipped to [0, clip]."""

    def __init__(self, clip=10.):
        self.clip = clip

    def __call__(self, x):
        return T.clip((x + abs(x)) / np.float32(2.0), np.float32(0.0), np.float32(self.clip))


class LeakyRectify:
    """Leaky ReLU written as f1*x + f2*|x| with f1 = (1+leak)/2, f2 = (1-leak)/2.

    Its gradient at exactly 0 is f1 (0.6 for leak 0.2), as in the original.
    """

    def __init__(self, leak=0.2):
        self.leak = leak

    def __call__(self, x):
        # f1, f2 in float32, as Theano cast the Python float constants to floatX
        f1 = np.float32(0.5 * (1 + self.leak))
        f2 = np.float32(0.5 * (1 - self.leak))
        return f1 * x + f2 * abs(x)


class Prelu:
    """Leaky ReLU with a learned ``leak``: a scalar, or one value per channel (C,) for 4-D x."""

    def __call__(self, x, leak):
        if x.ndim == 4:
            leak = leak.dimshuffle('x', 0, 'x', 'x')
        f1 = np.float32(0.5) * (1 + leak)
        f2 = np.float32(0.5) * (1 - leak)
        return f1 * x + f2 * abs(x)


class Tanh:
    """tanh(x), elementwise."""

    def __call__(self, x):
        return T.tanh(x)


class Sigmoid:
    """Theano's float32 sigmoid, elementwise (see ``sigmoid``)."""

    def __call__(self, x):
        return sigmoid(x)


class Linear:
    """The identity."""

    def __call__(self, x):
        return x


class HardSigmoid:
    """clip(x + 0.5, 0, 1), elementwise."""

    def __call__(self, X):
        return T.clip(X + np.float32(0.5), np.float32(0.0), np.float32(1.0))


class TRec:
    """Thresholded rectifier: x where x > t, else 0."""

    def __init__(self, t=1):
        self.t = t

    def __call__(self, X):
        return X * T.gt(X, np.float32(self.t))


class HardTanh:
    """clip(x, -1, 1), elementwise."""

    def __call__(self, X):
        return T.clip(X, np.float32(-1.0), np.float32(1.0))
