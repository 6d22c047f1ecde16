"""faces data layer: fuel-layout HDF5 files, image folders, synthetic faces, one-line errors.

Files are built in tmp_path in the real formats: HDF5 files whose ``split`` attribute is
written here by hand the way fuel's H5PYDataset.create_split_array writes it (not with the
module under test), and folders of png/jpg/webp files with a corrupt one and a subfolder.
"""
import math
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from PIL import Image

from lib import data_folder
from lib.data_hdf5 import H5Dataset, H5Writer, create_split_array, read_split_dict
from lib.data_image import DataError, center_crop, load_image
from faces import synthetic
from faces.load import faces

REPO = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------------------------
# helpers: files in fuel's layout, written independently of lib.data_hdf5
# ----------------------------------------------------------------------------------------

def fuel_split_rows(rows, comment_len=1):
    """fuel's split array from (split, source, start, stop, indices_ref, available, comment) rows."""
    dtype = np.dtype([
        ('split', 'S', max(len(r[0]) for r in rows)),
        ('source', 'S', max(len(r[1]) for r in rows)),
        ('start', np.int64), ('stop', np.int64),
        ('indices', h5py.special_dtype(ref=h5py.Reference)),
        ('available', np.bool_),
        ('comment', 'S', comment_len)])
    arr = np.empty(len(rows), dtype=dtype)
    for i, r in enumerate(rows):
        arr[i] = (r[0].encode(), r[1].encode(), r[2], r[3], r[4], r[5], r[6].encode())
    return arr


def coded_images(n, h=10, w=12, c=3):
    """uint8 (n, h, w, c) images whose row index can be read back from pixels [0, 0, :2]."""
    x = np.random.default_rng(n).integers(0, 256, (n, h, w, c), dtype=np.uint8)
    x[:, 0, 0, 0] = np.arange(n) // 256
    x[:, 0, 0, 1] = np.arange(n) % 256
    return x


def row_ids(x):
    return x[:, 0, 0, 0].astype(int) * 256 + x[:, 0, 0, 1]


def write_fuel_file(path, n=50, ntrain=40, h=10, w=12, c=3, extra=True):
    x = coded_images(n, h, w, c)
    with h5py.File(path, 'w') as f:
        f['features'] = x
        for dim, label in zip(f['features'].dims, ('batch', 'height', 'width', 'channel')):
            dim.label = label
        rows = [('train', 'features', 0, ntrain, h5py.Reference(), True, '.'),
                ('test', 'features', ntrain, n, h5py.Reference(), True, '.')]
        if extra:
            f['targets'] = np.arange(n, dtype=np.int64)[:, None]
            rows += [('train', 'targets', 0, ntrain, h5py.Reference(), True, '.'),
                     ('test', 'targets', 0, 0, h5py.Reference(), False, '.')]
        f.attrs['split'] = fuel_split_rows(rows)
    return x


def save_image(path, arr):
    path.parent.mkdir(parents=True, exist_ok=True)
    kw = {'quality': 95} if path.suffix in ('.jpg', '.webp') else {}
    Image.fromarray(arr).save(path, **kw)


def make_folder(root, n_good=7):
    """Good png/jpg/webp images (some nested), one corrupt file, one too small, one non-image."""
    r = np.random.default_rng(1)
    good = []
    for i in range(n_good):
        ext = ('.png', '.jpg', '.webp')[i % 3]
        sub = 'nested/deeper/' if i % 2 else ''
        p = root / f'{sub}img{i}{ext}'
        save_image(p, r.integers(0, 256, (40 + 3 * i, 33 + 2 * i, 3), dtype=np.uint8))
        good.append(p)
    (root / 'broken.jpg').write_bytes(b'\xff\xd8\xff\xe0 this is not really a jpeg')
    save_image(root / 'nested' / 'tiny.png', np.zeros((8, 30, 3), np.uint8))
    (root / 'notes.txt').write_text('not an image')
    return good


def one_line(err):
    msg = str(err.value)
    assert '\n' not in msg and msg.strip() == msg and msg
    return msg


# ----------------------------------------------------------------------------------------
# fuel's split attribute
# ----------------------------------------------------------------------------------------

