"""SVHN data: the original's ``svhn()`` and ``svhn_with_valid_set()``.

Reads the cropped-digits files ("Format 2") of http://ufldl.stanford.edu/housenumbers/:
``train_32x32.mat``, ``test_32x32.mat`` and, for ``extra=True``, ``extra_32x32.mat``, from the
project's data folder (``lib.config``'s data dir, ``$DCGAN_DATA_DIR`` or ``<repo>/data``) or
the ``data_dir`` given. Each file holds ``X``: uint8 ``(32, 32, 3, N)`` and ``y``: ``(N, 1)``
labels 1..10, where 10 is the digit 0. As the original, images come back NCHW ``(N, 3, 32, 32)``
uint8 and labels ``y - 1`` (so the digit 0 is class 9).
"""
from pathlib import Path

import numpy as np

from lib.data_image import DataError, default_data_dir
from lib.data_utils import shuffle

FILES = {'train': 'train_32x32.mat', 'test': 'test_32x32.mat', 'extra': 'extra_32x32.mat'}
URL = 'http://ufldl.stanford.edu/housenumbers/'


def _data_dir(data_dir):
    return Path(data_dir).expanduser() if data_dir else default_data_dir()


def load_mat(path):
    """One SVHN .mat file -> ``(X, y)``: uint8 ``(N, 3, 32, 32)`` images and int labels 0..9.

    Raises ``DataError`` (one line) for a missing file, a file that is not a MATLAB file, missing
    ``X``/``y`` keys, or arrays not in the cropped-digits layout.
    """
    from scipy.io import loadmat

    path = Path(path)
    if not path.is_file():
        raise DataError(f'{path}: no such file; download {path.name} (cropped digits, "Format 2") '
                        f'from {URL} into {path.parent} or pass --data_dir')
    try:
        data = loadmat(str(path), variable_names=['X', 'y'])
    except NotImplementedError:  # MATLAB v7.3 (HDF5) files
        raise DataError(f'{path}: MATLAB v7.3 file; expected the SVHN "Format 2" .mat '
                        f'(MATLAB v5, as downloaded from {URL})') from None
    except Exception as err:  # scipy raises ValueError, TypeError, MatReadError, ...
        raise DataError(f'{path}: not a readable .mat file ({type(err).__name__}: {err})') from None
    missing = [k for k in ('X', 'y') if k not in data]
    if missing:
        raise DataError(f"{path}: no {' or '.join(repr(k) for k in missing)} variable "
                        f"(expected 'X' uint8 (32, 32, 3, N) and 'y' (N, 1) labels 1..10)")
    X, y = data['X'], data['y']
    if X.ndim != 4 or X.shape[:3] != (32, 32, 3) or X.dtype != np.uint8:
        raise DataError(f"{path}: 'X' is {X.dtype} {X.shape}, expected uint8 (32, 32, 3, N)")
    n = X.shape[3]
    if y.size != n or (y.ndim == 2 and 1 not in y.shape) or y.ndim > 2:
        raise DataError(f"{path}: 'y' has shape {y.shape}, expected ({n}, 1) for the {n} images")
    y = y.flatten()
    if n and (y.min() < 1 or y.max() > 10 or not np.all(y == np.round(y))):
        raise DataError(f"{path}: 'y' has values {y.min()}..{y.max()}, expected labels 1..10")
    return X.transpose(3, 2, 0, 1), y.astype(np.int64) - 1


def svhn(extra=False, data_dir=None):
    """``(trX, teX, trY, teY)``, or ``(trX, exX, teX, trY, exY, teY)`` with ``extra``.

    Images uint8 ``(N, 3, 32, 32)``, labels 0..9 (digit 0 is class 9).
    """
    folder = _data_dir(data_dir)
    trX, trY = load_mat(folder / FILES['train'])
    teX, teY = load_mat(folder / FILES['test'])
    if extra:
        exX, exY = load_mat(folder / FILES['extra'])
        return trX, exX, teX, trY, exY, teY
    return trX, teX, trY, teY


def svhn_with_valid_set(extra=False, data_dir=None, nval=10000):
    """The training set shuffled with ``lib.rng.np_rng`` and split into ``nval`` validation examples
    and the rest, as the original: ``(trX, vaX, teX, trY, vaY, teY)``.

    With ``extra`` the extra set is appended to the (remaining) training set, shuffled again, and
    ``trS`` (1 = from train_32x32, 0 = from extra) is returned last.
    """
    # PORT: nval was fixed at 10000; a parameter so small test files can be split too.
    if extra:
        trX, exX, teX, trY, exY, teY = svhn(extra=extra, data_dir=data_dir)
    else:
        trX, teX, trY, teY = svhn(extra=extra, data_dir=data_dir)
    if not 0 <= nval < len(trX):
        raise DataError(f'--nval={nval}: expected 0 <= nval < {len(trX)}, the number of images in '
                        f'{_data_dir(data_dir) / FILES["train"]}')
    trX, trY = shuffle(trX, trY)
    vaX = trX[:nval]
    vaY = trY[:nval]
    trX = trX[nval:]
    trY = trY[nval:]
    if extra:
        trS = np.asarray([1 for _ in range(len(trY))] + [0 for _ in range(len(exY))])
        trX = np.concatenate([trX, exX], axis=0)
        trY = np.concatenate([trY, exY], axis=0)
        trX, trY, trS = shuffle(trX, trY, trS)
        return trX, vaX, teX, trY, vaY, teY, trS
    return trX, vaX, teX, trY, vaY, teY
