"""MNIST data: the original's ``mnist()`` and ``mnist_with_valid_set()``.

Reads the four IDX files of http://yann.lecun.com/exdb/mnist/ (``train-images.idx3-ubyte``,
``train-labels.idx1-ubyte``, ``t10k-images.idx3-ubyte``, ``t10k-labels.idx1-ubyte``; the
``-idx3-ubyte`` spelling of the download and ``.gz`` files are accepted too) from the project's
data folder (``lib.config``'s data dir, ``$DCGAN_DATA_DIR`` or ``<repo>/data``) or ``data_dir``.
As the original, images come back as float64 ``(N, 784)`` rows with values 0..255 and labels as
uint8 ``(N,)``.

When no data folder is given and the MNIST files are not in the default one, scikit-learn's bundled
8x8 digits (offline, 1797 images) stand in, upscaled into 28x28 -- they are NOT MNIST, and a note says
so -- so the scripts run out of the box.
"""
import gzip
import sys
from pathlib import Path

import numpy as np

from lib.data_image import DataError, default_data_dir
from lib.data_utils import shuffle

FILES = {'trX': 'train-images.idx3-ubyte', 'trY': 'train-labels.idx1-ubyte',
         'teX': 't10k-images.idx3-ubyte', 'teY': 't10k-labels.idx1-ubyte'}
URL = 'http://yann.lecun.com/exdb/mnist/'
IMAGES_MAGIC, LABELS_MAGIC = 2051, 2049  # 0x00000803: uint8 3-D; 0x00000801: uint8 1-D
DIGITS_NOTE = ('note: MNIST files not found in {dir}; using scikit-learn\'s bundled 8x8 digits '
               '(1797 images upscaled into 28x28) instead -- these are NOT MNIST. Put the four IDX '
               f'files there (from {URL}) or pass --data_dir for the real data.')


def _candidates(folder, name):
    stem, _, ext = name.partition('.')
    names = [name, f'{stem}-{ext}']  # train-images.idx3-ubyte and train-images-idx3-ubyte
    return [folder / n for n in names] + [folder / (n + '.gz') for n in names]


def find_file(folder, name):
    """The path of IDX file ``name`` in ``folder`` (any accepted spelling), or None."""
    return next((p for p in _candidates(Path(folder), name) if p.is_file()), None)


def read_idx(path, magic, shape=None):
    """An IDX file (raw or .gz) -> uint8 array shaped as its header says.

    Checks the magic number, the dimensions (``shape`` entries that are not None) and that the
    file holds exactly the bytes the header announces; every failure is a one-line ``DataError``.
    """
    path = Path(path)
    try:
        opener = gzip.open if path.suffix == '.gz' else open
        with opener(path, 'rb') as f:
            raw = f.read()
    except (OSError, EOFError) as err:  # also gzip's BadGzipFile and truncated streams
        raise DataError(f'{path}: unreadable ({type(err).__name__}: {err})') from None
    ndim = magic & 0xff
    header = 4 + 4*ndim
    kind = 'images' if ndim == 3 else 'labels'
    if len(raw) < header:
        raise DataError(f'{path}: truncated: {len(raw)} bytes, shorter than the {header}-byte IDX '
                        f'header of an MNIST {kind} file')
    found = int.from_bytes(raw[:4], 'big')
    if found != magic:
        raise DataError(f'{path}: IDX magic number {found:#010x}, expected {magic:#010x} (MNIST '
                        f'{kind}, uint8 {ndim}-D)')
    dims = tuple(int.from_bytes(raw[4 + 4*i:8 + 4*i], 'big') for i in range(ndim))
    if shape is not None and any(e is not None and e != d for e, d in zip(shape, dims)):
        want = ' x '.join('N' if e is None else str(e) for e in shape)
        raise DataError(f'{path}: IDX dimensions {" x ".join(map(str, dims))}, expected {want}')
    expected = header + int(np.prod(dims))
    if len(raw) != expected:
        what = 'truncated' if len(raw) < expected else 'too long'
        raise DataError(f'{path}: {what}: expected {expected} bytes ({header}-byte header + '
                        f'{" x ".join(map(str, dims))} uint8), found {len(raw)}')
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def _read_split(folder, images, labels):
    paths = []
    for name in (images, labels):
        path = find_file(folder, name)
        if path is None:
            raise DataError(f'{folder / name}: no such file (nor -idx / .gz variants); download '
                            f'the four MNIST IDX files from {URL} into {folder} or pass --data_dir')
        paths.append(path)
    X = read_idx(paths[0], IMAGES_MAGIC, (None, 28, 28))
    Y = read_idx(paths[1], LABELS_MAGIC)
    if len(X) != len(Y):
        raise DataError(f'{paths[1]}: {len(Y)} labels for the {len(X)} images of {paths[0]}')
    if len(Y) and Y.max() > 9:
        raise DataError(f'{paths[1]}: label {Y.max()}, expected digits 0..9')
    # As the original: the pixels after the 16-byte header as float rows, labels after 8 bytes.
    return X.reshape(len(X), 28*28).astype(float), np.asarray(Y)