def test_create_split_array_matches_fuel_layout():
    arr = create_split_array({'train': {'features': (0, 8), 'attributes': (0, 8)},
                              'test': {'features': (8, 10, None, 'held out')}})
    assert arr.dtype.names == ('split', 'source', 'start', 'stop', 'indices', 'available', 'comment')
    assert arr.dtype['start'] == np.int64 and arr.dtype['available'] == np.bool_
    assert h5py.check_dtype(ref=arr.dtype['indices']) is h5py.Reference
    got = [(r['split'], r['source'], r['start'], r['stop'], bool(r['available']), r['comment'])
           for r in arr]
    # one row per split x sorted source; unavailable pairs kept with available=False, comment '.'
    assert got == [(b'train', b'attributes', 0, 8, True, b'.'), (b'train', b'features', 0, 8, True, b'.'),
                   (b'test', b'attributes', 0, 0, False, b'.'), (b'test', b'features', 8, 10, True, b'held out')]
    assert not any(bool(r['indices']) for r in arr)


def test_split_attribute_roundtrip_and_fuel_file(tmp_path):
    path = tmp_path / 'fuel.hdf5'
    x = write_fuel_file(path)
    with h5py.File(path, 'r') as f:
        splits = read_split_dict(f)
    assert splits == {'train': {'features': slice(0, 40), 'targets': slice(0, 40)},
                      'test': {'features': slice(40, 50)}}
    with h5py.File(tmp_path / 'ours.hdf5', 'w') as f:
        f['features'] = x
        f.attrs['split'] = create_split_array({'train': {'features': (0, 40)},
                                               'test': {'features': (40, 50)}})
    with h5py.File(tmp_path / 'ours.hdf5', 'r') as f:
        assert read_split_dict(f) == {'train': {'features': slice(0, 40)},
                                      'test': {'features': slice(40, 50)}}


def test_split_with_indices_reference_and_legacy_attrs(tmp_path):
    x = coded_images(30)
    path = tmp_path / 'indexed.hdf5'
    with h5py.File(path, 'w') as f:
        f['features'] = x
        f['train_idx'] = np.array([25, 3, 7, 11, 0], dtype=np.int64)
        f.attrs['split'] = fuel_split_rows(
            [('train', 'features', 0, 0, f['train_idx'].ref, True, '.'),
             ('test', 'features', 28, 30, h5py.Reference(), True, '.')])
    ds = H5Dataset(path, ('train',), load_in_memory=False)
    assert ds.num_examples == 5
    imgs, = ds.get_data(ds.open(), slice(0, 5))
    assert row_ids(imgs).tolist() == [0, 3, 7, 11, 25]   # fuel sorts subset indices
    both = H5Dataset(path, ('train', 'test'))
    assert row_ids(both.get_data(None, slice(None))[0]).tolist() == [0, 3, 7, 11, 25, 28, 29]

    legacy = tmp_path / 'legacy.hdf5'   # fuel 0.0.x: root attributes train/test = [start, stop]
    with h5py.File(legacy, 'w') as f:
        f['features'] = x
        f.attrs['train'] = np.array([0, 20])
        f.attrs['test'] = np.array([20, 30])
    assert H5Dataset(legacy, ('test',)).num_examples == 10


# ----------------------------------------------------------------------------------------
# H5Dataset, schemes, streams, faces()
# ----------------------------------------------------------------------------------------

@pytest.mark.parametrize('in_memory', [False, True], ids=['streamed', 'in_memory'])
def test_get_data_requests(tmp_path, in_memory):
    path = tmp_path / 'fuel.hdf5'
    x = write_fuel_file(path)
    tr = H5Dataset(path, ('train',), load_in_memory=in_memory)
    te = H5Dataset(path, ('test',), sources=('features',), load_in_memory=in_memory)
    assert (tr.num_examples, te.num_examples) == (40, 10) and tr.load_in_memory == in_memory
    assert tr.provides_sources == ('features', 'targets') and te.provides_sources == ('features',)
    assert tr.axis_labels['features'] == ('batch', 'height', 'width', 'channel')
    h = tr.open()
    a, = tr.get_data(h, slice(5, 9))
    assert a.dtype == np.uint8 and a.shape == (4, 10, 12, 3)
    np.testing.assert_array_equal(a, x[5:9])
    req = [17, 3, 3, 39, 0, 18]          # unsorted, duplicated: order is kept
    np.testing.assert_array_equal(tr.get_data(h, req)[0], x[req])
    np.testing.assert_array_equal(te.get_data(te.open(), [9, 0])[0], x[[49, 40]])
    np.testing.assert_array_equal(tr.get_data(h, 7)[0], x[7])
    tr.close(h)
    both = H5Dataset(path, ('train',), sources=('targets', 'features'), load_in_memory=in_memory)
    t, f = both.get_data(None, [2, 30])
    assert t[:, 0].tolist() == [2, 30] and row_ids(f).tolist() == [2, 30]


