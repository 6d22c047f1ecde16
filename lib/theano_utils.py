"""The original theano_utils: float32 arrays and shared variables, on PyTensor."""
import numpy as np
import pytensor

import lib  # noqa: F401  (sets floatX)


def intX(X):
    """``X`` as an int32 array."""
    return np.asarray(X, dtype=np.int32)


def floatX(X):
    """``X`` as a floatX (float32) array."""
    return np.asarray(X, dtype=pytensor.config.floatX)


def sharedX(X, dtype=None, name=None):
    """A shared variable holding ``X`` as ``dtype`` (floatX by default).

    The variable has a static shape, so graphs built on parameters know their sizes.
    """
    # PORT: static shape (Theano's shared variables had none); it lets the JAX backend and the
    # conv gradients see kernel sizes at compile time, and makes a wrongly shaped set_value an error.
    value = np.asarray(X, dtype=dtype or pytensor.config.floatX)
    return pytensor.shared(value, name=name, shape=value.shape)


def shared0s(shape, dtype=None, name=None):
    """A shared variable of zeros."""
    return sharedX(np.zeros(shape), dtype=dtype, name=name)


def sharedNs(shape, n, dtype=None, name=None):
    """A shared variable filled with ``n``."""
    return sharedX(np.ones(shape) * n, dtype=dtype, name=name)
