"""LSUN data: the released LMDB databases, read as they are distributed.

An LSUN category (e.g. ``bedroom_train_lmdb/``, 3,033,042 images) is an LMDB environment: a
folder holding ``data.mdb`` (and ``lock.mdb``), whose keys are image ids and whose values are
encoded images (WebP in the released bedroom set; JPEG and PNG are read too). Get it with the
LSUN project's download script (https://github.com/fyu/lsun: ``python download.py -c bedroom``)
and unzip it; ``--data`` names the folder (or its ``data.mdb``).

``LSUN(path, npx)`` lists the keys once (the only thing kept in memory: about 250 MB for the
3M bedroom ids) and decodes the images a batch at a time: each is converted to RGB, resized so its
shorter side is ``npx`` and center-cropped to ``npx x npx`` (lib/data_image), the paper's 64 px
preprocessing. An entry that does not decode is skipped and counted (``n_skipped``). ``drop``:
a list of keys to leave out (lsun/dedup.py's output; ``read_keys``), honoured before indexing.

``path`` may also be the database's one-time HDF5 conversion (lsun/convert.py, images stored
at ``npx``): the same images, keys and drop lists, read without decoding.

Every bad input raises ``DataError`` with a one-line message naming the path: a missing path, a
folder or file that is not an LMDB database, a corrupt one, an empty one, one whose first entries
are not images, a conversion at another size.
"""
import io
from pathlib import Path

import numpy as np

from lib.data_image import DataError, center_crop, resize_min_side, to_rgb

WHERE = ('LSUN is not downloadable from here: get a category with the LSUN download script '
         '(https://github.com/fyu/lsun: python download.py -c bedroom), unzip it, and pass '
         '--data=PATH/bedroom_train_lmdb')
N_PROBE = 32      # entries decoded when a database is opened, to tell images from other values


def _lmdb():
    try:
        import lmdb
    except ImportError:
        raise DataError('the lmdb package is missing: pip install -r requirements.txt') from None
    return lmdb


_OPEN = {}        # resolved path -> [environment, users]: LMDB opens a file once per process


def open_env(path):
    """A read-only ``lmdb.Environment`` of ``path`` (an LMDB folder, or its data.mdb file),
    shared by every reader of the same database in this process (``close_env`` when done)."""
    path = Path(path).expanduser()
    if path.exists() and path.resolve() in _OPEN:
        _OPEN[path.resolve()][1] += 1
        return _OPEN[path.resolve()][0]
    env = _open_env(path)
    _OPEN[path.resolve()] = [env, 1]
    return env


def close_env(env):
    """Release an environment of ``open_env``; the last user closes it."""
    for p, entry in list(_OPEN.items()):
        if entry[0] is env:
            entry[1] -= 1
            if entry[1] == 0:
                del _OPEN[p]
                env.close()


def _open_env(path):
    lmdb = _lmdb()
    if not path.exists():
        raise DataError(f'{path}: no such file or folder (expected an LSUN LMDB folder such as '
                        f'bedroom_train_lmdb/)')
    subdir = path.is_dir()
    if subdir and not (path / 'data.mdb').is_file():
        raise DataError(f'{path}: not an LMDB database (no data.mdb in this folder)')
    try:
        # PORT: the LSUN tools open with lock=False (read-only media; no lock file written)
        env = lmdb.open(str(path), subdir=subdir, readonly=True, lock=False, readahead=False,
                        meminit=False, max_readers=4)
        need = (env.info()['last_pgno'] + 1) * env.stat()['psize']
    except lmdb.InvalidError as err:
        raise DataError(f'{path}: not an LMDB database ({err})') from None
    except lmdb.Error as err:
        raise DataError(f'{path}: unreadable LMDB database ({type(err).__name__}: {err})') from None
    # a truncated data.mdb would fault (SIGBUS) on the first read past its end: refuse it here
    data = path / 'data.mdb' if subdir else path
    if data.stat().st_size < need:
        env.close()
        raise DataError(f'{data}: corrupt LMDB database (truncated: {data.stat().st_size} bytes, '
                        f'its pages need {need}; an interrupted download or copy?)')
    return env