def test_faces_returns_the_two_splits(tmp_path):
    path = tmp_path / 'fuel.hdf5'
    x = write_fuel_file(path, n=50, ntrain=40)
    tr_data, te_data = faces(path=path, load_in_memory=False)
    assert (tr_data.num_examples, te_data.num_examples) == (40, 10)
    h = tr_data.open()
    vaX, = tr_data.get_data(h, slice(0, 12))               # val: first nval of *train*, as original
    np.testing.assert_array_equal(vaX, x[:12])
    tr_data.close(h)
    np.testing.assert_array_equal(te_data.get_data(None, slice(None))[0], x[40:50])


def test_writer_leaves_nothing_that_loads_when_interrupted(tmp_path):
    out = tmp_path / 'w.hdf5'
    with pytest.raises(KeyboardInterrupt):
        with H5Writer(out, 4, 8) as writer:
            writer.write(np.zeros((2, 8, 8, 3), np.uint8))
            raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []
    with H5Writer(out, 4, 8) as writer:
        writer.write(np.full((3, 8, 8, 3), 5, np.uint8))
        writer.finish(ntest=1)
        assert not out.exists()                           # renamed only when the block ends
    assert [p.name for p in tmp_path.iterdir()] == ['w.hdf5']
    with h5py.File(out, 'r') as f:
        assert f['features'].shape == (3, 8, 8, 3)
        assert read_split_dict(f) == {'train': {'features': slice(0, 2)},
                                      'test': {'features': slice(2, 3)}}


# ----------------------------------------------------------------------------------------
# image files and folders
# ----------------------------------------------------------------------------------------

def py2_round_offset(margin):
    """int(round(margin / 2.)) as Python 2 computed it (halves away from zero)."""
    return int(math.floor(margin / 2.0 + 0.5))


@pytest.mark.parametrize('h,w', [(64, 81), (77, 64), (64, 64), (65, 66)], ids=str)
def test_center_crop_matches_numpy_reference(h, w):
    x = np.random.default_rng(h * w).integers(0, 256, (h, w, 3), dtype=np.uint8)
    j, i = py2_round_offset(h - 64), py2_round_offset(w - 64)
    np.testing.assert_array_equal(center_crop(x, 64), x[j:j + 64, i:i + 64])
    from lib import data_utils
    assert data_utils.center_crop is center_crop          # one crop: the original's name for it


def test_load_image_resize_and_crop(tmp_path):
    r = np.random.default_rng(0)
    exact = r.integers(0, 256, (32, 45, 3), dtype=np.uint8)   # short side == size: crop only
    save_image(tmp_path / 'exact.png', exact)
    np.testing.assert_array_equal(load_image(tmp_path / 'exact.png', 32), exact[:, 7:39])

    big = r.integers(0, 256, (90, 60, 3), dtype=np.uint8)     # short side 60 -> 32, long 90 -> 48
    save_image(tmp_path / 'big.png', big)
    got = load_image(tmp_path / 'big.png', 32)
    ref = np.asarray(Image.fromarray(big).resize((32, 48), Image.Resampling.LANCZOS))[8:40]
    assert got.shape == (32, 32, 3) and got.dtype == np.uint8
    np.testing.assert_array_equal(got, ref)

    gray = tmp_path / 'gray.png'
    Image.fromarray(r.integers(0, 256, (40, 40), dtype=np.uint8)).save(gray)
    g = load_image(gray, 32)
    assert g.shape == (32, 32, 3) and (g[..., 0] == g[..., 2]).all()


def test_convert_folder(tmp_path):
    src = tmp_path / 'imgs'
    good = make_folder(src)
    out, stats = data_folder.convert_folder(src, tmp_path / 'out.hdf5', size=32, test_fraction=0.3,
                                        progress=False, report=False)
    assert (stats['found'], stats['written'], stats['unreadable'], stats['small']) == (9, 7, 1, 1)
    assert 'broken.jpg' in ' '.join(stats['skipped']) and 'tiny.png' in ' '.join(stats['skipped'])
    tr = H5Dataset(out, ('train',))
    te = H5Dataset(out, ('test',))
    assert (tr.num_examples, te.num_examples) == (5, 2)
    every = np.concatenate([tr.get_data(None, slice(None))[0], te.get_data(None, slice(None))[0]])
    assert every.shape == (7, 32, 32, 3) and every.dtype == np.uint8
    expected = {load_image(p, 32).tobytes() for p in good}
    assert {im.tobytes() for im in every} == expected
    with h5py.File(out, 'r') as f:
        assert f.attrs['n_skipped'] == 2


