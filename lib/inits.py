"""The original initializers: ``init(shape, name=None)`` -> a float32 shared variable of that shape.

Random ones draw from ``lib.rng.np_rng`` as it is when called (so after ``rng.set_seed``), in
float64, then cast to float32, in the order the parameters are created.
"""
import numpy as np

from lib import rng
from lib.theano_utils import sharedX


class Uniform:
    """Uniform in [-0.05, 0.05) (``scale`` is ignored, as in the original)."""

    def __init__(self, scale=0.05):
        # the original ignores ``scale`` (a bug); kept so that seeded runs draw the same weights
        self.scale = 0.05

    def __call__(self, shape, name=None):
        return sharedX(rng.np_rng.uniform(low=-self.scale, high=self.scale, size=shape), name=name)


class Normal:
    """Normal(loc, scale), any shape: the paper's N(0, 0.02) weights and N(1, 0.02) gains."""

    def __init__(self, loc=0., scale=0.05):
        self.scale = scale
        self.loc = loc

    def __call__(self, shape, name=None):
        return sharedX(rng.np_rng.normal(loc=self.loc, scale=self.scale, size=shape), name=name)


class Orthogonal:
    """Scaled orthogonal matrix (Saxe et al.) for shape (n, ...), flattened to (n, prod(rest)).

    benanne's Lasagne version (faster than the QR approach).
    """

    def __init__(self, scale=1.1):
        self.scale = scale

    def __call__(self, shape, name=None):
        print('called orthogonal init with shape', shape)
        flat_shape = (shape[0], int(np.prod(shape[1:])))
        a = rng.np_rng.normal(0.0, 1.0, flat_shape)
        u, _, v = np.linalg.svd(a, full_matrices=False)
        q = u if u.shape == flat_shape else v  # pick the one with the correct shape
        q = q.reshape(shape)
        return sharedX(self.scale * q[:shape[0], :shape[1]], name=name)


class Frob:
    """Normal(0, 0.01) matrix (n, m) rescaled to Frobenius norm sqrt(m)."""

    def __call__(self, shape, name=None):
        r = rng.np_rng.normal(loc=0, scale=0.01, size=shape)
        r = r / np.sqrt(np.sum(r**2)) * np.sqrt(shape[1])
        return sharedX(r, name=name)


class Constant:
    """Every entry ``c``; draws nothing from the generator."""

    def __init__(self, c=0.):
        self.c = c

    def __call__(self, shape, name=None):
        return sharedX(np.ones(shape) * self.c, name=name)


def _spread(n_out, n_in):
    """For each of n_out outputs, an input index, each input used about equally, shuffled."""
    # PORT: the original drew from the unseeded global np.random and divided with ``/`` (a float
    # in Python 3); this draws from lib.rng.np_rng, so seeded runs are reproducible.
    return rng.np_rng.permutation(np.tile(np.arange(n_in), n_out // n_in + 1))[:n_out]


class ConvIdentity:
    """Conv kernel (out, in, kh, kw) with ``scale`` at the centre tap linking output o to one input."""

    def __init__(self, scale=1.):
        self.scale = scale

    def __call__(self, shape, name=None):
        w = np.zeros(shape)
        ycenter = shape[2] // 2
        xcenter = shape[3] // 2

        if shape[0] == shape[1]:
            o_idxs = np.arange(shape[0])
            i_idxs = np.arange(shape[1])
        elif shape[1] < shape[0]:
            o_idxs = np.arange(shape[0])
            i_idxs = _spread(shape[0], shape[1])
        else:
            # PORT: the original fails here with a NameError; say why instead
            raise NotImplementedError(f"ConvIdentity of shape {shape}: needs out >= in channels")
        w[o_idxs, i_idxs, ycenter, xcenter] = self.scale
        return sharedX(w, name=name)


class Identity:
    """``scale`` times the identity (n, n); for (n_out, n_in) one ``scale`` entry per row."""

    def __init__(self, scale=0.25):
        self.scale = scale

    def __call__(self, shape, name=None):
        if shape[0] != shape[1]:
            w = np.zeros(shape)
            o_idxs = np.arange(shape[0])
            i_idxs = _spread(shape[0], shape[1])
            w[o_idxs, i_idxs] = self.scale
        else:
            w = np.identity(shape[0]) * self.scale
        return sharedX(w, name=name)


class ReluInit:
    """He initialization: Normal(0, sqrt(2/fan_in)) for (n_in, n_out) or (out, in, kh, kw)."""

    def __call__(self, shape, name=None):
        if len(shape) == 2:
            scale = np.sqrt(2. / shape[0])
        elif len(shape) == 4:
            scale = np.sqrt(2. / np.prod(shape[1:]))
        else:
            raise NotImplementedError(f"ReluInit of a {len(shape)}-d shape: expected 2-d or 4-d")
        return sharedX(rng.np_rng.normal(size=shape, scale=scale), name=name)
