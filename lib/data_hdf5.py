"""Image datasets in fuel's HDF5 layout: the ``split`` attribute, a writer and a reader.

The original read ``faces_364293_128px.hdf5`` through fuel's ``H5PYDataset``. Fuel is
unmaintained, so this module reads and writes the same file layout with h5py and keeps the
reader's calls (``tr_data.open()``, ``tr_data.get_data(handle, request)``, ``num_examples``).

File layout (fuel's H5PYDataset convention, readable by fuel itself):

* ``features``: uint8 ``(N, H, W, 3)`` images (NHWC; the train scripts' transform
  center-crops and transposes to NCHW); dimension labels batch/height/width/channel.
* root attribute ``split``: structured array with fields ``split, source, start,
  stop, indices, available, comment`` (one row per split x source), see
  ``create_split_array``; splits ``train`` and ``test``.
* optional extra sources, e.g. ``attributes``: float32 ``(N, k)`` with attribute
  ``names`` (synthetic faces' labels), listed in ``split`` like ``features``.

Data is read from disk one batch at a time unless the selected rows are small
(``load_in_memory=None`` loads them when they fit in ``IN_MEMORY_MAX_BYTES``). Such a read first
checks that the file is the one opened: HDF5 reads past the end of a file truncated under it as
zeros, silently, so a file that changed size or was rewritten is a ``DataError`` naming it.
"""
import contextlib
import os
from pathlib import Path

import numpy as np

from lib.data_image import DataError
from lib.files import atomic_path

IN_MEMORY_MAX_BYTES = 256 << 20   # auto load_in_memory below this size of selected rows
HDF5_EXTS = ('.hdf5', '.h5', '.hdf')
SPLIT_FIELDS = ('split', 'source', 'start', 'stop', 'indices', 'available', 'comment')


def create_split_array(split_dict):
    """Fuel's ``split`` attribute for ``split_dict = {split: {source: (start, stop[, indices[, comment]])}}``.

    Returns a structured array with one row per (split, source) pair, sources sorted,
    fields ``split, source`` (bytes), ``start, stop`` (int64), ``indices`` (HDF5 object
    reference, null unless a subset-indices dataset is given), ``available`` (bool; False
    for pairs absent from ``split_dict``) and ``comment`` (bytes, '.' when empty), exactly
    as fuel's ``H5PYDataset.create_split_array``.
    """
    import h5py

    sources = sorted({src for per_split in split_dict.values() for src in per_split})
    comment_len = max([1] + [len(v[3]) for s in split_dict.values() for v in s.values()
                             if len(v) > 3])
    dtype = np.dtype([
        ('split', 'S%d' % max(len(s) for s in split_dict)),
        ('source', 'S%d' % max(len(s) for s in sources)),
        ('start', np.int64),
        ('stop', np.int64),
        ('indices', h5py.special_dtype(ref=h5py.Reference)),
        ('available', np.bool_),
        ('comment', 'S%d' % comment_len)])
    rows = []
    for split, per_split in split_dict.items():
        for source in sources:
            val = per_split.get(source)
            if val is None:
                rows.append((split.encode(), source.encode(), 0, 0, h5py.Reference(), False, b'.'))
                continue
            indices = val[2] if len(val) > 2 and val[2] is not None else h5py.Reference()
            comment = (val[3] if len(val) > 3 else '') or '.'
            rows.append((split.encode(), source.encode(), val[0], val[1], indices, True,
                         comment.encode()))
    return np.array(rows, dtype=dtype)


def _decode(v):
    return v.decode('utf8') if isinstance(v, bytes) else str(v)


