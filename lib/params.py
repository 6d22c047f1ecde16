"""Parameter files: a list of float32 arrays, in the order of a model's parameter list.

Two formats, told apart by their first bytes:

- ours (``save_params``): a NumPy ``.npz`` archive holding ``arr_0 .. arr_{n-1}`` (what
  ``np.savez(f, *arrays)`` writes), read with ``allow_pickle=False``;
- the original's ``*.jl`` (``joblib.dump`` from Python 2, joblib <= 0.9): a protocol-2 pickle of
  a list of ``NDArrayWrapper`` objects, each naming a side file ``<name>.jl_NN.npy`` in the same
  folder. It is read with the restricted unpickler (lib/unpickle.py), which builds nothing but
  inert stand-ins for exactly those classes, and the side files with ``allow_pickle=False``;
  anything else is refused with a ``ParamsFileError`` before any of it is used.

Writes are atomic (``lib.files.atomic_write``): a temporary file in the target folder, then
``os.replace``.
"""
import os
import pickle
import re
from pathlib import Path

import numpy as np

from lib.data_image import DataError
from lib.files import atomic_write
from lib.unpickle import restricted_loads

_WRAPPER_KEYS = {'filename', 'subclass', 'allow_mmap'}
_SIDE_FILE = re.compile(r'[A-Za-z0-9_.-]+\.npy')
_MAX_PICKLE_BYTES = 1 << 20  # a list of wrappers is a few hundred bytes per array
_ZIP_MAGICS = (b'PK\x03\x04', b'PK\x05\x06')  # a zip with members, an empty zip
_PICKLE2_MAGIC = b'\x80\x02'


class ParamsFileError(DataError):
    """A missing or unreadable parameter file, or one that is not one of the two formats or not
    the shapes expected (nothing in it was executed); one line naming the file."""

    def __init__(self, path, problem):
        super().__init__(f"{path}: {problem}")


class _WrapperStandIn:
    """What the restricted unpickler makes of an NDArrayWrapper: a bag of attributes."""


class _NDArrayMarker:
    """What the restricted unpickler makes of the global numpy.ndarray: a marker, never called."""

    def __init__(self, *args, **kwargs):
        raise pickle.UnpicklingError("numpy.ndarray may only be named, not called")


# The globals a joblib <= 0.9 parameter file may name, as inert stand-ins: the wrapper class
# (under the module path of the sklearn-bundled joblib the original used, or of joblib itself)
# and numpy.ndarray.
_JL_GLOBALS = {
    ('sklearn.externals.joblib.numpy_pickle', 'NDArrayWrapper'): _WrapperStandIn,
    ('joblib.numpy_pickle', 'NDArrayWrapper'): _WrapperStandIn,
    ('joblib.numpy_pickle_compat', 'NDArrayWrapper'): _WrapperStandIn,
    ('numpy', 'ndarray'): _NDArrayMarker,
}


def _params_values(params):
    """Arrays from shared variables (``get_value()``) or array-likes."""
    return [np.asarray(p.get_value() if hasattr(p, 'get_value') else p) for p in params]


def _as_float32(path, what, a):
    if not isinstance(a, np.ndarray) or a.dtype.kind not in 'fiu':
        raise ParamsFileError(path, f"{what}: expected a numeric array, found "
                                    f"{getattr(a, 'dtype', type(a).__name__)}")
    return a.astype(np.float32, copy=False)


def _load_npy(path, what):
    try:
        with open(path, 'rb') as f:
            a = np.lib.format.read_array(f, allow_pickle=False)
    except FileNotFoundError:
        raise ParamsFileError(path, f"missing side file ({what})") from None
    except Exception as e:  # not .npy, object arrays, truncated data, bad headers
        raise ParamsFileError(path, f"not a plain .npy array ({what}): {e}") from None
    return _as_float32(path, what, a)


def _load_npz(path):
    try:
        with np.load(path, allow_pickle=False) as f:
            names = list(f.files)
            expected = [f'arr_{i}' for i in range(len(names))]
            if sorted(names) != sorted(expected):
                raise ParamsFileError(path, f"expected arrays arr_0..arr_{len(names) - 1}, "
                                            f"found {names}")
            return [_as_float32(path, name, f[name]) for name in expected]
    except ParamsFileError:
        raise
    except Exception as e:
        raise ParamsFileError(path, f"not a readable .npz parameter file: {e}") from None


def _load_jl(path):
    size = os.path.getsize(path)
    if size > _MAX_PICKLE_BYTES:
        raise ParamsFileError(path, f"{size} bytes: too large for a joblib<=0.9 list of wrappers")
    with open(path, 'rb') as f:
        data = f.read()
    try:
        wrappers = restricted_loads(data, _JL_GLOBALS)
    except Exception as e:  # refused globals, truncated or malformed pickles
        raise ParamsFileError(path, f"not a joblib<=0.9 list of NDArrayWrapper: {e}") from None
    if not isinstance(wrappers, list):
        raise ParamsFileError(path, f"expected a list of NDArrayWrapper, found "
                                    f"{type(wrappers).__name__}")
    folder = os.path.dirname(os.path.abspath(path))
    arrays = []
    for i, w in enumerate(wrappers):
        what = f"entry {i}"
        if type(w) is not _WrapperStandIn or set(vars(w)) != _WRAPPER_KEYS:
            raise ParamsFileError(path, f"{what}: expected an NDArrayWrapper with "
                                        f"{sorted(_WRAPPER_KEYS)}, found {w!r}")
        state = vars(w)
        filename = state['filename']
        if state['subclass'] is not _NDArrayMarker or not isinstance(filename, str) \
                or not _SIDE_FILE.fullmatch(filename) or filename.startswith('.'):
            raise ParamsFileError(path, f"{what}: expected a numpy.ndarray in a plain side file "
                                        f"name *.npy, found {state['subclass']!r}, {filename!r}")
        arrays.append(_load_npy(os.path.join(folder, filename), f"{what} of {path}"))
    return arrays