def decode(value, npx):
    """Encoded image bytes -> uint8 (npx, npx, 3): RGB, shorter side resized to npx, center crop.

    Raises ``ValueError`` when ``value`` is not a readable image.
    """
    from PIL import Image

    try:
        with Image.open(io.BytesIO(value)) as img:
            if img.format == 'JPEG':
                img.draft('RGB', (npx, npx))  # decode large JPEGs at a reduced scale >= npx
            img.load()
            img = to_rgb(img)
    except Image.UnidentifiedImageError:
        raise ValueError('not an image Pillow can identify') from None
    except Exception as err:  # Pillow raises many types (OSError, SyntaxError, ...)
        raise ValueError(f'{type(err).__name__}: {err}') from None
    return center_crop(np.asarray(resize_min_side(img, npx)), npx)


def decode_batch(values, npx):
    """``decode`` of each of ``values`` (None: a missing entry) -> (uint8 (m, npx, npx, 3) of
    the m that decode, in order; bool (len(values),): which did)."""
    out, ok = [], []
    for value in values:
        try:
            if value is None:
                raise ValueError('key listed but not found')
            out.append(decode(value, npx))
            ok.append(True)
        except ValueError:
            ok.append(False)
    X = np.stack(out) if out else np.zeros((0, npx, npx, 3), np.uint8)
    return X, np.array(ok, bool)


def read_keys(path):
    """The keys of a key-list file (lsun/dedup.py's output): one per line, ``#`` comments and
    blank lines ignored; a key that is not printable ASCII is written ``hex:<hex digits>``."""
    path = Path(path)
    try:
        text = path.read_text(encoding='utf-8')
    except FileNotFoundError:
        raise DataError(f'{path}: no such key-list file') from None
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f'{path}: unreadable key list ({err})') from None
    keys = []
    for i, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith('#'):
            continue
        if line.startswith('hex:'):
            try:
                keys.append(bytes.fromhex(line[4:]))
            except ValueError:
                raise DataError(f'{path}: line {i}: {line!r} is not hex:<hex digits>') from None
        else:
            keys.append(line.encode('ascii', 'strict') if line.isascii() else line.encode())
    return keys


def format_key(key):
    """One line of a key-list file for ``key`` (bytes)."""
    text = key.decode('ascii', 'replace')
    if key.isascii() and text.isprintable() and text == text.strip() and text and \
            not text.startswith(('#', 'hex:')):
        return text
    return 'hex:' + key.hex()


def write_keys(path, keys, header=()):
    """Write a key-list file (``read_keys``'s format) atomically; ``header``: comment lines."""
    from lib.files import atomic_write_text
    lines = [f'# {h}' for h in header] + [format_key(k) for k in keys]
    atomic_write_text(path, '\n'.join(lines) + '\n')