def has_mnist(data_dir=None):
    """True if ``data_dir`` (default: the project's data folder) holds all four MNIST files."""
    folder = Path(data_dir).expanduser() if data_dir else default_data_dir()
    return all(find_file(folder, name) is not None for name in FILES.values())


def digits(n_test=297):
    """scikit-learn's 8x8 digits as a stand-in for MNIST: ``(trX, teX, trY, teY)`` like ``mnist()``.

    Pixel values 0..16 are scaled to 0..255 and each image is upscaled with Pillow (bicubic) to
    20x20 and centred in a black 28x28 frame, as MNIST's digits fill a 20x20 box in 28x28; the
    last ``n_test`` images (in the dataset's fixed order) are the test set.
    """
    from PIL import Image
    from sklearn.datasets import load_digits

    d = load_digits()
    small = np.round(d.images * (255. / 16.)).astype(np.uint8)
    big = np.zeros((len(small), 28, 28), dtype=np.uint8)
    for x, out in zip(small, big):
        out[4:24, 4:24] = np.asarray(Image.fromarray(x).resize((20, 20), Image.Resampling.BICUBIC))
    X = big.reshape(len(big), 28*28).astype(float)
    Y = d.target.astype(np.uint8)
    n = len(X) - n_test
    return X[:n], X[n:], Y[:n], Y[n:]


def mnist(data_dir=None):
    """``(trX, teX, trY, teY)``: float64 ``(N, 784)`` rows 0..255 and uint8 labels.

    ``data_dir`` None: the project's data folder, or the 8x8 digits stand-in (with a printed note)
    when MNIST is not there. A ``data_dir`` given must hold the files.
    """
    # PORT: the original read data_dir from lib/config.py only and required exactly 60000/10000.
    folder = Path(data_dir).expanduser() if data_dir else default_data_dir()
    if not data_dir and not any(find_file(folder, n) for n in FILES.values()):
        print(DIGITS_NOTE.format(dir=folder), file=sys.stderr, flush=True)
        return digits()
    trX, trY = _read_split(folder, FILES['trX'], FILES['trY'])
    teX, teY = _read_split(folder, FILES['teX'], FILES['teY'])
    return trX, teX, trY, teY


def mnist_with_valid_set(data_dir=None, nval=None):
    """The training set shuffled with ``lib.rng.np_rng``, its last ``nval`` examples held out for
    validation, as the original: ``(trX, vaX, teX, trY, vaY, teY)``.

    ``nval`` None is the original's 1/6 (10000 of MNIST's 60000; 250 of the digits' 1500).
    """
    trX, teX, trY, teY = mnist(data_dir)
    # PORT: the original split at a fixed 50000; the same 1/6 for any training set size.
    nval = len(trX) // 6 if nval is None else nval
    if not 0 < nval < len(trX):
        raise DataError(f'--nval={nval}: expected 0 < nval < {len(trX)} (the training images)')
    trX, trY = shuffle(trX, trY)
    ntr = len(trX) - nval
    vaX = trX[ntr:]
    vaY = trY[ntr:]
    trX = trX[:ntr]
    trY = trY[:ntr]
    return trX, vaX, teX, trY, vaY, teY
