"""imagenet/cifar10_svm.py and imagenet.load.cifar10: the paper's CIFAR-10 experiment.

CIFAR-10 cannot be downloaded here, so the tests write tiny batches in the real format: the
Python 2 cPickle (protocol 2) dicts of cifar-10-python.tar.gz, written opcode by opcode
(``py2_pickle``), in a folder and in a .tar.gz. The features are checked against an independent
NumPy float64 implementation (tests/imagenet32_reference.py), the batchnorm statistics against
the SVHN analysis's rule (equal-weight mean of per-batch statistics), and the whole pipeline
end to end on images whose class is visible in their colours, with a random-weight model.
"""
import json
import pickle
import struct
import tarfile

import numpy as np
import pytest

from lib.backend import get_mode, resolve_backend
from lib.data_image import DataError
from lib.params import save_params_jl
from lib.theano_utils import sharedX

import imagenet.cifar10_svm as cs
import imagenet.load_pretrained as lp
from imagenet.load import cifar10, load_batch

from imagenet32_reference import np_cifar_features, np_discrim_layers

NDF = 4


# ------------------------------------------------------------------------------------------
# Fixtures in the real format
# ------------------------------------------------------------------------------------------

def _py2_str(b):
    b = b.encode('latin1') if isinstance(b, str) else b
    if len(b) < 256:
        return b'U' + bytes([len(b)]) + b                    # SHORT_BINSTRING
    return b'T' + struct.pack('<i', len(b)) + b              # BINSTRING


def _py2_int(i):
    if 0 <= i < 256:
        return b'K' + bytes([i])                             # BININT1
    if 0 <= i < 65536:
        return b'M' + struct.pack('<H', i)                   # BININT2
    return b'J' + struct.pack('<i', i)                       # BININT


def _py2_obj(v):
    if isinstance(v, (bytes, str)):
        return _py2_str(v)
    if isinstance(v, (int, np.integer)):
        return _py2_int(int(v))
    if isinstance(v, list):
        return b']' + (b'(' + b''.join(_py2_obj(x) for x in v) + b'e' if v else b'')
    if isinstance(v, np.ndarray):  # numpy 1.x under Python 2: _reconstruct + BUILD state
        assert v.dtype == np.uint8
        shape = b'(' + b''.join(_py2_int(s) for s in v.shape) + b't'
        dtype = (b'cnumpy\ndtype\n' + _py2_str('u1') + _py2_int(0) + _py2_int(1) + b'\x87R'
                 + b'(' + _py2_int(3) + _py2_str('|') + b'NNN'
                 + b'J\xff\xff\xff\xffJ\xff\xff\xff\xff' + _py2_int(0) + b'tb')
        return (b'cnumpy.core.multiarray\n_reconstruct\n' + b'cnumpy\nndarray\n' + _py2_int(0)
                + b'\x85' + _py2_str('b') + b'\x87R' + b'(' + _py2_int(1) + shape + dtype
                + b'\x89' + _py2_str(np.ascontiguousarray(v).tobytes()) + b'tb')
    raise TypeError(type(v))


def py2_pickle(d):
    """``d`` as Python 2's cPickle.dump(d, f, 2) wrote it (str keys, numpy 1 arrays)."""
    return b'\x80\x02}(' + b''.join(_py2_obj(k) + _py2_obj(v) for k, v in d.items()) + b'u.'


