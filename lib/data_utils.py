"""The original data helpers: crops, shuffles, one-hot labels and minibatch iteration.

``center_crop`` is defined in lib/data_image.py, which the image-decoding workers import.

Randomness comes from ``lib.rng`` as it is when called (after ``rng.set_seed``).
"""
import numpy as np
from sklearn import utils as skutils

from lib import rng
from lib.data_image import center_crop  # noqa: F401 (the original's crop, kept with the image loaders)

# PORT: the original imported np_rng and py_rng by name at import time, so a later reseed was
# not seen; every function here reads rng.np_rng / rng.py_rng when it runs.


def patch(x, ph, pw=None):
    """A random (ph, pw) window of an image x (h, w, ...), offsets from ``rng.py_rng``."""
    if pw is None:
        pw = ph
    h, w = x.shape[:2]
    j = rng.py_rng.randint(0, h - ph)
    i = rng.py_rng.randint(0, w - pw)
    x = x[j:j + ph, i:i + pw]
    return x


def list_shuffle(*data):
    """The sequences ``data`` (equal lengths) as lists, permuted alike by ``rng.np_rng``.

    One sequence gives one list; several give a list of lists.
    """
    idxs = rng.np_rng.permutation(np.arange(len(data[0])))
    if len(data) == 1:
        return [data[0][idx] for idx in idxs]
    else:
        return [[d[idx] for idx in idxs] for d in data]


def shuffle(*arrays, **options):
    """``arrays`` (equal first dimensions) permuted alike by ``rng.np_rng``.

    Lists of strings (e.g. file names) go through ``list_shuffle``; anything else through
    ``sklearn.utils.shuffle`` (one array returns an array, several a list).
    """
    # PORT: Python 3 str for Python 2 basestring
    if isinstance(arrays[0][0], str):
        return list_shuffle(*arrays)
    else:
        return skutils.shuffle(*arrays, random_state=rng.np_rng)


def OneHot(X, n=None, negative_class=0.):
    """Integer labels X (any shape, flattened to N) as an (N, n) float64 one-hot matrix.

    ``n`` defaults to max(X)+1; the other entries are ``negative_class``. Cast with ``floatX``.
    """
    X = np.asarray(X).flatten()
    if n is None:
        n = np.max(X) + 1
    Xoh = np.ones((len(X), n)) * negative_class
    Xoh[np.arange(len(X)), X] = 1.
    return Xoh


def iter_data(*data, **kwargs):
    """Minibatches of ``size`` (default 128) along the first axis of ``data``, the last one short.

    One sequence yields its slices; several yield tuples of slices.
    """
    size = kwargs.get('size', 128)
    try:
        n = len(data[0])
    except TypeError:
        n = data[0].shape[0]
    # PORT: n // size: Python 3's n / size is a float
    batches = n // size
    if n % size != 0:
        batches += 1

    for b in range(batches):
        start = b * size
        end = (b + 1) * size
        if end > n:
            end = n
        if len(data) == 1:
            yield data[0][start:end]
        else:
            yield tuple([d[start:end] for d in data])
