"""lsun/: the LMDB reader, the training dry run, the de-duplication and the windows' forgetting,
on small databases in LSUN's own format (keys: image ids; values: WebP, JPEG or PNG bytes)
made here in tmp_path."""
import json
import shutil

import numpy as np
import pytest

from lib.data_image import DataError
from lsun import load
from lsun.scenes import rooms


def _key(i):
    return b'%040x' % (i * 2654435761 % (1 << 64))   # LSUN's ids: 40 hex digits


@pytest.fixture(scope='module')
def rooms12():
    return rooms(12, seed=5, height=72, width=96)


@pytest.fixture
def db(tmp_path, rooms12):
    """12 rooms (WebP, JPEG and PNG values) and one entry that is not an image."""
    X, _ = rooms12
    fmts = ['webp', 'jpeg', 'png']
    items = [(_key(i), load.encode(x, fmts[i % 3], quality=90)) for i, x in enumerate(X)]
    items.append((b'ffff_not_an_image', b'\x00garbage'))
    return load.write_lmdb(tmp_path / 'bedroom_train_lmdb', items)


def test_reads_every_format_resized_and_cropped(db, rooms12):
    d = load.LSUN(db, npx=32)
    d2 = load.LSUN(db, npx=32)           # a second reader shares the environment
    d2.close()
    assert len(d) == 13
    X = d.get(np.arange(13))
    assert X.shape == (12, 32, 32, 3) and X.dtype == np.uint8
    assert d.n_skipped == 1 and d.skipped == [b'ffff_not_an_image']
    # the PNG entry (lossless) equals lib.data_image's min-side resize + center crop of the room
    from PIL import Image
    from lib.data_image import center_crop, resize_min_side
    keys = list(d.keys)
    i = keys.index(_key(2))          # room 2 was stored as PNG
    ref = center_crop(np.asarray(resize_min_side(Image.fromarray(rooms12[0][2]), 32)), 32)
    np.testing.assert_array_equal(d.get([i])[0], ref)


def test_streams_in_order_and_honours_drop_list(db, tmp_path):
    full = load.LSUN(db, npx=16)
    drop = [full.keys[0], full.keys[5], b'not_in_the_database']
    full.close()
    load.write_keys(tmp_path / 'drop.txt', drop, header=['test'])
    assert load.read_keys(tmp_path / 'drop.txt') == drop
    d = load.LSUN(db, npx=16, drop=load.read_keys(tmp_path / 'drop.txt'))
    assert len(d) == 11 and d.n_dropped == 2
    assert set(d.keys) == set(full.keys) - set(drop)
    seen = [idx for idx, _ in d.batches(4)]
    np.testing.assert_array_equal(np.concatenate(seen), np.arange(11))
    d.close()


def test_key_file_round_trips_odd_keys(tmp_path):
    keys = [b'abc', b'with space', b'\xff\x00', b'#hash', b'hex:12']
    load.write_keys(tmp_path / 'k.txt', keys)
    assert load.read_keys(tmp_path / 'k.txt') == keys


def _error(fn, *args, **kw):
    with pytest.raises(DataError) as e:
        fn(*args, **kw)
    msg = str(e.value)
    assert '\n' not in msg
    return msg


def _exit_error(fn, args, capsys):
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        fn(args)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith('error: ')
    return err[0]