class LSUN:
    """An LSUN LMDB database, or its HDF5 conversion, as indexed, decoded images (see the module
    docstring).

    ``keys``: the kept keys in the database's (sorted) order; ``len()`` their number;
    ``get(indices)`` -> uint8 (m, npx, npx, 3), m <= len(indices) (undecodable entries are
    skipped, counted in ``n_skipped``, their keys in ``skipped``); ``batches(nbatch)`` streams
    them in order; ``encoded(indices)``: the stored bytes, for decoding elsewhere
    (``decode_batch``; lsun/convert.py's workers). ``n_dropped``: keys of ``drop`` found and
    left out (for a conversion, also those left out when it was made).
    """

    def __init__(self, path, npx=64, drop=None, limit=None):
        self.path = Path(path).expanduser()
        self.npx = npx
        self.env = self.h5 = None
        self.n_skipped, self.skipped = 0, []
        if is_converted(self.path):
            self._open_converted(drop, limit)
            return
        self.env = open_env(self.path)
        self._mdb = self.path / 'data.mdb' if self.path.is_dir() else self.path
        self._mdb_size = self._mdb.stat().st_size
        try:
            self._index(drop, limit)
        except BaseException:
            self.close()
            raise

    def _open_converted(self, drop, limit):
        import h5py

        from lib.data_hdf5 import H5Dataset
        self.h5 = H5Dataset(self.path, which_sets=('train',), load_in_memory=False)
        size = self.h5.shapes['features'][1]
        if size != self.npx:
            raise DataError(f'{self.path}: images stored at {size} px, {self.npx} px wanted '
                            f'(convert again with lsun/convert.py --npx={self.npx})')
        with h5py.File(self.path, 'r') as f:
            if 'keys' not in f or len(f['keys']) != len(f['features']):
                raise DataError(f"{self.path}: no 'keys' beside the images (not written by "
                                f"lsun/convert.py)")
            keys = np.array(f['keys'][:self.h5.num_examples], dtype=object)
            self.n_dropped = int(f.attrs.get('n_dropped', 0))
        rows = np.arange(len(keys))
        if drop:
            drop = set(drop)
            rows = rows[[k not in drop for k in keys]]
            self.n_dropped += len(keys) - len(rows)
        rows = rows[:limit]
        if not len(rows):
            raise DataError(f'{self.path}: every image is in the drop list')
        self.keys, self._rows = keys[rows], rows
        self._handle = self.h5.open()

    def _index(self, drop, limit):
        lmdb = _lmdb()
        try:
            with self.env.begin(buffers=False) as txn:
                n = txn.stat()['entries']
                if n == 0:
                    raise DataError(f'{self.path}: the LMDB database has no entries')
                keys = []
                for key in txn.cursor().iternext(keys=True, values=False):
                    keys.append(key)
                    if limit is not None and len(keys) >= limit + (len(drop) if drop else 0):
                        break
        except lmdb.Error as err:
            raise DataError(f'{self.path}: corrupt LMDB database ({type(err).__name__}: '
                            f'{err})') from None
        self.n_dropped = 0
        if drop:
            drop = set(drop)
            kept = [k for k in keys if k not in drop]
            self.n_dropped = len(keys) - len(kept)
            keys = kept
        if limit is not None:
            keys = keys[:limit]
        if not keys:
            raise DataError(f'{self.path}: every entry is in the drop list')
        self.keys = np.array(keys, dtype=object)
        self._probe()

    def __len__(self):
        return len(self.keys)

    def _probe(self):
        """DataError unless one of the first N_PROBE entries decodes (an LMDB of images)."""
        errors = []
        for key, value in self._values(self.keys[:N_PROBE]):
            try:
                decode(value, self.npx)
                return
            except ValueError as err:
                errors.append((key, err))
        key, err = errors[0]
        raise DataError(f'{self.path}: none of the first {len(errors)} entries is an image '
                        f'(LSUN values are WebP, JPEG or PNG bytes); key {key!r}: {err}')

    def _values(self, keys):
        lmdb = _lmdb()
        try:
            size = self._mdb.stat().st_size
        except FileNotFoundError:  # deleted: its pages stay mapped and readable
            size = self._mdb_size
        if size < self._mdb_size:  # a read past the new end would kill the process (SIGBUS)
            raise DataError(f'{self._mdb}: truncated while being read ({self._mdb_size} bytes '
                            f'when opened, {size} now): a run needs its database unchanged')
        try:
            with self.env.begin(buffers=False) as txn:
                for key in keys:
                    yield key, txn.get(key)
        except lmdb.Error as err:
            raise DataError(f'{self.path}: corrupt LMDB database ({type(err).__name__}: '
                            f'{err})') from None

    def get(self, indices, with_ok=False):
        """The decoded images of ``indices`` (ints into ``keys``), undecodable ones skipped;
        ``with_ok``: also return a bool per index, False where an entry was skipped."""
        if self.h5 is not None:
            X, = self.h5.get_data(self._handle, self._rows[np.asarray(indices, dtype=np.int64)])
            return (X, np.ones(len(X), bool)) if with_ok else X
        indices = np.asarray(indices, dtype=np.int64)
        X, ok = decode_batch(self.encoded(indices), self.npx)
        self.count_skipped(indices[~ok])
        return (X, ok) if with_ok else X

    def encoded(self, indices):
        """The stored values (encoded images; None for a listed key not found) of ``indices``
        (ints into ``keys``) of an LMDB database."""
        return [v for _, v in self._values(self.keys[np.asarray(indices, dtype=np.int64)])]

    def count_skipped(self, indices):
        """Count the entries ``indices`` as skipped: ``n_skipped``, and ``skipped`` keeps the
        first 100 keys."""
        self.n_skipped += len(indices)
        self.skipped += list(self.keys[indices][:max(0, 100 - len(self.skipped))])

    def batches(self, nbatch, start=0, stop=None):
        """Yields (indices, images) of consecutive batches over ``keys[start:stop]``."""
        stop = len(self) if stop is None else min(stop, len(self))
        for i in range(start, stop, nbatch):
            idx = np.arange(i, min(i + nbatch, stop))
            yield idx, self.get(idx)

    def close(self):
        """Release the database (its environment closes with its last reader)."""
        if self.env is not None:
            close_env(self.env)
            self.env = None
        if self.h5 is not None:
            self.h5.close(self._handle)
            self.h5 = None


