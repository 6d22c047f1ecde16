"""imagenet/: the 32x32 ImageNet-1k DCGAN (load_pretrained.py), its folder loader and train script.

The released weights are not available to the tests, so stand-ins of the exact shapes are
written by the test in the original's .jl format (lib.params.save_params_jl) and in this port's
.npz. The architecture itself is checked against an independent NumPy float64 implementation
(true convolution, deconvolution as its adjoint) and against the shapes in the headers of the
released model's .npy side files.
"""
import inspect
import json

import numpy as np
import pytest
from PIL import Image

from lib import rng
from lib.backend import get_mode, resolve_backend
from lib.data_image import DataError
from lib.params import save_params, save_params_jl
from lib.vis import bytescale, color_grid_vis

import imagenet.load_pretrained as lp
import imagenet.train_uncond_dcgan as tr
from imagenet.load import crop_images, imagenet, min_resize

from imagenet32_reference import np_discrim_layers, np_gen

# The shapes in the .npy headers of the released 30_{gen,discrim}_params.jl side files
# (Newmu/dcgan_code, models/imagenet_gan_pretrain_128f_relu_lrelu_7l_3x3_256z). Five large
# files are stored without a readable header there (gen 01, 04, 07; discrim 11, 14); their
# shapes follow from the layers around them and are marked None.
RELEASED_GEN = [None, (8192,), (8192,), None, (512,), (512,), None, (256,), (256,),
                (256, 256, 3, 3), (256,), (256,), (256, 128, 3, 3), (128,), (128,),
                (128, 128, 3, 3), (128,), (128,), (128, 3, 3, 3)]
RELEASED_DISCRIM = [(128, 3, 3, 3), (128, 128, 3, 3), (128,), (128,), (256, 128, 3, 3),
                    (256,), (256,), (256, 256, 3, 3), (256,), (256,), None, (512,), (512,),
                    None, (512,), (512,), (8192, 1)]


@pytest.fixture
def restore(request):
    """Restore the module-level hyperparameters a test's main(argv) changed."""
    modules = [lp, tr]
    saved = [{k: getattr(m, k) for k in m.FLAGS} for m in modules]
    yield
    for m, s in zip(modules, saved):
        for k, v in s.items():
            setattr(m, k, v)


def _random_model(gen_shapes, discrim_shapes, seed=0):
    """Arrays of the given shapes, drawn like the training script's initialisers."""
    r = np.random.RandomState(seed)

    def draw(name, shape):
        kind = name[1]
        if kind == 'g':
            return (1. + 0.02 * r.randn(*shape)).astype(np.float32)
        if kind == 'b':
            return (0.1 * r.randn(*shape)).astype(np.float32)
        return (0.05 * r.randn(*shape)).astype(np.float32)
    return ([draw(n, s) for n, s in gen_shapes], [draw(n, s) for n, s in discrim_shapes])


@pytest.fixture(scope='module')
def paper_model(tmp_path_factory):
    """A random model of the released shapes, saved as the original's .jl files (epoch 30)."""
    folder = tmp_path_factory.mktemp('models') / lp.desc
    folder.mkdir()
    gen_arrays, discrim_arrays = _random_model(*lp.param_shapes(256, 3, 128, 128))
    save_params_jl(gen_arrays, folder / '30_gen_params.jl')
    save_params_jl(discrim_arrays, folder / '30_discrim_params.jl')
    return folder, gen_arrays, discrim_arrays


# ------------------------------------------------------------------------------------------
# The architecture
# ------------------------------------------------------------------------------------------

def test_param_shapes_are_the_released_models():
    gen_shapes, discrim_shapes = lp.param_shapes(256, 3, 128, 128)
    assert len(gen_shapes) == len(RELEASED_GEN) == 19
    assert len(discrim_shapes) == len(RELEASED_DISCRIM) == 17
    for (name, shape), released in zip(gen_shapes + discrim_shapes, RELEASED_GEN + RELEASED_DISCRIM):
        if released is not None:
            assert shape == released, name
    # the layers without a readable header: D's h5/h6 and G's input and first two deconvs
    shapes = dict(gen_shapes + discrim_shapes)
    assert shapes['gw'] == (256, 8192) and shapes['gw2'] == (512, 512, 3, 3)
    assert shapes['gw3'] == (512, 256, 3, 3)
    assert shapes['dw5'] == (512, 256, 3, 3) and shapes['dw6'] == (512, 512, 3, 3)