def test_bad_databases_are_one_line_errors(db, tmp_path):
    assert 'no such file' in _error(load.LSUN, tmp_path / 'missing')
    (tmp_path / 'empty_folder').mkdir()
    assert 'no data.mdb' in _error(load.LSUN, tmp_path / 'empty_folder')
    (tmp_path / 'x.png').write_bytes(load.encode(np.zeros((8, 8, 3)), 'png'))
    assert 'not an LMDB' in _error(load.LSUN, tmp_path / 'x.png')
    assert 'no entries' in _error(load.LSUN, load.write_lmdb(tmp_path / 'empty', []))
    text = load.write_lmdb(tmp_path / 'text', [(b'k%d' % i, b'a caption') for i in range(40)])
    assert 'none of the first 32 entries is an image' in _error(load.LSUN, text)
    # corrupt: a clobbered header, a truncated file (which would otherwise fault on read)
    raw = (db / 'data.mdb').read_bytes()
    for name, data in (('header', b'\x01' * 4096 + raw[4096:]), ('truncated', raw[:len(raw) // 2])):
        bad = tmp_path / name
        shutil.copytree(db, bad)
        (bad / 'data.mdb').write_bytes(data)
        msg = _error(load.LSUN, bad)
        assert str(bad) in msg and ('not an LMDB' in msg or 'corrupt' in msg)
    assert 'no such key-list' in _error(load.read_keys, tmp_path / 'nope.txt')


# ------------------------------------------------------------------------------------------
# the one-time HDF5 conversion
# ------------------------------------------------------------------------------------------

def test_conversion_reads_as_the_database(db, tmp_path, capsys):
    from lsun import convert
    full = load.LSUN(db, npx=32)
    drop = [full.keys[1], full.keys[7]]
    load.write_keys(tmp_path / 'drop.txt', drop)
    out = tmp_path / 'bedroom_32.hdf5'
    counts = convert.main([f'--data={db}', f'--out={out}', '--npx=32', '--nbatch=5',
                           f'--drop={tmp_path / "drop.txt"}', '--progress=False'])
    assert counts == dict(written=10, skipped=1, dropped=2)
    c = load.LSUN(out, npx=32)
    kept = [k for k in full.keys if k not in drop and k != b'ffff_not_an_image']
    assert list(c.keys) == kept and c.n_dropped == 2 and c.n_skipped == 0   # skipped when made
    idx = [list(full.keys).index(k) for k in kept]
    np.testing.assert_array_equal(c.get(np.arange(10)), full.get(idx))   # the same pixels
    np.testing.assert_array_equal(c.get([2, 5, 9]), full.get([idx[2], idx[5], idx[9]]))
    assert load.resolve_drop('auto', out) == ([], tmp_path / 'drop.txt')  # applied when made
    later = load.LSUN(out, npx=32, drop=[kept[0], b'not there'])          # a later list applies
    assert list(later.keys) == kept[1:] and later.n_dropped == 3
    for d in (full, c, later):
        d.close()


def test_train_dry_run_reads_the_conversion(db, tmp_path, monkeypatch, capsys):
    import lsun.train_uncond_dcgan as tr
    from lsun import convert
    monkeypatch.setenv('DCGAN_DATA_DIR', str(tmp_path / 'data'))
    out = tmp_path / 'bedroom_64.hdf5'
    convert.main([f'--data={db}', f'--out={out}', '--progress=False', '--drop=none'])
    result = tr.main(['--dry_run', f'--data={out}', '--nz=8', '--ngf=4', '--ndf=4', '--nbatch=4',
                      '--nvis=4', f'--out_dir={tmp_path / "run"}', '--backend=c'])
    assert result['n_updates'] == 2
    assert 'LSUN ' + str(out) + ' (12 images)' in capsys.readouterr().out


def test_conversion_errors_are_one_line(db, tmp_path, capsys):
    from lsun import convert
    out = tmp_path / 'c.hdf5'
    convert.main([f'--data={db}', f'--out={out}', '--npx=16', '--progress=False'])
    assert '--data and --out: required' in _exit_error(convert.main, [f'--out={out}'], capsys)
    assert 'exists; --overwrite' in _exit_error(convert.main, [f'--data={db}', f'--out={out}'],
                                                capsys)
    assert 'no such file' in _exit_error(convert.main, [f'--data={tmp_path / "no"}',
                                                        f'--out={tmp_path / "d.hdf5"}'], capsys)
    assert not (tmp_path / 'd.hdf5').exists()
    # at the command line too: an LMDB of captions, a truncated LMDB
    text = load.write_lmdb(tmp_path / 'text', [(b'k%d' % i, b'a caption') for i in range(40)])
    assert 'none of the first 32 entries is an image' in _exit_error(
        convert.main, [f'--data={text}', f'--out={tmp_path / "t.hdf5"}'], capsys)
    shutil.copytree(db, tmp_path / 'cut')
    raw = (db / 'data.mdb').read_bytes()
    (tmp_path / 'cut' / 'data.mdb').write_bytes(raw[:len(raw) // 2])
    assert 'corrupt LMDB database (truncated' in _exit_error(
        convert.main, [f'--data={tmp_path / "cut"}', f'--out={tmp_path / "t.hdf5"}'], capsys)
    assert not (tmp_path / 't.hdf5').exists()
    msg = _error(load.LSUN, out, npx=64)
    assert 'stored at 16 px, 64 px wanted' in msg and '--npx=64' in msg
    from lib.data_hdf5 import H5Writer   # an HDF5 file in the layout, but not a conversion
    with H5Writer(tmp_path / 'faces.hdf5', 2, 16) as w:
        w.write(np.zeros((2, 16, 16, 3), np.uint8))
        w.finish(ntest=0)
    assert "no 'keys'" in _error(load.LSUN, tmp_path / 'faces.hdf5', npx=16)


# ------------------------------------------------------------------------------------------
# training
# ------------------------------------------------------------------------------------------

def test_train_dry_run_on_lmdb_then_resume_refusal(db, tmp_path, monkeypatch, capsys):
    import lsun.train_uncond_dcgan as tr
    monkeypatch.setenv('DCGAN_DATA_DIR', str(tmp_path / 'data'))
    out = tmp_path / 'run'
    args = ['--dry_run', f'--data={db}', '--nz=8', '--ngf=4', '--ndf=4', '--nbatch=4',
            '--nvis=4', f'--out_dir={out}', '--backend=c']
    result = tr.main(args)
    assert result['n_updates'] == 2
    printed = capsys.readouterr().out
    assert 'no de-duplication list' in printed
    record = json.loads((out / 'logs' / f'{tr.desc}.ndjson').read_text().splitlines()[0])
    assert record['n_updates'] == 2 and np.isfinite(record['g_cost'])
    assert (out / 'samples' / tr.desc / '0.png').exists()      # after one epoch (Fig. 2)
    assert (out / 'models' / tr.desc / '1_gen_params.npz').exists()
    with pytest.raises(SystemExit) as exc:                       # the run is there: refused
        tr.main(args)
    assert exc.value.code == 2


def test_train_errors_are_one_line(db, tmp_path, capsys):
    import lsun.train_uncond_dcgan as tr

    def error(args):
        capsys.readouterr()
        with pytest.raises(SystemExit) as exc:
            tr.main(args)
        assert exc.value.code == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith('error: ')
        return err[0]
    msg = error(['--dry_run', f'--out_dir={tmp_path / "a"}'])
    assert msg.startswith('error: --data') and 'download.py' in msg and '--data=' in msg
    assert 'no such file' in error(['--dry_run', f'--data={tmp_path / "nope"}',
                                    f'--out_dir={tmp_path / "b"}', '--backend=c'])
    assert '--drop=' in error(['--dry_run', f'--data={db}', f'--drop={tmp_path / "none.txt"}',
                               f'--out_dir={tmp_path / "c"}', '--backend=c'])


# ------------------------------------------------------------------------------------------
# de-duplication
# ------------------------------------------------------------------------------------------

def test_collisions_group_equal_codes_and_keep_the_first():
    from lsun import dedup
    bits = np.array([[1, 0], [2, 0], [1, 0], [3, 3], [2, 0], [1, 0], [1, 0]], np.uint8)
    ok = np.array([True, True, True, True, True, True, False])
    groups = dedup.collisions(bits, ok)
    assert sorted(map(list, groups)) == [[0, 2, 5], [1, 4]]
    np.testing.assert_array_equal(dedup.drop_indices(groups), [2, 4, 5])
    keys = [b'a', b'b', b'c', b'd', b'e', b'f', b'g']
    family = dict(zip(keys, [0, 1, 0, 2, 3, 0, 4]))
    s = dedup.pair_scores(groups, keys, family)
    assert (s['pairs_found'], s['true_pairs_found'], s['true_pairs']) == (4, 3, 3)
    assert s['precision'] == 0.75 and s['recall'] == 1.
    d = dedup.drop_scores(np.array([2, 4, 5]), keys, family)
    assert (d['right_drops'], d['should_drop']) == (2, 2)


def test_dedup_finds_exact_copies_and_the_loader_drops_them(tmp_path, rooms12, capsys):
    """Entries with the same image under other keys (as LSUN has) always collide: the drop list
    names every copy but one, and the loader leaves them out."""
    from lsun import dedup
    X, _ = rooms12
    items = [(_key(i), load.encode(x, 'webp')) for i, x in enumerate(X)]
    items += [(b'copy%02d' % j, items[i][1]) for j, i in enumerate((0, 0, 3))]
    db = load.write_lmdb(tmp_path / 'db', items)
    out = tmp_path / 'drop.txt'
    r = dedup.main([f'--data={db}', f'--out={out}', '--niter=2', '--nbatch=8', '--backend=c'])
    drop = load.read_keys(out)
    assert r['n_drop'] == len(drop) >= 3
    keep = load.LSUN(db, npx=32, drop=drop)
    families = {}
    for key, value in items:
        families.setdefault(value, []).append(key)
    for value, keys in families.items():                   # one of each image is kept
        assert sum(k in set(keep.keys) for k in keys) >= 1
    assert len(keep) == len(items) - len(drop)
    keep.close()


def test_measure_on_injected_near_duplicates(tmp_path):
    from lsun import dedup
    r = dedup.main(['--measure', '--n_distinct=40', '--n_copies=10', '--niter=3', '--nbatch=16',
                    f'--out_dir={tmp_path}', '--backend=c'])
    saved = json.loads((tmp_path / 'dedup_measure.json').read_text())
    assert saved['n_images'] == r['n_images'] == 50
    assert saved['true_pairs'] >= 10 and 0 <= saved['true_pairs_found'] <= saved['true_pairs']
    assert set(saved['seconds_per_million']) >= {'read', 'train', 'hash'}
    assert saved['stats']['n_undecodable'] == 0


def test_dedup_without_data_says_where(capsys):
    from lsun import dedup
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        dedup.main([])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith('error: --data') and 'LSUN' in err[0]


# ------------------------------------------------------------------------------------------
# forgetting windows: the box file, the labelling helper, the drop
# ------------------------------------------------------------------------------------------

@pytest.fixture(scope='module')
def fixture_model(tmp_path_factory):
    """A bedroom generator at ngf=4, nz=8 and discriminator at ndf=4 with the script's initial
    weights."""
    import lsun.train_uncond_dcgan as tr
    from lib import rng
    from lib.params import save_params
    saved = tr.ngf, tr.ndf, tr.nz
    tr.ngf, tr.ndf, tr.nz = 4, 4, 8
    try:
        rng.set_seed(1)
        gen_params, discrim_params = tr.init_params()
    finally:
        tr.ngf, tr.ndf, tr.nz = saved
    folder = tmp_path_factory.mktemp('models')
    save_params(gen_params, folder / '5_gen_params.npz')
    save_params(discrim_params, folder / '5_discrim_params.npz')
    return folder


def test_labelling_helper_writes_and_adds_boxes(fixture_model, tmp_path, capsys):
    from lsun import boxes
    out = tmp_path / 'windows.json'
    record = boxes.main([f'--model={fixture_model}', f'--out={out}', '--n=6', '--nbatch=6',
                         '--scale=2', '--backend=c'])
    assert record['n'] == 6 and record['size'] == 64 and record['model'].endswith('5_gen_params.npz')
    assert (tmp_path / 'windows' / '5.png').exists() and (tmp_path / 'windows' / 'sheet.png').exists()
    boxes.main([f'--boxes={out}', '--index=2', '--add=4,8,20,30;40,0,64,16'])
    assert boxes.read_boxes(out)['images'][2]['boxes'] == [[4, 8, 20, 30], [40, 0, 64, 16]]
    before = out.read_text()
    msg = _exit_error(boxes.main, [f'--boxes={out}', '--index=1', '--add=50,50,70,60'], capsys)
    assert 'outside the 64x64 image' in msg and out.read_text() == before
    assert 'exists' in _exit_error(boxes.main, [f'--model={fixture_model}', f'--out={out}'], capsys)


def test_box_file_outside_the_image_is_a_one_line_error(tmp_path):
    from lsun import boxes
    record = dict(format=boxes.FORMAT, model='m', seed=0, nbatch=4, n=4, size=64, label='window',
                  images=[dict(index=0, boxes=[[0, 0, 10, 10]]), dict(index=3, boxes=[[60, 10, 65, 20]])])
    path = tmp_path / 'b.json'
    path.write_text(json.dumps(record))
    msg = _error(boxes.read_boxes, path)
    assert str(path) in msg and 'image 3, box 0' in msg and 'outside the 64x64 image' in msg
    path.write_text('{"format": "lsun-boxes/1"')
    assert 'not a JSON box file' in _error(boxes.read_boxes, path)


def test_forget_windows_drops_the_positive_weight_maps(fixture_model, tmp_path, capsys):
    """Fixture boxes on a fixture model: the regression on h3, the positive-weight maps dropped
    through a mask on the script's own gen, the random control, the figure and the numbers."""
    from lsun import boxes, forget
    from lib.forget import location_samples, fit_logistic, positive_maps
    images = [dict(index=i, boxes=[[8 * (i % 4), 4, 8 * (i % 4) + 24, 28]]) for i in range(0, 8, 2)]
    record = dict(format=boxes.FORMAT, model=str(fixture_model / '5_gen_params.npz'), seed=3,
                  nbatch=8, n=8, size=64, label='window', images=images)
    path = tmp_path / 'windows.json'
    boxes.write_boxes(path, record)
    r = forget.main([f'--boxes={path}', '--n_random=2', '--n_show=4', f'--out_dir={tmp_path / "f"}',
                     '--backend=c'])
    assert r['regression']['n_maps'] == 8 and r['n_labelled'] == 4
    assert (tmp_path / 'f' / 'forget.png').exists()
    assert json.loads((tmp_path / 'f' / 'forget.json').read_text())['regression'] == r['regression']
    # the same regression by hand on the layer's maps
    from lib.backend import get_mode
    gen = boxes.Generator(fixture_model, get_mode('c'), 8)
    H = gen.run(gen.compile(gen.layers['h3']), boxes.samples_z(3, 8, gen.nz))
    idx, cells = boxes.box_masks(boxes.read_boxes(path), 16)
    X, y = location_samples(H[idx], cells, np.random.RandomState(0))
    coef, _, _ = fit_logistic(X, y)
    assert r['regression']['dropped'] == positive_maps(coef).tolist()
    assert r['change_after']['inside'] is not None
    record['images'][1]['boxes'].append([0, 0, 64, 65])
    path.write_text(json.dumps(record))
    assert 'outside the 64x64 image' in _exit_error(forget.main, [f'--boxes={path}'], capsys)


# ------------------------------------------------------------------------------------------
# the discriminator's features (Fig. 5)
# ------------------------------------------------------------------------------------------

def test_dfeatures_on_a_fixture_model(fixture_model, db, tmp_path, capsys):
    """The command's figure and numbers; its top images are those with the largest responses,
    and with population statistics a response does not depend on the rest of the batch."""
    from lsun import dfeatures
    from lib.backend import get_mode
    out = tmp_path / 'df'
    args = [f'--model={fixture_model}', f'--data={db}', '--n_pool=12', '--top_k=3',
            '--n_features=2', '--n_measure=4', '--nbatch=5', '--backend=c', f'--out_dir={out}']
    r = dfeatures.main(args)
    assert r['n_pool'] == 12 and r['channels'] == [0, 1, 2, 3]      # one entry is not an image
    assert (out / 'dfeatures_trained.png').is_file() and (out / 'dfeatures_random.png').is_file()
    assert json.loads((out / 'dfeatures.json').read_text())['measured'] == r['measured']
    for m in r['measured'].values():
        assert 0.05 < m['gradient_top5pct_energy'] <= 1 and 0 < m['active_fraction'] < 1
        assert m['top_images_layout_distance_over_random'] > 0
    assert r['measured']['trained']['top_images'] != r['measured']['random']['top_images']
    # by hand: h4 of each image alone, its maps' maxima ranked
    d = load.LSUN(db, npx=64)
    X = d.get(np.arange(13)).transpose(0, 3, 1, 2).astype('float32') / 127.5 - 1.
    d.close()
    arrays = dfeatures.load_discrim(fixture_model / '5_discrim_params.npz')
    import pytensor
    Xv, h4 = dfeatures.discriminator(arrays, X, get_mode('c'))
    act = pytensor.function([Xv], h4, mode=get_mode('c'))
    alone = np.concatenate([act(X[i:i + 1]) for i in range(12)])
    np.testing.assert_allclose(alone, act(X), rtol=1e-4, atol=1e-5)
    best = alone[:, :4].reshape(12, 4, -1).max(-1)
    assert r['measured']['trained']['top_images'] == np.argsort(-best, 0, kind='stable')[:3].T.tolist()
    assert r == dfeatures.main(args)                                   # deterministic
    (tmp_path / 'g').mkdir()
    gen_file = tmp_path / 'g' / '2_gen_params.npz'
    gen_file.write_bytes((fixture_model / '5_gen_params.npz').read_bytes())
    assert 'no 2_discrim_params.npz beside 2_gen_params.npz' in _exit_error(
        dfeatures.main, [f'--model={gen_file}', f'--data={db}'], capsys)
    (tmp_path / 'g' / '2_discrim_params.npz').write_bytes(gen_file.read_bytes())
    assert 'not the 11 arrays' in _exit_error(dfeatures.main, [f'--model={gen_file}',
                                                               f'--data={db}'], capsys)
    assert '--data: required' in _exit_error(dfeatures.main, [f'--model={fixture_model}'], capsys)


def test_loader_benchmark_runs_on_tiny_fixtures(tmp_path):
    """bench/lsun_loader.py end to end on 40 images: every source is read and the conversion
    holds every fixture image."""
    from bench import lsun_loader
    saved = {n: getattr(lsun_loader, n) for n in lsun_loader.FLAGS}
    try:
        r = lsun_loader.main(['--n=40', '--nbatch=8', '--batches=1', '--rounds=2',
                              f'--work={tmp_path}', f'--json_out={tmp_path / "r.json"}'])
    finally:
        for n, v in saved.items():
            setattr(lsun_loader, n, v)
    assert set(r['read']) == {'LMDB WebP, 64 px', 'HDF5 conversion, 64 px', 'LMDB JPEG, 64 px',
                              'LMDB WebP, 256 px', 'LMDB JPEG, 256 px'}
    assert all(len(v) == 2 and min(v) > 0 for v in r['read_all_rounds'].values())
    assert 3000 < r['bytes_per_image']['webp'] < 30000      # compresses like a photograph
    converted = load.LSUN(tmp_path / 'bedroom_webp_40_64.hdf5')
    assert len(converted) == 40
    converted.close()
    assert json.loads((tmp_path / 'r.json').read_text())['read'] == r['read']
