"""The original image grids: tile a batch of images into one (nh*h, nw*w[, 3]) array, optionally saved.

Saving follows ``scipy.misc.imsave``, which the original used: the whole grid is min-max scaled
to 0..255 (scipy's ``bytescale``), so a grid of images in [0, 1] that reaches both 0 and 1 is
saved as round(255*x); the empty cells of an unfilled grid are 0 and take part in the min-max.
"""
import io
import os
from pathlib import Path

import numpy as np
from PIL import Image

from lib.files import atomic_write


def bytescale(data):
    """``data`` (any shape) mapped linearly from [min, max] to uint8 0..255, rounded half up.

    scipy.misc.bytescale with its defaults: a constant array maps to 0; uint8 passes unchanged.
    """
    if data.dtype == np.uint8:
        return data
    cmin, cmax = data.min(), data.max()
    cscale = cmax - cmin
    if cscale == 0:
        cscale = 1
    shape = data.shape
    data = data.reshape(-1) if data.ndim == 0 else data
    out = np.empty(data.shape, np.uint8)
    # PORT: the original computed ((data - cmin) * s).clip(0, 255) + 0.5 on the whole array, four
    # full-size temporaries (a 14x14 grid of 64 px images: 19 MB each in float64); the same
    # operations in the same dtype, in place on about 1 MiB of rows at a time, give the same bytes.
    rows = max(1, 2**20 // max(1, data[:1].nbytes))
    for i in range(0, len(data), rows):
        scaled = data[i:i + rows] - cmin
        scaled *= 255. / cscale
        np.clip(scaled, 0, 255, out=scaled)
        scaled += 0.5
        out[i:i + rows] = scaled
    return out.reshape(shape)


def imsave(path, img):
    """Save a (H, W) grayscale or (H, W, 3) RGB array as an image, min-max scaled (``bytescale``).

    The format comes from the file extension; the file is replaced atomically, unless it holds
    these very bytes already (then it is not touched).
    """
    # PORT: scipy.misc.imsave is gone from SciPy; this is its behaviour, written with Pillow
    image = Image.fromarray(bytescale(np.asarray(img)))  # uint8 (H, W) -> 'L', (H, W, 3) -> 'RGB'
    path = os.fspath(path)
    fmt = Image.registered_extensions().get(os.path.splitext(path)[1].lower())
    if fmt is None:
        raise ValueError(f"{path}: unknown image extension")
    encoded = io.BytesIO()
    image.save(encoded, format=fmt)
    data = encoded.getvalue()
    try:
        if os.path.getsize(path) == len(data) and Path(path).read_bytes() == data:
            return  # the same image is there already (a resumed run's data grid): left untouched
    except OSError:
        pass
    atomic_write(path, lambda f: f.write(data))


def grayscale_grid_vis(X, nhw, save_path=None):
    """Tile images X (n, h, w) row-major into a (nh*h, nw*w) float array; n <= nh*nw.

    ``nhw`` = (nh, nw). Saved to ``save_path`` if given (see ``imsave``).
    """
    # PORT: Python 3 has no tuple parameters: the original's (nh, nw) is the argument nhw
    nh, nw = nhw
    h, w = X[0].shape[:2]
    img = np.zeros((h * nh, w * nw))
    for n, x in enumerate(X):
        j = n // nw
        i = n % nw
        img[j * h:j * h + h, i * w:i * w + w] = x
    if save_path is not None:
        imsave(save_path, img)
    return img


def color_grid_vis(X, nhw, save_path=None):
    """Tile images X (n, h, w, 3) row-major into a (nh*h, nw*w, 3) float array; n <= nh*nw.

    ``nhw`` = (nh, nw). Saved to ``save_path`` if given (see ``imsave``).
    """
    nh, nw = nhw
    h, w = X[0].shape[:2]
    img = np.zeros((h * nh, w * nw, 3))
    for n, x in enumerate(X):
        j = n // nw
        i = n % nw
        img[j * h:j * h + h, i * w:i * w + w, :] = x
    if save_path is not None:
        imsave(save_path, img)
    return img


def grayscale_weight_grid_vis(w, nhw, save_path=None):
    """Filters w (n, h, w) rescaled by their range and tiled like ``grayscale_grid_vis``."""
    # The original's (w + min)/(max - min) (not w - min): kept. Saving min-max scales the grid
    # anyway, so the saved image is the same either way; only the returned array differs.
    w = (w + w.min()) / (w.max() - w.min())
    return grayscale_grid_vis(w, nhw, save_path=save_path)
