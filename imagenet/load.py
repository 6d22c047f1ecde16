"""Data for the ImageNet-1k DCGAN and the paper's CIFAR-10 experiment.

``imagenet()``: the training images, returned like the faces loader (fuel's calls kept):

    tr_data, te_data = imagenet(path=folder)

``path`` is a folder of images (jpg, png, webp, ..., searched recursively, e.g. ImageNet-1k's
``train/`` folder with its 1000 class subfolders) or an .hdf5 file in fuel's layout. A folder
is converted once to an HDF5 cache of ``npx`` x ``npx`` images, each resized so that its short
side is ``npx`` and center-cropped: the paper's "32x32 min-resized center crops" (the
conversion and cache are lib/data_folder.py's, as for the faces).

``cifar10()``: CIFAR-10 from its standard python batches (``data_batch_1`` .. ``data_batch_5``,
``test_batch`` in ``cifar-10-batches-py/``, or the ``cifar-10-python.tar.gz`` itself), read with
the restricted unpickler (lib/unpickle.py), building only dicts, lists, strings, numbers and
numpy arrays.
"""
import tarfile
from pathlib import Path

import numpy as np

from lib.data_folder import resolve
from lib.data_hdf5 import H5Dataset
from lib.data_image import DataError, center_crop, default_data_dir, resize_min_side
from lib.unpickle import RefusedGlobal, restricted_loads

CIFAR_TRAIN = tuple(f'data_batch_{i}' for i in range(1, 6))
CIFAR_TEST = 'test_batch'
CIFAR_FOLDER = 'cifar-10-batches-py'


# ----------------------------------------------------------------------------------------
# ImageNet (or any folder of images)
# ----------------------------------------------------------------------------------------

def imagenet(path=None, npx=32, load_in_memory=None, progress=True):
    """``(tr_data, te_data)``: the 'train' and 'test' splits of the images at ``path`` (H5Dataset).

    ``path``: a folder of images (converted once to ``npx`` px, min-side resize + center crop)
    or an .hdf5 file in fuel's layout with uint8 (N, H, W, 3) images of at least ``npx`` px.
    ``get_data`` returns ``(imb,)``, uint8 (b, H, W, 3) (``lib.data_hdf5.H5Dataset``).
    """
    # PORT: the original's imagenet() read a private ImageNet HDF5 with labels (not released);
    # the GAN never used the labels, so any folder of images (or fuel-layout file) serves. It
    # also took ntrain, nval, ntest and batch_size for fuel's streams, which the port does not use.
    if not path:
        raise DataError('--data: no images given (expected a folder of images, e.g. ImageNet-1k\'s '
                        'train/ folder, or an .hdf5 file in fuel\'s layout)')
    path = resolve(path, size=npx, progress=progress)
    tr_data = H5Dataset(path, which_sets=('train',), load_in_memory=load_in_memory, npx=npx)
    te_data = H5Dataset(path, which_sets=('test',), load_in_memory=load_in_memory, npx=npx)
    return tr_data, te_data


def min_resize(x, size):
    """Image x (h, w, 3) uint8 resized so that its short side is ``size`` (unchanged if it is)."""
    # PORT: the original's lib/cv2_utils.min_resize (OpenCV, bilinear); here Pillow's antialiased
    # LANCZOS, the same resize the folder conversion uses.
    from PIL import Image

    if min(x.shape[:2]) == size:
        return x
    return np.asarray(resize_min_side(Image.fromarray(x), size))


def crop_images(X, npx):
    """uint8 images X (n, h, w, 3) as (n, npx, npx, 3): min-side resize, then center crop."""
    return np.stack([center_crop(min_resize(x, npx), npx) for x in X])


# ----------------------------------------------------------------------------------------
# CIFAR-10
# ----------------------------------------------------------------------------------------

def _latin1_encode(obj, encoding='latin1'):
    # Python 3 pickles of bytes at protocol <= 2 call _codecs.encode(str, 'latin1')
    if encoding != 'latin1' or not isinstance(obj, str):
        raise RefusedGlobal(f'refused _codecs.encode with encoding {encoding!r}')
    return obj.encode('latin1')


def _cifar_globals():
    """The globals a CIFAR-10 batch may name: numpy's array rebuilding and a latin-1 encode.

    With them the unpickler builds only dicts, lists, tuples, str, bytes, numbers and numpy
    arrays.
    """
    try:
        from numpy._core.multiarray import _reconstruct
        from numpy._core.numeric import _frombuffer
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import _reconstruct
        from numpy.core.numeric import _frombuffer
    return {
        ('numpy.core.multiarray', '_reconstruct'): _reconstruct,
        ('numpy._core.multiarray', '_reconstruct'): _reconstruct,
        ('numpy.core.numeric', '_frombuffer'): _frombuffer,
        ('numpy._core.numeric', '_frombuffer'): _frombuffer,
        ('numpy', 'ndarray'): np.ndarray,
        ('numpy', 'dtype'): np.dtype,
        ('_codecs', 'encode'): _latin1_encode,
    }