def test_convert_folder_workers_agree(tmp_path):
    src = tmp_path / 'many'
    r = np.random.default_rng(2)
    for i in range(70):
        save_image(src / f'{i % 4}' / f'{i}.png', r.integers(0, 256, (12, 10 + i % 5, 3), dtype=np.uint8))
    a, _ = data_folder.convert_folder(src, tmp_path / 'a.hdf5', size=8, workers=1, progress=False, report=False)
    b, _ = data_folder.convert_folder(src, tmp_path / 'b.hdf5', size=8, workers=2, progress=False, report=False)
    with h5py.File(a, 'r') as fa, h5py.File(b, 'r') as fb:
        np.testing.assert_array_equal(fa['features'][:], fb['features'][:])


def test_faces_from_folder_is_cached(tmp_path, monkeypatch):
    monkeypatch.setenv('DCGAN_DATA_DIR', str(tmp_path / 'data'))
    src = tmp_path / 'imgs'
    make_folder(src)
    tr, te, *_ = faces(path=src, size=32, progress=False)
    assert tr.path.parent == tmp_path / 'data' / 'cache' and tr.num_examples + te.num_examples == 7
    mtime = tr.path.stat().st_mtime_ns
    tr2, *_ = faces(path=src, size=32, progress=False)
    assert tr2.path == tr.path and tr2.path.stat().st_mtime_ns == mtime     # reused
    save_image(src / 'new.png', np.full((40, 40, 3), 7, np.uint8))
    tr3, te3, *_ = faces(path=src, size=32, progress=False)
    assert tr3.num_examples + te3.num_examples == 8                         # rebuilt


# ----------------------------------------------------------------------------------------
# synthetic faces
# ----------------------------------------------------------------------------------------

def test_synthetic_deterministic_and_chunk_independent(tmp_path, monkeypatch):
    a, la = synthetic.render_range(0, 0, 6)
    b, lb = synthetic.render_range(0, 0, 6)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(la, lb)
    c, lc = synthetic.render_range(0, 4, 6)
    np.testing.assert_array_equal(a[4:], c)
    np.testing.assert_array_equal(la[4:], lc)
    assert not np.array_equal(a, synthetic.render_range(1, 0, 6)[0])
    assert a.shape == (6, 64, 64, 3) and a.dtype == np.uint8 and la.dtype == np.float32

    monkeypatch.setattr(synthetic, 'CHUNK', 5)
    p1 = synthetic.generate(12, seed=4, out=tmp_path / 'w1.hdf5', workers=1, progress=False)
    p2 = synthetic.generate(12, seed=4, out=tmp_path / 'w2.hdf5', workers=2, progress=False)
    with h5py.File(p1, 'r') as f1, h5py.File(p2, 'r') as f2:
        np.testing.assert_array_equal(f1['features'][:], f2['features'][:])
        np.testing.assert_array_equal(f1['attributes'][:], f2['attributes'][:])
    ref, ref_attrs = synthetic.render_range(4, 0, 12)
    tr = H5Dataset(p1, ('train',), sources=('features', 'attributes'))
    te = H5Dataset(p1, ('test',), sources=('features', 'attributes'))
    assert tr.attribute_names() == list(synthetic.ATTRIBUTE_NAMES)
    assert (tr.num_examples, te.num_examples) == (11, 1)
    f, at = tr.get_data(None, slice(None))
    np.testing.assert_array_equal(f, ref[:11])
    np.testing.assert_array_equal(at, ref_attrs[:11])


def test_synthetic_default_cache(tmp_path, monkeypatch):
    monkeypatch.setenv('DCGAN_DATA_DIR', str(tmp_path))
    tr, te = faces(n_synthetic=20, seed=1, progress=False)
    assert tr.path == tmp_path / 'synthetic_faces_20_1_64px.hdf5'
    assert (tr.num_examples, te.num_examples) == (18, 2)
    imb, = tr.get_data(None, [3, 0, 9, 4, 1, 2, 5, 8])
    assert imb.shape == (8, 64, 64, 3) and imb.dtype == np.uint8
    np.testing.assert_array_equal(imb, synthetic.render_range(1, 0, 10)[0][[3, 0, 9, 4, 1, 2, 5, 8]])
    mtime = tr.path.stat().st_mtime_ns
    assert faces(n_synthetic=20, seed=1, progress=False)[0].path.stat().st_mtime_ns == mtime  # reused
    with h5py.File(tr.path, 'a') as f:
        f.attrs['version'] = synthetic.VERSION - 1        # drawn by an older synthetic.py
    tr, *_ = faces(n_synthetic=20, seed=1, progress=False)
    with h5py.File(tr.path, 'r') as f:
        assert f.attrs['version'] == synthetic.VERSION    # redrawn