def test_param_lists_match_signatures_and_shapes(restore):
    """Train's init_params: gen/discrim argument order by name, load_pretrained's shapes."""
    tr.nz, tr.ngf, tr.ndf = 8, 4, 4
    rng.set_seed(42)
    gen_params, discrim_params = tr.init_params()
    gen_args = list(inspect.signature(lp.gen).parameters)[1:]
    discrim_args = list(inspect.signature(lp.discrim).parameters)[1:]
    assert [p.name[1:] for p in gen_params] == gen_args
    assert [p.name[1:] for p in discrim_params] == discrim_args
    assert gen_args == ['w', 'g', 'b', 'w2', 'g2', 'b2', 'w3', 'g3', 'b3', 'w4', 'g4', 'b4',
                        'w5', 'g5', 'b5', 'w6', 'g6', 'b6', 'wx']
    gen_shapes, discrim_shapes = lp.param_shapes(8, 3, 4, 4)
    assert [(p.name, p.get_value().shape) for p in gen_params] == gen_shapes
    assert [(p.name, p.get_value().shape) for p in discrim_params] == discrim_shapes
    assert all(p.get_value().dtype == np.float32 for p in gen_params + discrim_params)


@pytest.fixture(scope='module')
def small_compiled():
    """gen, discrim and discrim_layers at tiny widths, compiled once."""
    import pytensor
    import pytensor.tensor as T
    from lib.theano_utils import sharedX

    shapes = lp.param_shapes(8, 3, 4, 4)
    gen_arrays, discrim_arrays = _random_model(*shapes, seed=1)
    gp = [sharedX(a) for a in gen_arrays]
    dp = [sharedX(a) for a in discrim_arrays]
    Z, X = T.matrix(), T.tensor4()
    mode = get_mode(resolve_backend(''))
    f = pytensor.function([Z, X], [lp.gen(Z, *gp), lp.discrim(X, *dp)]
                          + lp.discrim_layers(X, *dp[:-1]), mode=mode)
    return f, gen_arrays, discrim_arrays


def test_gen_and_discrim_match_numpy_reference(small_compiled):
    """Every layer's stride, padding, kernel flip and batchnorm, against NumPy float64."""
    f, gen_arrays, discrim_arrays = small_compiled
    r = np.random.RandomState(3)
    Z = r.uniform(-1, 1, (6, 8)).astype(np.float32)
    X = r.uniform(-1, 1, (5, 3, 32, 32)).astype(np.float32)
    gX, p, *hs = f(Z, X)
    g64 = [a.astype(np.float64) for a in gen_arrays]
    d64 = [a.astype(np.float64) for a in discrim_arrays]
    ref_gX = np_gen(Z.astype(np.float64), *g64)
    assert gX.shape == (6, 3, 32, 32) and gX.dtype == np.float32
    np.testing.assert_allclose(gX, ref_gX, rtol=1e-4, atol=2e-5)
    ref_hs, _ = np_discrim_layers(X.astype(np.float64), *d64[:-1])
    sizes = [(4, 32), (4, 16), (8, 16), (8, 8), (16, 8), (16, 4)]  # (channels, px) at ndf=4
    for h, ref, (c, px) in zip(hs, ref_hs, sizes):
        assert h.shape == (5, c, px, px)
        np.testing.assert_allclose(h, ref, rtol=1e-4, atol=1e-4)
    logit = ref_hs[-1].reshape(5, -1) @ d64[-1]
    np.testing.assert_allclose(p, 1 / (1 + np.exp(-logit)), rtol=1e-4, atol=1e-5)


# ------------------------------------------------------------------------------------------
# load_pretrained.py
# ------------------------------------------------------------------------------------------