def load_batch(data):
    """Unpickle the bytes of a CIFAR-10 batch file with the restricted unpickler (lib/unpickle.py).

    Python 2 pickles (the CIFAR-10 files) load with ``encoding='bytes'``: their str keys come
    back as bytes (``b'data'``).
    """
    return restricted_loads(data, _cifar_globals(), encoding='bytes')


def _read_batch(name, data):
    """Check and convert one unpickled CIFAR-10 batch: (X uint8 (n, 3, 32, 32), Y int32 (n,))."""
    try:
        d = load_batch(data)
    except RefusedGlobal as err:
        raise DataError(f'{name}: {err} (expected a CIFAR-10 python batch: a dict of '
                        f'data/labels/batch_label/filenames)') from None
    except Exception as err:  # truncated or garbage streams raise many types
        raise DataError(f'{name}: not a readable CIFAR-10 python batch ({type(err).__name__}: '
                        f'{err})') from None
    if not isinstance(d, dict):
        raise DataError(f'{name}: holds a {type(d).__name__}, expected a CIFAR-10 python batch '
                        f'(a dict with data and labels)')
    d = {k.decode('latin1') if isinstance(k, bytes) else k: v for k, v in d.items()}
    for key in ('data', 'labels'):
        if key not in d:
            raise DataError(f"{name}: no '{key}' entry (has {sorted(map(str, d))}), expected a "
                            f"CIFAR-10 python batch")
    X, Y = d['data'], d['labels']
    if not isinstance(X, np.ndarray) or X.dtype != np.uint8 or X.ndim != 2 or X.shape[1] != 3072:
        what = f'{X.dtype} {X.shape}' if isinstance(X, np.ndarray) else type(X).__name__
        raise DataError(f"{name}: 'data' is {what}, expected uint8 (N, 3072) (3x32x32 images, "
                        f"channel-major)")
    try:
        Y = np.asarray(Y)
        ok = Y.ndim == 1 and Y.dtype.kind in 'iu'
    except Exception:
        ok = False
    if not ok or len(Y) != len(X):
        raise DataError(f"{name}: 'labels' should be {len(X)} integers (one per image), got "
                        f"{type(d['labels']).__name__} of length {len(d['labels'])}")
    if len(Y) and (Y.min() < 0 or Y.max() > 9):
        raise DataError(f"{name}: labels range from {Y.min()} to {Y.max()}, expected 0..9")
    return X.reshape(-1, 3, 32, 32), Y.astype(np.int32)


def _cifar_members(path):
    """{name: (where, bytes)} of the six batch files in the folder or .tar.gz ``path``."""
    names = CIFAR_TRAIN + (CIFAR_TEST,)
    if path.is_dir():
        folder = path / CIFAR_FOLDER if (path / CIFAR_FOLDER).is_dir() else path
        missing = [n for n in names if not (folder / n).is_file()]
        if missing:
            raise DataError(f'{folder}: missing {", ".join(missing)} (expected CIFAR-10\'s python '
                            f'batches data_batch_1..5 and test_batch, from cifar-10-python.tar.gz)')
        return {n: (str(folder / n), (folder / n).read_bytes()) for n in names}
    if not path.exists():
        raise DataError(f'{path}: no such folder or file (expected CIFAR-10\'s {CIFAR_FOLDER}/ '
                        f'folder or cifar-10-python.tar.gz)')
    try:
        with tarfile.open(path, 'r:*') as tar:
            members = {Path(m.name).name: m for m in tar.getmembers() if m.isfile()}
            missing = [n for n in names if n not in members]
            if missing:
                raise DataError(f'{path}: archive lacks {", ".join(missing)} (expected '
                                f'cifar-10-python.tar.gz)')
            return {n: (f'{path}:{members[n].name}', tar.extractfile(members[n]).read())
                    for n in names}
    except tarfile.TarError as err:
        raise DataError(f'{path}: not a CIFAR-10 folder or readable .tar.gz ({err})') from None


def cifar10(path=None, ntrain=None, ntest=None):
    """CIFAR-10 as ``(trX, trY, teX, teY)``: uint8 images (n, 3, 32, 32), int32 labels 0..9.

    ``path``: the ``cifar-10-batches-py`` folder (or the folder holding it, or the
    ``cifar-10-python.tar.gz`` archive); default ``<data_dir>/cifar-10-batches-py``. Train is
    data_batch_1..5 in order (50000 images), test is test_batch (10000); ``ntrain``/``ntest``
    keep the first ones. Every bad file is a one-line DataError naming it.
    """
    path = Path(path).expanduser() if path else default_data_dir() / CIFAR_FOLDER
    for flag, v in (('ntrain', ntrain), ('ntest', ntest)):
        if v is not None and (not isinstance(v, (int, np.integer)) or v < 1):
            raise DataError(f'--{flag}={v!r}: expected a positive integer')
    files = _cifar_members(path)
    train = [_read_batch(*files[n]) for n in CIFAR_TRAIN]
    teX, teY = _read_batch(*files[CIFAR_TEST])
    trX = np.concatenate([x for x, _ in train])
    trY = np.concatenate([y for _, y in train])
    return trX[:ntrain], trY[:ntrain], teX[:ntest], teY[:ntest]