def read_split_dict(h5file, path='<hdf5>'):
    """``{split: {source: rows}}`` from an open file; ``rows`` is a ``slice`` or a sorted int array.

    Reads fuel's ``split`` array (``indices`` references take precedence over
    start/stop, as in fuel); also accepts fuel 0.0.x files, where each split was a
    root attribute ``[start, stop]`` applying to every source. Unavailable pairs are left out.
    """
    if 'split' not in h5file.attrs:
        legacy = {k: v for k, v in h5file.attrs.items()
                  if np.ndim(v) == 1 and len(v) == 2 and np.issubdtype(np.asarray(v).dtype, np.integer)}
        if not legacy:
            raise DataError(f"{path}: no 'split' attribute (expected fuel's H5PYDataset "
                            "split array with 'train' and 'test' rows)")
        sources = [k for k, v in h5file.items() if hasattr(v, 'shape')]
        return {name: {src: slice(int(a), int(b)) for src in sources}
                for name, (a, b) in legacy.items()}
    try:
        arr = np.asarray(h5file.attrs['split'])
        missing = [f for f in SPLIT_FIELDS if f not in (arr.dtype.names or ())]
    except Exception as err:
        raise DataError(f"{path}: unreadable 'split' attribute ({type(err).__name__}: {err})") from None
    if missing or arr.ndim != 1:
        raise DataError(f"{path}: 'split' attribute lacks fields {missing} (expected fuel's "
                        f"fields {list(SPLIT_FIELDS)})")
    out = {}
    for row in arr:
        split, source = _decode(row['split']), _decode(row['source'])
        out.setdefault(split, {})
        if not row['available']:
            continue
        ref = row['indices']
        if ref:
            try:
                rows = np.sort(np.asarray(h5file[ref], dtype=np.int64).ravel())
            except Exception as err:
                raise DataError(f"{path}: split '{split}' source '{source}': bad indices "
                                f"reference ({type(err).__name__}: {err})") from None
        else:
            rows = slice(int(row['start']), int(row['stop']))
        out[split][source] = rows
    return out




def _dims_labels(dset, labels):
    for dim, label in zip(dset.dims, labels):
        dim.label = label



class H5Writer:
    """Write an image HDF5 file in the layout above, chunk by chunk, atomically.

    ``with H5Writer(out, n, size) as writer:`` ``write`` appends rows, ``finish`` trims the file
    to the rows written and writes the ``split`` attribute. Rows go to a temporary file beside
    ``out`` (``lib.files.atomic_path``) that becomes ``out`` when the block ends without an
    exception; an exception or a kill leaves no file at ``out`` that loads. ``features`` is
    chunked one image per chunk (fast shuffled reads).
    """

    def __init__(self, out, n, size, attribute_names=None, attrs=None):
        self.out = Path(out)
        self.n_max, self.size = n, size
        self.attribute_names, self.file_attrs = attribute_names, attrs or {}
        self.n = 0

    def __enter__(self):
        import h5py

        self._stack = contextlib.ExitStack()
        with self._stack:  # on a failure below: close and remove the partial file
            try:  # a folder that is a file or read-only: one line naming the file
                self.out.parent.mkdir(parents=True, exist_ok=True)
                tmp = self._stack.enter_context(atomic_path(self.out))
                self.f = self._stack.enter_context(h5py.File(tmp, 'w'))
            except OSError as e:
                raise DataError(f'{self.out}: cannot write it ({e.strerror or e})') from None
            n, size = self.n_max, self.size
            self.features = self.f.create_dataset(
                'features', (n, size, size, 3), dtype=np.uint8, maxshape=(None, size, size, 3),
                chunks=(1, size, size, 3))
            _dims_labels(self.features, ('batch', 'height', 'width', 'channel'))
            self.attributes = None
            if self.attribute_names:
                k = len(self.attribute_names)
                self.attributes = self.f.create_dataset(
                    'attributes', (n, k), dtype=np.float32, maxshape=(None, k),
                    chunks=(min(max(n, 1), 4096), k))
                self.attributes.attrs['names'] = [s.encode() for s in self.attribute_names]
                _dims_labels(self.attributes, ('batch', 'attribute'))
            for k, v in self.file_attrs.items():
                self.f.attrs[k] = v
            self._stack = self._stack.pop_all()
        return self

    def __exit__(self, *exc):
        return self._stack.__exit__(*exc)

    def write(self, images, attributes=None):
        """Append ``images`` uint8 ``(b, size, size, 3)`` (and ``attributes`` float32 ``(b, k)``)."""
        b = len(images)
        self.features[self.n:self.n + b] = images
        if self.attributes is not None:
            self.attributes[self.n:self.n + b] = attributes
        self.n += b

    def finish(self, ntest, attrs=None):
        """Keep the rows written, the last ``ntest`` of them as the 'test' split."""
        n = self.n
        ntest = min(max(int(ntest), 0), n)
        self.features.resize(n, axis=0)
        sources = ['features'] + (['attributes'] if self.attributes is not None else [])
        if self.attributes is not None:
            self.attributes.resize(n, axis=0)
        self.f.attrs['split'] = create_split_array({
            'train': {s: (0, n - ntest) for s in sources},
            'test': {s: (n - ntest, n) for s in sources}})
        for k, v in (attrs or {}).items():
            self.f.attrs[k] = v