def test_synthetic_labels_balanced():
    attrs = np.stack([synthetic.attributes_of(synthetic.sample_params(0, i)) for i in range(400)])
    names = list(synthetic.ATTRIBUTE_NAMES)
    for name in ('smiling', 'glasses', 'long_hair'):
        col = attrs[:, names.index(name)]
        assert set(np.unique(col)) == {0.0, 1.0} and 0.4 < col.mean() < 0.6
    yaw = attrs[:, names.index('yaw')]
    assert yaw.min() < -0.95 and yaw.max() > 0.95


def _base(**over):
    p = synthetic.sample_params(0, 7)
    p.update(dict(smiling=0.0, glasses=0.0, long_hair=0.0, yaw=0.0, dx=0.0, dy=0.0, scale=0.0))
    p.update(over)
    return p


def _skin(p):
    return synthetic.SKIN_DARK + (synthetic.SKIN_LIGHT - synthetic.SKIN_DARK) * p['skin']


def test_yaw_moves_the_nose():
    """The centroid of non-skin pixels in the nose band (between eyes and mouth) moves right with yaw."""
    xs = []
    for yaw in (-0.8, -0.4, 0.0, 0.4, 0.8):
        p = _base(yaw=yaw)
        img = synthetic.render(p).astype(float)
        band = img[31:36, 20:44]                         # rows under the eyes, inside the head
        w = np.abs(band - _skin(p)).sum(-1)
        xs.append((w.sum(0) * np.arange(20, 44)).sum() / w.sum())
    assert np.all(np.diff(xs) > 0.3), xs
    assert xs[-1] - xs[0] > 3, xs


def test_attributes_change_their_region():
    base = synthetic.render(_base()).astype(int)

    def diff_rows(**over):
        d = np.abs(synthetic.render(_base(**over)).astype(int) - base).sum(-1)
        return d, np.flatnonzero(d.sum(1) > 50)

    d, rows = diff_rows(glasses=1.0)                   # frames around the eyes only
    assert d.sum() > 5000 and rows.min() >= 20 and rows.max() <= 36, rows
    d, rows = diff_rows(smiling=1.0)                   # the mouth only
    assert d.sum() > 2000 and rows.min() >= 35 and rows.max() <= 46, rows
    smile = synthetic.render(_base(smiling=1.0))
    assert (smile[38:46, 24:40].min(-1) > 230).sum() >= 3    # teeth are white
    d, rows = diff_rows(long_hair=1.0)                 # hair down past the chin
    assert d.sum() > 20000 and rows.max() >= 48, rows


def test_grid_cli(tmp_path):
    grid = tmp_path / 'grid.png'
    synthetic.main(['--n=30', '--grid_only', f'--grid={grid}'])
    im = Image.open(grid)
    assert im.size == (14 * 66 + 2, 14 * 66 + 2) and im.mode == 'RGB'


# ----------------------------------------------------------------------------------------
# bad inputs: one line, naming the file or flag
# ----------------------------------------------------------------------------------------

def _bad_h5(tmp_path, name, **datasets):
    path = tmp_path / name
    with h5py.File(path, 'w') as f:
        split = datasets.pop('split', True)
        for k, v in datasets.items():
            f[k] = v
        if split:
            f.attrs['split'] = create_split_array({'train': {k: (0, 4) for k in datasets},
                                                   'test': {k: (4, 5) for k in datasets}})
    return path