def is_converted(path):
    """Whether ``path`` is an HDF5 file (lsun/convert.py's output) rather than an LMDB."""
    import h5py
    return Path(path).is_file() and h5py.is_hdf5(str(path))


def write_lmdb(path, items, map_size=1 << 30):
    """Write ``items`` ((key bytes, encoded image bytes) pairs) as an LMDB database in LSUN's
    layout (a folder with data.mdb); used for test fixtures and injected-duplicate sets."""
    lmdb = _lmdb()
    env = lmdb.open(str(path), map_size=map_size, subdir=True)
    try:
        with env.begin(write=True) as txn:
            for key, value in items:
                txn.put(key, value)
    finally:
        env.close()
    return Path(path)


def encode(img, fmt='webp', quality=75):
    """uint8 (h, w, 3) -> encoded bytes (``fmt``: webp, jpeg or png), as LSUN stores images."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.asarray(img, np.uint8)).save(buf, format=fmt.upper(),
                                                    **({} if fmt == 'png' else {'quality': quality}))
    return buf.getvalue()


def default_drop_path(data):
    """Where lsun/dedup.py writes the drop list of database ``data`` by default, and where
    ``--drop=auto`` looks for it: ``<data_dir>/lsun/<database folder name>.drop.txt``."""
    from lib.config import data_dir
    p = Path(data).expanduser()
    name = p.parent.name if p.name == 'data.mdb' else p.name
    return data_dir() / 'lsun' / f'{name}.drop.txt'


def resolve_drop(drop, data):
    """(keys to drop, path or None) for a ``--drop`` flag: a key-list file, 'auto' (the default
    drop list of ``data`` if it exists; for a conversion, the list applied when it was made) or
    'none'."""
    if drop == 'none' or drop == '':
        return [], None
    if drop == 'auto' and is_converted(Path(data).expanduser()):
        return [], _converted_drop_list(data)       # applied when it was converted
    path = default_drop_path(data) if drop == 'auto' else Path(drop).expanduser()
    if drop == 'auto' and not path.is_file():
        return [], None
    try:
        return read_keys(path), path
    except DataError as e:
        raise DataError(f'--drop={drop}: {e}') from None


def _converted_drop_list(path):
    """The drop list lsun/convert.py applied to the HDF5 file ``path``, or None."""
    import h5py
    try:
        with h5py.File(path, 'r') as f:
            listed = str(f.attrs.get('drop_list', ''))
    except OSError as err:
        raise DataError(f'{path}: not a readable HDF5 file ({err})') from None
    return Path(listed) if listed else None