def make_images(labels, rng):
    """uint8 (n, 3072) images whose mean colour and a bright quadrant encode the label."""
    n = len(labels)
    X = rng.randint(0, 80, (n, 3, 32, 32))
    for i, y in enumerate(labels):
        X[i, y % 3] += 100 + 15 * (y // 3)
        q = y % 4
        X[i, :, 16 * (q // 2):16 * (q // 2) + 16, 16 * (q % 2):16 * (q % 2) + 16] += 60
    return np.clip(X, 0, 255).astype(np.uint8).reshape(n, 3072)


def write_cifar(folder, n_per_batch=30, n_test=40, seed=0):
    """data_batch_1..5 and test_batch in ``folder`` (cifar-10-batches-py layout)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.RandomState(seed)
    batches = {}
    for name, n in [(f'data_batch_{i}', n_per_batch) for i in range(1, 6)] + [('test_batch', n_test)]:
        labels = [int(y) for y in rng.randint(0, 10, n)]
        d = {'batch_label': f'{name} of 5', 'labels': labels, 'data': make_images(labels, rng),
             'filenames': [f'img_{i}.png' for i in range(n)]}
        (folder / name).write_bytes(py2_pickle(d))
        batches[name] = d
    (folder / 'batches.meta').write_bytes(py2_pickle({'label_names': ['airplane'] * 10}))
    return batches


@pytest.fixture(scope='module')
def cifar_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp('cifar')
    batches = write_cifar(root / 'cifar-10-batches-py')
    return root / 'cifar-10-batches-py', batches


@pytest.fixture(scope='module')
def small_model(tmp_path_factory):
    """A random discriminator at ndf=4 saved in the original's .jl format (epoch 30)."""
    folder = tmp_path_factory.mktemp('model')
    _, discrim_shapes = lp.param_shapes(8, 3, 4, NDF)
    r = np.random.RandomState(5)
    arrays = [((1. if n[1] == 'g' else 0.) + (0.02 if n[1] == 'g' else 0.2) * r.randn(*s))
              .astype(np.float32) for n, s in discrim_shapes]
    save_params_jl(arrays, folder / '30_discrim_params.jl')
    return folder, arrays


# ------------------------------------------------------------------------------------------
# The loader
# ------------------------------------------------------------------------------------------

def test_reads_python2_batches(cifar_dir):
    folder, batches = cifar_dir
    trX, trY, teX, teY = cifar10(folder)
    assert trX.shape == (150, 3, 32, 32) and trX.dtype == np.uint8
    assert teX.shape == (40, 3, 32, 32) and trY.dtype == np.int32
    data = np.concatenate([batches[f'data_batch_{i}']['data'] for i in range(1, 6)])
    labels = sum([batches[f'data_batch_{i}']['labels'] for i in range(1, 6)], [])
    # channel-major rows: 1024 red, 1024 green, 1024 blue values, each row by row
    i, c, y, x = 37, 2, 5, 30
    assert trX[i, c, y, x] == data[i, 1024 * c + 32 * y + x]
    np.testing.assert_array_equal(trX.reshape(150, -1), data)
    np.testing.assert_array_equal(trY, labels)
    np.testing.assert_array_equal(teY, batches['test_batch']['labels'])
    # subsets, the parent folder, and the downloaded archive itself
    trX2, trY2, teX2, teY2 = cifar10(folder.parent, ntrain=45, ntest=7)
    assert len(trX2) == 45 and len(teY2) == 7
    np.testing.assert_array_equal(trX2, trX[:45])
    archive = folder.parent / 'cifar-10-python.tar.gz'
    with tarfile.open(archive, 'w:gz') as tar:
        tar.add(folder, arcname='cifar-10-batches-py')
    trX3, trY3, teX3, teY3 = cifar10(archive)
    np.testing.assert_array_equal(trX3, trX)
    np.testing.assert_array_equal(teY3, teY)


def test_python3_pickles_also_load():
    X = np.arange(2 * 3072).reshape(2, 3072).astype(np.uint8)
    for protocol in (2, 4, 5):
        d = load_batch(pickle.dumps({'data': X, 'labels': [1, 2]}, protocol=protocol))
        np.testing.assert_array_equal(d['data'], X)


class _Evil:
    def __reduce__(self):
        import os
        return (os.system, ('echo pwned > /dev/null',))


@pytest.mark.parametrize('payload, refused', [
    (pickle.dumps({'data': _Evil()}, protocol=2), 'system'),
    (b"cos\nsystem\n(S'echo pwned'\ntR.", 'os.system'),
    (pickle.dumps({'data': __import__('collections').OrderedDict()}, protocol=2), 'OrderedDict'),
    (pickle.dumps({'data': np.float64(1.0)}, protocol=2), 'scalar'),
], ids=['reduce-os-system', 'protocol0-os-system', 'other-class', 'numpy-scalar'])
def test_refuses_everything_else(tmp_path, payload, refused):
    folder = tmp_path / 'cifar-10-batches-py'
    write_cifar(folder, n_per_batch=2, n_test=2)
    (folder / 'data_batch_3').write_bytes(payload)
    with pytest.raises(DataError) as exc:
        cifar10(folder)
    msg = str(exc.value)
    assert len(msg.splitlines()) == 1
    assert 'data_batch_3' in msg and 'refused global' in msg and refused in msg


@pytest.mark.parametrize('content, expected', [
    ({'labels': [1]}, "no 'data' entry"),
    ({'data': np.zeros((2, 3072), np.uint8)}, "no 'labels' entry"),
    ({'data': np.zeros((2, 1024), np.uint8), 'labels': [1, 2]}, 'expected uint8 (N, 3072)'),
    ({'data': np.zeros((2, 3072), np.uint8), 'labels': [1]}, 'should be 2 integers'),
    ({'data': np.zeros((2, 3072), np.uint8), 'labels': [1, 12]}, 'expected 0..9'),
    ([1, 2, 3], 'holds a list'),
    (None, 'not a readable'),
], ids=['no-data', 'no-labels', 'bad-shape', 'label-count', 'label-range', 'not-dict', 'truncated'])
def test_bad_batches_are_one_line_errors(tmp_path, content, expected):
    folder = tmp_path / 'cifar-10-batches-py'
    write_cifar(folder, n_per_batch=2, n_test=2)
    data = py2_pickle(content) if isinstance(content, dict) else (
        pickle.dumps(content, protocol=2) if content is not None
        else (folder / 'test_batch').read_bytes()[:100])
    (folder / 'test_batch').write_bytes(data)
    with pytest.raises(DataError) as exc:
        cifar10(folder)
    assert 'test_batch' in str(exc.value) and expected in str(exc.value)
    assert len(str(exc.value).splitlines()) == 1
    (folder / 'data_batch_4').unlink()
    with pytest.raises(DataError, match='missing data_batch_4'):
        cifar10(folder)
    with pytest.raises(DataError, match='no such folder'):
        cifar10(tmp_path / 'elsewhere')


# ------------------------------------------------------------------------------------------
# Features
# ------------------------------------------------------------------------------------------

@pytest.fixture(scope='module')
def compiled(small_model):
    """The script's _bnorm_stats and a _features at ndf=4 (statistics as shared inputs)."""
    _, arrays = small_model
    params = [sharedX(a) for a in arrays]
    mode = get_mode(resolve_backend(''))
    return cs.build_bnorm_stats(params, mode), params, mode


def test_bnorm_stats_are_the_svhn_analysis_rule(compiled, small_model):
    """Equal-weight mean over minibatches (the last one short) of per-batch mean/variance."""
    _bnorm_stats, params, mode = compiled
    _, arrays = small_model
    X = np.random.RandomState(0).randint(0, 256, (10, 3, 32, 32)).astype(np.uint8)
    U, S = cs.infer_bnorm_stats(_bnorm_stats, X, nbatch=4)
    assert [u.shape for u in U] == [(4,), (8,), (8,), (16,), (16,)]
    assert all(u.dtype == np.float32 for u in U + S)
    d64 = [a.astype(np.float64) for a in arrays]
    per_batch = [np_discrim_layers(cs.transform(X[i:i + 4]).astype(np.float64), *d64[:-1])[1]
                 for i in (0, 4, 8)]
    for layer in range(5):
        u_ref = np.mean([b[layer][0] for b in per_batch], axis=0)
        s_ref = np.mean([b[layer][1] for b in per_batch], axis=0)
        np.testing.assert_allclose(U[layer], u_ref, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(S[layer], s_ref, rtol=1e-4, atol=1e-5)


def test_features_match_numpy_reference(compiled, small_model):
    """Six layers, each max-pooled to 4x4 (windows 8, 4, 4, 2, 2, 1), with the given statistics."""
    _bnorm_stats, params, mode = compiled
    _, arrays = small_model
    r = np.random.RandomState(1)
    X = r.randint(0, 256, (7, 3, 32, 32)).astype(np.uint8)
    U = [r.uniform(-0.5, 0.5, c).astype(np.float32) for c in (4, 8, 8, 16, 16)]
    S = [r.uniform(0.5, 2., c).astype(np.float32) for c in (4, 8, 8, 16, 16)]
    _features = cs.build_features(params, U, S, mode)
    f = cs.features(_features, X, nbatch=3)
    d64 = [a.astype(np.float64) for a in arrays]
    hs, _ = np_discrim_layers(cs.transform(X).astype(np.float64), *d64[:-1],
                              stats=[(u.astype(np.float64), s.astype(np.float64)) for u, s in zip(U, S)])
    ref = np_cifar_features(hs)
    assert f.shape == ref.shape == (7, 16 * NDF * 14) and f.dtype == np.float32
    np.testing.assert_allclose(f, ref, rtol=1e-4, atol=1e-4)
    # with fixed statistics a feature does not depend on the rest of its minibatch (up to the
    # float32 rounding of differently blocked matrix products)
    np.testing.assert_allclose(cs.features(_features, X[:2], nbatch=3), f[:2], rtol=1e-5, atol=1e-6)


def test_paper_model_gives_28672_features():
    """At the released widths (ndf=128) all six layers pooled to 4x4 are 28672 features."""
    _, discrim_shapes = lp.param_shapes(256, 3, 128, 128)
    channels = [s[0] for n, s in discrim_shapes if n[1] == 'w' and len(s) == 4]
    assert channels == [128, 128, 256, 256, 512, 512]
    assert 16 * sum(channels) == 28672


# ------------------------------------------------------------------------------------------
# The script, end to end
# ------------------------------------------------------------------------------------------

def test_main_end_to_end(cifar_dir, small_model, tmp_path, capsys):
    folder, _ = cifar_dir
    model_dir, _ = small_model
    out = tmp_path / 'results.json'
    results = cs.main([f'--data_dir={folder}', f'--model_dir={model_dir}', f'--ndf={NDF}',
                       '--nval=30', '--nbatch=32', '--cs=0.001,0.1', f'--out={out}'])
    assert results['n_features'] == 16 * NDF * 14 == 896
    assert results['ntrain'] == 150 and results['ntest'] == 40 and results['nval'] == 30
    assert results['best_c'] in (0.001, 0.1) and len(results['valid_accuracy']) == 2
    # the classes are visible in the images' colours: a working pipeline separates them
    assert results['test_accuracy'] >= 0.9, results
    assert json.loads(out.read_text())['test_accuracy'] == results['test_accuracy']
    printed = capsys.readouterr().out
    assert '896 features per image' in printed and 'best c:' in printed and 'test:' in printed


@pytest.mark.parametrize('argv, expected', [
    (['--cs=abc'], '--cs=abc'),
    (['--nval=150'], '--nval=150'),
    (['--ndf=8'], 'expects (8, 3, 3, 3)'),
    (['--epoch=3'], '3_discrim_params'),
    (['--data_dir=/nonexistent/cifar'], '/nonexistent/cifar'),
], ids=['bad-cs', 'nval-too-big', 'wrong-ndf', 'no-epoch', 'no-data'])
def test_main_errors_are_one_line(cifar_dir, small_model, capsys, argv, expected):
    folder, _ = cifar_dir
    model_dir, _ = small_model
    with pytest.raises(SystemExit) as exc:
        cs.main([f'--data_dir={folder}', f'--model_dir={model_dir}', f'--ndf={NDF}',
                 '--ntrain=150', '--nval=30'] + argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith('error: ') and expected in err, err