def load_params(path):
    """The list of float32 arrays in parameter file ``path`` (ours, .npz, or the original's .jl).

    Raises ``ParamsFileError`` (a DataError, so a ValueError) naming the file for anything else.
    """
    path = os.fspath(path)
    try:
        with open(path, 'rb') as f:
            magic = f.read(4)
    except OSError as e:
        raise ParamsFileError(path, f"unreadable parameter file ({type(e).__name__}: "
                                    f"{e.strerror or e})") from None
    if magic.startswith(_ZIP_MAGICS):
        return _load_npz(path)
    if magic.startswith(_PICKLE2_MAGIC):
        return _load_jl(path)
    raise ParamsFileError(path, f"expected an .npz archive or a joblib<=0.9 .jl pickle, found "
                                f"first bytes {magic!r}")


def params_path(model_dir, epoch, part, hint=''):
    """``<model_dir>/<epoch>_<part>_params.npz`` (ours) or ``.jl`` (the original's): the one there.

    ``part`` is 'gen' or 'discrim'. Raises ``ParamsFileError`` (one line, ending in ``hint``)
    when the folder or the file is missing, or when both an .npz and a .jl exist (ambiguous).
    """
    model_dir = Path(model_dir).expanduser()
    stem = model_dir / f'{epoch}_{part}_params'
    found = [p for p in (stem.with_name(stem.name + ext) for ext in ('.npz', '.jl')) if p.is_file()]
    if not found:
        where = ('no such model folder' if not model_dir.is_dir() else
                 f'expected the {part} parameters of epoch {epoch} in it')
        raise ParamsFileError(f'{stem}.{{npz,jl}}', f'no such file; {where} (check --model_dir='
                                                    f'{model_dir} and --epoch={epoch}){hint}')
    if len(found) > 1:
        raise ParamsFileError(model_dir, f'both {found[0].name} and {found[1].name} exist; keep '
                                         f'one of them')
    return found[0]


def check_shapes(arrays, shapes, path, dims=''):
    """Raise ``ParamsFileError`` unless ``arrays`` match ``shapes`` [(name, shape), ...] one by one.

    ``dims``: the architecture's widths, shown after the expected shape.
    """
    if len(arrays) != len(shapes):
        raise ParamsFileError(path, f'{len(arrays)} arrays, expected {len(shapes)} '
                                    f'({", ".join(n for n, _ in shapes)}) for this architecture')
    for a, (name, shape) in zip(arrays, shapes):
        if tuple(np.shape(a)) != tuple(shape):
            raise ParamsFileError(path, f'parameter {name} has shape {tuple(np.shape(a))}, the '
                                        f'architecture expects {tuple(shape)}{dims}')


def save_params(params, path):
    """Write ``params`` (shared variables or arrays) to ``path`` in our format, atomically.

    Our format is an .npz archive (``arr_0``..), whatever the file name; no pickle.
    """
    arrays = _params_values(params)
    atomic_write(path, lambda f: np.savez(f, *arrays))


def _jl_string(s):
    b = s.encode('ascii')
    return b'U' + bytes([len(b)]) + b  # SHORT_BINSTRING: a Python 2 str


def save_params_jl(params, path, module='sklearn.externals.joblib.numpy_pickle'):
    """FOR TESTS AND FIXTURES ONLY: write ``params`` in the original's .jl format.

    That is what ``joblib.dump`` (joblib <= 0.9, Python 2) wrote: a protocol-2 pickle of a list
    of ``<module>.NDArrayWrapper`` objects and one side file ``<path>_NN.npy`` (NN from 01) per
    array. Tests use it to stand in for the original's pretrained models (e.g. the imagenet
    model, whose weights are not available). Models of the port are saved with ``save_params``.
    """
    arrays = _params_values(params)
    base = os.path.basename(os.fspath(path))
    names = [f'{base}_{i + 1:02d}.npy' for i in range(len(arrays))]
    folder = os.path.dirname(os.path.abspath(os.fspath(path)))
    for name, a in zip(names, arrays):
        atomic_write(os.path.join(folder, name), lambda f, a=a: np.save(f, a, allow_pickle=False))
    # The opcodes joblib 0.9 produced, written out (the class is not importable here).
    out = [b'\x80\x02', b']', b'(']
    for name in names:
        out += [b'c' + module.encode('ascii') + b'\nNDArrayWrapper\n', b')', b'\x81',
                b'}', b'(',
                _jl_string('allow_mmap'), b'\x88',
                _jl_string('subclass'), b'cnumpy\nndarray\n',
                _jl_string('filename'), _jl_string(name),
                b'u', b'b']
    out += [b'e', b'.']
    atomic_write(path, lambda f: f.write(b''.join(out)))