def test_bad_hdf5_files(tmp_path):
    good = tmp_path / 'good.hdf5'
    write_fuel_file(good, n=200, ntrain=150, h=32, w=32)
    cases = {}
    cases['missing'] = (tmp_path / 'nope.hdf5', 'no such')
    junk = tmp_path / 'junk.hdf5'
    junk.write_bytes(b'\x00garbage' * 100)
    cases['corrupt'] = (junk, 'not a readable HDF5')
    trunc = tmp_path / 'trunc.hdf5'
    trunc.write_bytes(good.read_bytes()[:good.stat().st_size // 2])
    cases['truncated'] = (trunc, 'trunc')
    cases['no_features'] = (_bad_h5(tmp_path, 'nofeat.hdf5', images=np.zeros((5, 8, 8, 3), np.uint8)),
                            "'features'")
    cases['no_split'] = (_bad_h5(tmp_path, 'nosplit.hdf5', features=np.zeros((5, 8, 8, 3), np.uint8),
                                 split=False), "'split'")
    cases['gray'] = (_bad_h5(tmp_path, 'gray.hdf5', features=np.zeros((5, 8, 8, 1), np.uint8)),
                     'channels')
    cases['not_images'] = (_bad_h5(tmp_path, 'flat.hdf5', features=np.zeros((5, 64), np.float32)),
                           'expected uint8')
    cases['not_hdf5_suffix'] = (tmp_path / 'imgs.txt', 'no such')
    (tmp_path / 'readme.md').write_text('x')
    cases['wrong_kind'] = (tmp_path / 'readme.md', 'expected an .hdf5 file or a folder')
    for name, (path, needle) in cases.items():
        with pytest.raises(DataError) as err:
            faces(path=path)
        msg = one_line(err)
        assert path.name in msg and needle in msg, (name, msg)

    with pytest.raises(DataError) as err:                 # images smaller than npx
        faces(path=good, npx=64)
    assert 'npx=64' in one_line(err) and 'good.hdf5' in str(err.value)


def test_bad_folders_images_and_flags(tmp_path):
    empty = tmp_path / 'empty'
    (empty / 'sub').mkdir(parents=True)
    (empty / 'sub' / 'notes.txt').write_text('x')
    with pytest.raises(DataError) as err:
        faces(path=empty)
    assert 'empty' in one_line(err) and 'no images' in str(err.value)

    bad = tmp_path / 'broken.png'
    bad.write_bytes(b'\x89PNG\r\n\x1a\n truncated')
    with pytest.raises(DataError) as err:               # a single explicit corrupt image: an error
        load_image(bad, 32)
    assert 'broken.png' in one_line(err)
    small = tmp_path / 'small.png'
    save_image(small, np.zeros((20, 50, 3), np.uint8))
    with pytest.raises(DataError) as err:
        load_image(small, 32)
    assert 'small.png' in one_line(err) and '32' in str(err.value)

    only_bad = tmp_path / 'only_bad'
    only_bad.mkdir()
    (only_bad / 'x.jpg').write_bytes(b'nope')
    with pytest.raises(DataError) as err:
        data_folder.convert_folder(only_bad, tmp_path / 'o.hdf5', progress=False)
    assert 'only_bad' in one_line(err) and '1 unreadable' in str(err.value)
    assert not (tmp_path / 'o.hdf5').exists() and not list(tmp_path.glob('o.hdf5*'))

    good = tmp_path / 'good.hdf5'
    write_fuel_file(good)
    with pytest.raises(DataError) as err:
        H5Dataset(good, ('valid',))
    assert "'valid'" in one_line(err) and 'good.hdf5' in str(err.value)


def test_cli_error_exit_code(tmp_path):
    empty = tmp_path / 'nothing_here'
    empty.mkdir()
    res = subprocess.run([sys.executable, str(REPO / 'faces' / 'convert.py'), f'--src={empty}',
                          f'--out={tmp_path / "x.hdf5"}'], capture_output=True, text=True, cwd=tmp_path)
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith('error: ') and 'nothing_here' in lines[0]


def test_convert_command_keeps_an_existing_file_unless_overwrite(tmp_path, capsys):
    """faces/convert.py refuses an --out that exists (one line, the file untouched), and
    replaces it with --overwrite."""
    import faces.convert as command
    src = tmp_path / 'imgs'
    make_folder(src)
    out = tmp_path / 'out.hdf5'
    out.write_bytes(b'an earlier conversion')
    argv = [f'--src={src}', f'--out={out}', '--size=32', '--workers=1']
    saved = {n: getattr(command, n) for n in command.FLAGS}
    try:
        with pytest.raises(SystemExit) as e:
            command.main(argv)
        assert e.value.code == 2 and out.read_bytes() == b'an earlier conversion'
        err = capsys.readouterr().err.strip().splitlines()
        assert err[-1] == f'error: --out={out}: exists; --overwrite to replace it'
        command.main(argv + ['--overwrite'])
        assert H5Dataset(out, ('train',)).num_examples + H5Dataset(out, ('test',)).num_examples == 7
    finally:
        for n, v in saved.items():
            setattr(command, n, v)