def test_load_pretrained_writes_grid_sorted_by_score(paper_model, tmp_path, restore):
    folder, gen_arrays, discrim_arrays = paper_model
    out = tmp_path / 'grid.png'
    samples, scores, path = lp.main([f'--model_dir={folder}', f'--out={out}', '--nvis=16'])
    assert path == out and samples.shape == (16, 3, 32, 32) and scores.shape == (16, 1)
    # most real first
    assert np.all(np.diff(scores.ravel()) <= 0) and scores.max() > scores.min()
    # they are the original's: z = uniform(-1, 1, (nvis, 256)), the first draw of RandomState(42),
    # one batch through gen, scored by discrim on the whole batch, argsort reversed
    from lib.theano_utils import sharedX
    _gen, _discrim = lp.build([sharedX(a) for a in gen_arrays],
                              [sharedX(a) for a in discrim_arrays], get_mode(resolve_backend('')))
    z = np.random.RandomState(42).uniform(-1., 1., size=(16, 256)).astype(np.float32)
    x = _gen(z)
    p = _discrim(x).ravel()
    order = np.argsort(p)[::-1]
    np.testing.assert_allclose(samples, x[order], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(scores.ravel(), p[order], rtol=1e-5, atol=1e-6)
    # batchnorm uses batch statistics, which do not depend on the order: the sorted batch
    # scores the same, sample by sample
    np.testing.assert_allclose(_discrim(samples), scores, rtol=1e-4, atol=1e-6)
    # the file is the 4x4 grid of these samples in this order, as the original's imsave wrote it
    img = np.asarray(Image.open(out))
    assert img.shape == (128, 128, 3)
    expected = bytescale(color_grid_vis(lp.inverse_transform(samples), (4, 4)))
    assert np.abs(img.astype(int) - expected.astype(int)).max() <= 1


def test_load_pretrained_reads_our_npz(tmp_path, restore):
    """What the train script writes (.npz, any width) loads with the matching flags."""
    tr.nz, tr.ngf, tr.ndf = 8, 4, 4
    rng.set_seed(1)
    gen_params, discrim_params = tr.init_params()
    save_params(gen_params, tmp_path / '3_gen_params.npz')
    save_params(discrim_params, tmp_path / '3_discrim_params.npz')
    samples, scores, path = lp.main([f'--model_dir={tmp_path}', '--epoch=3', '--nz=8', '--ngf=4',
                                     '--ndf=4', '--nvis=9', f'--out={tmp_path / "s.png"}'])
    assert samples.shape == (9, 3, 32, 32) and path.exists()
    gp, dp = lp.load_model(tmp_path, 3, nz=8, ngf=4, ndf=4)
    for a, b in zip(gp + dp, gen_params + discrim_params):
        np.testing.assert_array_equal(a.get_value(), b.get_value())


def _main_error(capsys, argv):
    with pytest.raises(SystemExit) as exc:
        lp.main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def test_wrong_shape_names_the_parameter(paper_model, tmp_path, capsys, restore):
    folder, gen_arrays, discrim_arrays = paper_model
    bad = list(gen_arrays)
    bad[3] = np.zeros((512, 256, 3, 3), np.float32)  # gw2 with the wrong number of outputs
    save_params_jl(bad, tmp_path / '30_gen_params.jl')
    save_params_jl(discrim_arrays, tmp_path / '30_discrim_params.jl')
    err = _main_error(capsys, [f'--model_dir={tmp_path}', f'--out={tmp_path / "x.png"}'])
    assert err.startswith('error: ') and '30_gen_params.jl' in err and 'gw2' in err
    assert '(512, 256, 3, 3)' in err and '(512, 512, 3, 3)' in err
    assert not (tmp_path / 'x.png').exists()


def test_wrong_count_missing_files_and_ambiguity(paper_model, tmp_path, capsys, restore):
    folder, gen_arrays, discrim_arrays = paper_model
    save_params_jl(gen_arrays[:-1], tmp_path / '30_gen_params.jl')
    save_params_jl(discrim_arrays, tmp_path / '30_discrim_params.jl')
    err = _main_error(capsys, [f'--model_dir={tmp_path}'])
    assert '18 arrays, expected 19' in err
    # a missing side file (the released model's large .npy files are often absent)
    (tmp_path / '30_discrim_params.jl_11.npy').unlink()
    save_params_jl(gen_arrays, tmp_path / '30_gen_params.jl')
    err = _main_error(capsys, [f'--model_dir={tmp_path}'])
    assert '30_discrim_params.jl_11.npy' in err and 'missing' in err
    # a truncated one
    save_params_jl(discrim_arrays, tmp_path / '30_discrim_params.jl')
    side = tmp_path / '30_discrim_params.jl_08.npy'
    side.write_bytes(side.read_bytes()[:-1000])
    err = _main_error(capsys, [f'--model_dir={tmp_path}'])
    assert '30_discrim_params.jl_08.npy' in err
    err = _main_error(capsys, [f'--model_dir={tmp_path / "nowhere"}'])
    assert 'nowhere' in err and 'no such model folder' in err
    err = _main_error(capsys, [f'--model_dir={tmp_path}', '--epoch=7'])
    assert '7_gen_params.{npz,jl}: no such file' in err
    save_params(gen_arrays, tmp_path / '30_gen_params.npz')
    err = _main_error(capsys, [f'--model_dir={tmp_path}'])
    assert 'both 30_gen_params.npz and 30_gen_params.jl' in err
    err = _main_error(capsys, [f'--model_dir={folder}', '--out=grid.txt'])
    assert '--out=grid.txt' in err


# ------------------------------------------------------------------------------------------
# load.py and the train script
# ------------------------------------------------------------------------------------------

def _write_images(folder, n, seed=0):
    """n small images of mixed sizes and formats in nested folders, like ImageNet's train/."""
    r = np.random.RandomState(seed)
    formats = ['JPEG', 'PNG', 'WEBP']
    exts = {'JPEG': '.JPEG', 'PNG': '.png', 'WEBP': '.webp'}
    for i in range(n):
        sub = folder / f'n0{i % 3}'
        sub.mkdir(parents=True, exist_ok=True)
        h, w = 32 + r.randint(0, 20), 32 + r.randint(0, 20)
        img = Image.fromarray(r.randint(0, 256, (h, w, 3)).astype(np.uint8))
        fmt = formats[i % 3]
        img.save(sub / f'img_{i}{exts[fmt]}', format=fmt)


def test_min_resize_and_crop():
    x = np.random.RandomState(0).randint(0, 256, (40, 64, 3)).astype(np.uint8)
    y = min_resize(x, 32)
    assert y.shape == (32, 51, 3) and y.dtype == np.uint8
    assert min_resize(y, 32) is y
    out = crop_images(x[None], 32)
    assert out.shape == (1, 32, 32, 3)


def test_imagenet_folder_is_min_resized_center_crops(tmp_path, monkeypatch):
    """Every stored image is a file's 32x32 min-side resize + center crop (lib.data_image)."""
    from lib.data_image import list_images, load_image

    monkeypatch.setenv('DCGAN_DATA_DIR', str(tmp_path / 'data'))
    _write_images(tmp_path / 'train', 12, seed=3)
    tr_data, te_data = imagenet(path=tmp_path / 'train', progress=False)
    stored = np.concatenate([tr_data.get_data(None, slice(0, tr_data.num_examples))[0],
                             te_data.get_data(None, slice(0, te_data.num_examples))[0]])
    assert stored.shape == (12, 32, 32, 3) and stored.dtype == np.uint8
    expected = [load_image(p, 32) for p in list_images(tmp_path / 'train')]
    assert sorted(x.tobytes() for x in stored) == sorted(x.tobytes() for x in expected)
    (tmp_path / 'empty').mkdir()
    with pytest.raises(DataError, match='no images found'):
        imagenet(path=tmp_path / 'empty')


def test_imagenet_needs_a_path():
    with pytest.raises(DataError, match='--data'):
        imagenet(path=None)
    with pytest.raises(DataError, match='no such'):
        imagenet(path='/nonexistent/folder')


def test_train_dry_run_then_load_pretrained(tmp_path, monkeypatch, capsys, restore):
    """Two minibatches on a folder of tiny images; the saved .npz loads in load_pretrained."""
    monkeypatch.setenv('DCGAN_DATA_DIR', str(tmp_path / 'data'))
    images = tmp_path / 'train'
    _write_images(images, 24)
    out = tmp_path / 'run'
    result = tr.main(['--dry_run', f'--data={images}', '--nz=8', '--ngf=4', '--ndf=4',
                      '--nbatch=4', '--nvis=4', f'--out_dir={out}',
                      '--backend=python'])  # no cold Numba compile: faces' dry run covers numba
    assert result['n_updates'] == 2
    log = (out / 'logs' / f'{tr.desc}.ndjson').read_text().splitlines()
    record = json.loads(log[0])
    assert record['n_updates'] == 2 and record['n_examples'] == 8
    assert np.isfinite(record['g_cost']) and np.isfinite(record['d_cost'])
    assert (out / 'samples' / tr.desc / '0.png').exists()
    model_dir = out / 'models' / tr.desc
    assert (model_dir / 'latest_checkpoint.npz').exists()
    samples, scores, path = lp.main([f'--model_dir={model_dir}', '--epoch=1', '--nz=8', '--ngf=4',
                                     '--ndf=4', '--nvis=4', f'--out={tmp_path / "s.png"}'])
    assert samples.shape == (4, 3, 32, 32) and np.all(np.isfinite(scores))
    # no --data: one line, exit 2
    with pytest.raises(SystemExit) as exc:
        tr.main(['--dry_run', f'--out_dir={out}'])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith('error: --data')