class H5Dataset:
    """One or more splits of a fuel-layout HDF5 file, like fuel's ``H5PYDataset``.

    ``sources`` picks and orders the arrays ``get_data`` returns (default
    ``('features',)``, so ``imb, = ...`` unpacks as in the original). ``nc``/``npx``
    check the images: ``nc`` channels last, height and width at least ``npx``.
    """

    def __init__(self, path, which_sets=('train',), sources=('features',), load_in_memory=None,
                 nc=3, npx=None):
        import h5py

        self.path = Path(path)
        if isinstance(which_sets, str):
            which_sets = (which_sets,)
        self.which_sets = tuple(which_sets)
        self.sources = tuple(sources)
        self._handle = None
        if not self.path.is_file():
            raise DataError(f'{self.path}: no such HDF5 file')
        try:
            f = h5py.File(self.path, 'r')
        except Exception as err:
            raise DataError(f'{self.path}: not a readable HDF5 file ({type(err).__name__}: {err})') from None
        with f:
            self._opened = _signature(f)
            splits = read_split_dict(f, self.path)
            for split in self.which_sets:
                if split not in splits:
                    raise DataError(f"{self.path}: no '{split}' split (file has {sorted(splits)})")
            provides = set.intersection(*[set(splits[s]) for s in self.which_sets])
            self.provides_sources = tuple(sorted(provides))
            for source in self.sources:
                if source not in f or not hasattr(f[source], 'shape'):
                    raise DataError(f"{self.path}: no '{source}' dataset (expected fuel layout "
                                    f"with 'features' uint8 (N, H, W, 3))")
                if source not in provides:
                    raise DataError(f"{self.path}: source '{source}' is not available in split(s) "
                                    f"{list(self.which_sets)}")
            self.shapes = {s: f[s].shape for s in self.sources}
            self.dtypes = {s: f[s].dtype for s in self.sources}
            self.axis_labels = {s: tuple(d.label for d in f[s].dims) for s in self.sources}
            self.attrs = {s: dict(f[s].attrs) for s in self.sources}
            if 'features' in self.sources:
                self._check_features(f['features'], nc, npx)
            self._rows = {}
            for source in self.sources:
                self._rows[source] = self._select(splits, source, len(f[source]))
            counts = {s: _count(r) for s, r in self._rows.items()}
            if len(set(counts.values())) > 1:
                raise DataError(f'{self.path}: sources have different lengths {counts}')
            self.num_examples = next(iter(counts.values())) if counts else 0
            if load_in_memory is None:
                nbytes = sum(counts[s] * int(np.prod(self.shapes[s][1:])) * self.dtypes[s].itemsize
                             for s in self.sources)
                load_in_memory = nbytes <= IN_MEMORY_MAX_BYTES
            self.load_in_memory = bool(load_in_memory)
            self.data_sources = None
            if self.load_in_memory:
                self.data_sources = tuple(self._read(f, s, self._rows[s]) for s in self.sources)
            elif self.num_examples:
                for s in self.sources:  # a truncated file fails here, not mid-epoch
                    self._read(f, s, _take(self._rows[s], np.array([0, self.num_examples - 1])))

    def _check_features(self, dset, nc, npx):
        shape = dset.shape
        if len(shape) != 4 or dset.dtype != np.uint8:
            raise DataError(f"{self.path}: 'features' is {dset.dtype} {shape}, expected uint8 "
                            "(N, H, W, C) images")
        if nc is not None and shape[3] != nc:
            raise DataError(f"{self.path}: 'features' has {shape[3]} channels (shape {shape}), "
                            f"expected {nc} (N, H, W, {nc})")
        if npx is not None and min(shape[1:3]) < npx:
            raise DataError(f"{self.path}: images are {shape[1]}x{shape[2]} px, smaller than "
                            f"npx={npx}")

    def _select(self, splits, source, length):
        parts = [splits[s][source] for s in self.which_sets]
        for p in parts:
            hi = (p.stop if isinstance(p, slice) else (p.max() + 1 if len(p) else 0))
            lo = (p.start if isinstance(p, slice) else (p.min() if len(p) else 0))
            if lo < 0 or hi > length or (isinstance(p, slice) and p.stop < p.start):
                raise DataError(f"{self.path}: split rows {lo}..{hi} of '{source}' are outside "
                                f"its {length} rows (file truncated or split attribute wrong)")
        if len(parts) == 1 and isinstance(parts[0], slice):
            rows = parts[0]
        else:
            rows = np.unique(np.concatenate([np.arange(p.start, p.stop) if isinstance(p, slice)
                                             else p for p in parts]))
        return rows

    def _check_unchanged(self, f):
        """DataError unless the open file ``f`` still has the size and modification time it had
        when this dataset was made (a training file truncated or rewritten mid-run)."""
        now = _signature(f)
        if now != self._opened and None not in (now, self._opened):
            how = 'rewritten' if now[0] == self._opened[0] else f'{now[0]} bytes now'
            raise DataError(f'{self.path}: changed while being read ({self._opened[0]} bytes '
                            f'when opened, {how}): truncated or overwritten? A run needs its '
                            f'data file unchanged')

    def _read(self, f, source, rows):
        try:
            self._check_unchanged(f)
            if isinstance(rows, slice):
                return f[source][rows]
            dset = f[source]
            rows = np.asarray(rows, dtype=np.int64)
            # PORT: fuel's sort_indices=True read sorted rows with one h5py fancy index and
            # reordered; HDF5 point selections take ~3 ms a row, so read each run of
            # consecutive rows as a slice instead (~20 us a row), then reorder.
            uniq, inverse = np.unique(rows, return_inverse=True)
            data = np.empty((len(uniq),) + dset.shape[1:], dset.dtype)
            breaks = np.flatnonzero(np.diff(uniq) != 1) + 1
            for run in np.split(np.arange(len(uniq)), breaks):
                if len(run):
                    data[run[0]:run[-1] + 1] = dset[int(uniq[run[0]]):int(uniq[run[-1]]) + 1]
            return data[inverse]
        except DataError:
            raise
        except Exception as err:
            raise DataError(f"{self.path}: reading '{source}' failed, file truncated or corrupt "
                            f"({type(err).__name__}: {err})") from None

    def open(self):
        """A handle for ``get_data``: an open h5py.File, or None when the data is in memory."""
        if self.load_in_memory:
            return None
        import h5py
        try:
            return h5py.File(self.path, 'r')
        except Exception as err:
            raise DataError(f'{self.path}: not a readable HDF5 file ({type(err).__name__}: {err})') from None

    def close(self, handle):
        """Close a handle from ``open``."""
        if handle is not None:
            handle.close()

    def get_data(self, state=None, request=None):
        """Tuple of arrays (one per source) for ``request``: a slice, list of ints or int,
        counted within the selected split(s). Lists may be unsorted; order is kept."""
        if request is None:
            raise ValueError('get_data needs a request (slice, list of ints or int)')
        if isinstance(request, (int, np.integer)):
            return tuple(d[0] for d in self.get_data(state, [int(request)]))
        if isinstance(request, slice) and request.step not in (None, 1):
            raise ValueError('get_data: slice step must be 1 or None')
        out = []
        for i, source in enumerate(self.sources):
            if self.load_in_memory:
                out.append(self.data_sources[i][request])
                continue
            rows = _take(self._rows[source], request)
            if state is None:
                if self._handle is None:
                    self._handle = self.open()
                state = self._handle
            out.append(self._read(state, source, rows))
        return tuple(out)

    def attribute_names(self):
        """Names of the columns of the 'attributes' source (synthetic faces), or []."""
        names = self.attrs.get('attributes', {}).get('names', [])
        return [_decode(n) for n in names]


def _signature(f):
    """(size, modification time) of an open h5py.File, or None (a driver without a file)."""
    try:
        st = os.fstat(f.id.get_vfd_handle())
    except Exception:
        return None
    return st.st_size, st.st_mtime_ns


def _count(rows):
    return rows.stop - rows.start if isinstance(rows, slice) else len(rows)


def _take(rows, request):
    """Absolute rows for ``request`` (slice, ints) taken within ``rows`` (slice or int array)."""
    n = _count(rows)
    if isinstance(request, slice):
        start, stop, step = request.indices(n)
        if step != 1:
            raise ValueError('slice step must be 1 or None')
        stop = max(start, stop)
        if isinstance(rows, slice):
            return slice(rows.start + start, rows.start + stop)
        return rows[start:stop]
    idx = np.asarray(request, dtype=np.int64).ravel()
    if len(idx) and (idx.min() < -n or idx.max() >= n):
        raise IndexError(f'request indices out of range for {n} examples')
    idx = np.where(idx < 0, idx + n, idx)
    return rows.start + idx if isinstance(rows, slice) else rows[idx]


