"""Image-file helpers shared by the folder loaders (faces, imagenet).

Decode with Pillow, resize so the short side equals ``size`` (antialiased LANCZOS),
then center-crop to ``(size, size)`` with the original's ``center_crop`` rounding.
Every bad input raises ``DataError`` whose message is a single line naming the file
and what was expected; scripts print it and exit with status 2 (``exit_on_data_error``).
``imap_ordered`` decodes (or draws) images in worker processes, in order.
"""
import os
import sys
from pathlib import Path

import numpy as np

IMAGE_EXTS = ('.jpg', '.jpeg', '.png', '.webp', '.bmp', '.gif', '.tif', '.tiff')


class DataError(ValueError):
    """A bad data input (path, file or flag); ``str(err)`` is one line meant for users."""

    def __init__(self, msg):
        super().__init__(' '.join(str(msg).splitlines()))


class ImageTooSmall(DataError):
    """An image smaller than the requested size (folder conversion skips these separately)."""


def exit_on_data_error(fn, *args, **kwargs):
    """Run ``fn(*args, **kwargs)``; on ``DataError`` print ``error: <msg>`` to stderr and exit 2."""
    try:
        return fn(*args, **kwargs)
    except DataError as err:
        print(f'error: {err}', file=sys.stderr)
        sys.exit(2)


def imap_ordered(fn, tasks, workers, chunksize=1):
    """Yield ``fn(task)`` for each of ``tasks``, in order, from ``workers`` processes (here when 1).

    Processes are forked where the platform can: spawn re-runs the caller's ``__main__``, which
    fails for ``python -c`` and stdin callers. ``fn`` must be a module-level function.
    """
    if workers <= 1:
        yield from map(fn, tasks)
        return
    import multiprocessing as mp

    method = 'fork' if 'fork' in mp.get_all_start_methods() else 'spawn'
    with mp.get_context(method).Pool(workers) as pool:
        yield from pool.imap(fn, tasks, chunksize=chunksize)


def default_data_dir():
    """The project's data folder, ``lib.config.data_dir()`` ($DCGAN_DATA_DIR, else <repo>/data)."""
    from lib.config import data_dir
    folder = data_dir()
    if folder.exists() and not folder.is_dir():
        raise DataError(f'DCGAN_DATA_DIR={os.environ.get("DCGAN_DATA_DIR")}: a file, not a folder'
                        if os.environ.get('DCGAN_DATA_DIR') else f'{folder}: a file, not a folder')
    return folder


def center_crop(x, ph, pw=None):
    """The central ``(ph, pw)`` window of ``x`` (``(h, w, ...)``); pw defaults to ph.

    The original's lib/data_utils.center_crop (also importable from there), plus a one-line
    DataError when ``x`` is smaller than the window.
    """
    if pw is None:
        pw = ph
    h, w = x.shape[:2]
    if h < ph or w < pw:
        raise DataError(f'image of {h}x{w} px is smaller than the {ph}x{pw} crop')
    # PORT: the original's int(round((h - ph)/2.)) rounded halves away from zero in Python 2;
    # Python 3 rounds them to even (round(2.5) == 2). (h - ph + 1) // 2 is the Python 2 value.
    j = (h - ph + 1) // 2
    i = (w - pw + 1) // 2
    return x[j:j + ph, i:i + pw]


def list_images(folder):
    """Sorted image paths (IMAGE_EXTS, any case) under ``folder``, recursively; hidden files skipped."""
    folder = Path(folder)
    if not folder.exists():
        raise DataError(f'{folder}: no such file or folder')
    if not folder.is_dir():
        raise DataError(f'{folder}: expected a folder of images')
    paths = []
    for root, dirs, files in os.walk(folder, followlinks=True):
        dirs[:] = sorted(d for d in dirs if not d.startswith('.'))
        for name in files:
            if not name.startswith('.') and name.lower().endswith(IMAGE_EXTS):
                paths.append(Path(root) / name)
    return sorted(paths)


def resize_min_side(img, size):
    """Pillow ``img`` resized (LANCZOS, antialiased) so that its shorter side is ``size``."""
    from PIL import Image

    w, h = img.size
    scale = size / min(w, h)
    nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
    if (nw, nh) == (w, h):
        return img
    return img.resize((nw, nh), Image.Resampling.LANCZOS)


def to_rgb(img):
    """Pillow ``img`` as RGB; transparent pixels are composited onto white."""
    from PIL import Image

    if img.mode == 'RGB':
        return img
    if img.mode in ('RGBA', 'LA', 'PA') or (img.mode == 'P' and 'transparency' in img.info):
        rgba = img.convert('RGBA')
        bg = Image.new('RGBA', rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(bg, rgba).convert('RGB')
    return img.convert('RGB')


def load_image(path, size, upscale=False):
    """Image file -> uint8 array ``(size, size, 3)``: RGB, short side resized to ``size``, center crop.

    Images whose short side is below ``size`` are an error unless ``upscale``.
    Raises ``DataError`` (one line) for a missing, unreadable or too small file.
    """
    from PIL import Image

    path = Path(path)
    if not path.is_file():
        raise DataError(f'{path}: no such image file')
    try:
        with Image.open(path) as img:
            if img.format == 'JPEG':
                img.draft('RGB', (size, size))  # decode large JPEGs at a reduced scale >= size
            img.load()
            img = to_rgb(img)
    except Exception as err:  # Pillow raises many types (OSError, SyntaxError, ValueError, ...)
        raise DataError(f'{path}: not a readable image ({type(err).__name__}: {err})') from None
    if min(img.size) < size and not upscale:
        raise ImageTooSmall(f'{path}: image is {img.size[0]}x{img.size[1]} px, expected at least '
                        f'{size} px on the short side')
    return center_crop(np.asarray(resize_min_side(img, size)), size)
