"""SVHN with 1000 labels from DCGAN discriminator features (paper section 5.1.2, table 2), on PyTensor.

    python svhn/svhn_semisup_analysis.py [--model_dir=...] [--epoch=200] [--name=value ...]

As the original: the discriminator's batchnorm statistics are inferred over the training set
(per-batch means and variances of 128 images, averaged), every image's features are the
max-pooled activations of its three conv layers (4x4, 2x2 and 1x1 pooling, concatenated: 7168
for the released model), and an L2-SVM (LinearSVC) is trained on 1000 labels, 100 per class.
C is chosen by the mean validation error over 10 draws per C; then 100 draws give the test error,
printed as mean and 1.96 std. The paper reports 22.48% (+- 0.38) test error for this model.

``--model_dir``/``--epoch`` pick ``<epoch>_discrim_params.npz`` (svhn/train_uncond_dcgan.py's) or
``.jl`` (the original's released file, the default: the repo's models/<desc>/). Needs
train_32x32.mat and test_32x32.mat (see svhn/load.py).
"""
import json
import warnings
from pathlib import Path
from time import time

import numpy as np
import pytensor
import pytensor.tensor as T
from tqdm import tqdm

from sklearn import metrics
from sklearn.exceptions import ConvergenceWarning
from sklearn.svm import LinearSVC as LSVC

from lib import activations
from lib import flags
from lib import rng
from lib.backend import get_mode, resolve_backend
from lib.data_image import exit_on_data_error
from lib.files import atomic_write_text
from lib.ops import batchnorm, dnn_conv, dnn_pool, mean_over_batches
from lib.theano_utils import floatX, sharedX
from lib.data_utils import iter_data

from svhn.load import svhn_with_valid_set
from svhn.model_files import DEFAULT_MODEL_DIR, load_model, params_path

relu = activations.Rectify()
lrelu = activations.LeakyRectify(leak=0.2)
sigmoid = activations.Sigmoid()

# PORT: run options; the original hard-coded all of these (desc, epoch 200, 10/100 draws, 100 labels
# per class, lib.config's data folder).
data_dir = ''         # '' = the project's data folder (lib.config); holds train_32x32.mat, ...
model_dir = ''        # '' = the repo's models/<desc>/ (where the original's weights go)
epoch = 200           # which <epoch>_discrim_params file
n_val_draws = 10      # # of labeled-set draws per C on the validation set
n_test_draws = 100    # # of labeled-set draws with the best C on the test set
n_per_class = 100     # # of labeled training examples per class (1000 labels)
nval = 10000          # # of validation examples split off train_32x32
seed = 42             # seed of lib.rng (the original's value)
backend = ''          # c | numba | jax | pytorch | python; '' = the default here
out = ''              # optional JSON file for the results

FLAGS = flags.declared(globals())  # every value above is a --flag

desc = 'svhn_unsup_all_conv_dcgan_100z_gaussian_lr_0.0005_64mb'
cs = [0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01]


def mean_and_var(X):
    """Per-channel batch mean and biased variance of (N, C, H, W), as lib.ops.batchnorm computes them."""
    u = T.mean(X, axis=[0, 2, 3])
    s = T.mean(T.sqr(X - u.dimshuffle('x', 0, 'x', 'x')), axis=[0, 2, 3])
    return u, s


def bnorm_statistics(X, w, w2, g2, b2, w3, g3, b3, wy):
    """The discriminator's batch statistics ([h2_u, h3_u], [h2_s, h3_s]) on the batch X."""
    h = lrelu(dnn_conv(X, w, subsample=(2, 2), border_mode=(2, 2)))

    h2 = dnn_conv(h, w2, subsample=(2, 2), border_mode=(2, 2))
    h2_u, h2_s = mean_and_var(h2)
    h2 = lrelu(batchnorm(h2, g=g2, b=b2))

    h3 = dnn_conv(h2, w3, subsample=(2, 2), border_mode=(2, 2))
    h3_u, h3_s = mean_and_var(h3)
    h3 = lrelu(batchnorm(h3, g=g3, b=b3))

    h_us = [h2_u, h3_u]
    h_ss = [h2_s, h3_s]
    return h_us, h_ss


def _batches(X, nbatch, desc):
    batches = iter_data(X, size=nbatch)
    if desc is None:
        return batches
    return tqdm(batches, total=-(-len(X) // nbatch), desc=desc, leave=False, ncols=80)


def infer_bnorm_stats(X, _bnorm_stats, nbatch=128, desc=None):
    """Population statistics: the per-batch means and variances of ``_bnorm_stats`` over batches
    of ``nbatch`` images of X, averaged with equal weight. Returns (U, S), lists of float32 arrays.
    ``desc``: show a progress bar with this label."""
    # PORT: _bnorm_stats is an argument (the original's was a module global compiled at import);
    # the original's loop summing U and S (sized 128 and 256 by hand) and dividing by the number of
    # batches is lib.ops.mean_over_batches, shared with imagenet/cifar10_svm.py.
    stats = mean_over_batches(_bnorm_stats, (floatX(xmb) for xmb in _batches(X, nbatch, desc)))
    return stats[:2], stats[2:]


def model(X,
          h2_u, h3_u,
          h2_s, h3_s,
          w, w2, g2, b2, w3, g3, b3, wy
          ):
    """Features of X: the discriminator's three conv layers (batchnorm with the given statistics),
    max-pooled 4x4, 2x2 and 1x1, flattened and concatenated."""
    h = lrelu(dnn_conv(X, w, subsample=(2, 2), border_mode=(2, 2)))                       # (n, 64, 16, 16)
    h2 = lrelu(batchnorm(dnn_conv(h, w2, subsample=(2, 2), border_mode=(2, 2)),
                         g=g2, b=b2, u=h2_u, s=h2_s))                                    # (n, 128, 8, 8)
    h3 = lrelu(batchnorm(dnn_conv(h2, w3, subsample=(2, 2), border_mode=(2, 2)),
                         g=g3, b=b3, u=h3_u, s=h3_s))                                    # (n, 256, 4, 4)
    h = T.flatten(dnn_pool(h, (4, 4), (4, 4)), 2)                                        # (n, 64*4*4)
    h2 = T.flatten(dnn_pool(h2, (2, 2), (2, 2)), 2)                                      # (n, 128*4*4)
    h3 = T.flatten(dnn_pool(h3, (1, 1), (1, 1)), 2)                                      # (n, 256*4*4)
    f = T.concatenate([h, h2, h3], axis=1)                                               # (n, 7168)
    return [f]


def compile_bnorm_stats(params, mode):
    """``_bnorm_stats(X)`` -> [h2_u, h3_u, h2_s, h3_s] for discriminator ``params``."""
    X = T.tensor4()
    h_us, h_ss = bnorm_statistics(X, *params)
    return pytensor.function([X], h_us + h_ss, mode=mode)


def compile_features(params, U, S, mode):
    """``_features(X)`` -> [f] with batchnorm statistics U = [h2_u, h3_u], S = [h2_s, h3_s]."""
    X = T.tensor4()
    HUs = [sharedX(u) for u in U]
    HSs = [sharedX(s) for s in S]
    targs = [X]+HUs+HSs+params
    f = model(*targs)
    return pytensor.function([X], f, mode=mode)


def features(X, _features, nbatch=128, desc=None):
    """``_features`` over X in batches of ``nbatch``: (N, n_features) float32.
    ``desc``: show a progress bar with this label."""
    # PORT: _features is an argument (the original's was a module global), as in infer_bnorm_stats
    Xfs = []
    for xmb in _batches(X, nbatch, desc):
        fmbs = _features(floatX(xmb))
        for i, fmb in enumerate(fmbs):
            Xfs.append(fmb)
    return np.concatenate(Xfs, axis=0)


def sample_labeled(trY):
    """``n_per_class`` random training indices of each class 0..9 (from lib.rng.py_rng), class-major."""
    idxs = np.arange(len(trY))
    classes_idxs = [idxs[trY == y] for y in range(10)]
    # PORT: random.sample needs a sequence in Python 3 (the original passed numpy arrays).
    sampled_idxs = [rng.py_rng.sample(list(class_idxs), n_per_class) for class_idxs in classes_idxs]
    return np.asarray(sampled_idxs).flatten()


def fit_svm(c, trXt, trY):
    """The original's LinearSVC(C=c) (L2-regularized squared hinge, one-vs-rest) fitted on trXt."""
    # PORT: dual=True was sklearn's default then ('auto' now picks it too for n < n_features), and
    # liblinear's shuffling is seeded from lib.rng (the original's drew from the unseeded np.random).
    svm = LSVC(C=c, dual=True, random_state=rng.np_rng.randint(2**31 - 1))
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', ConvergenceWarning)
        svm.fit(trXt, trY)
    return svm


def main(argv=None):
    config = flags.configure(globals(), FLAGS, argv, positive=['epoch', 'n_val_draws',
                                                               'n_test_draws', 'n_per_class', 'nval'],
                             files=['out'])
    rng.set_seed(seed)
    mdir = model_dir or DEFAULT_MODEL_DIR
    path = exit_on_data_error(params_path, mdir, epoch, 'discrim')
    discrim_params = exit_on_data_error(load_model, mdir, epoch, parts=('discrim',))['discrim']
    trX, vaX, teX, trY, vaY, teY = exit_on_data_error(svhn_with_valid_set, extra=False,
                                                      data_dir=data_dir or None, nval=nval)
    counts = np.bincount(trY, minlength=10)
    if counts.min() < n_per_class:
        flags.fail(f'--n_per_class={n_per_class}: class {counts.argmin()} has only '
                   f'{counts.min()} training images after the validation split')

    vaX = floatX(vaX)/127.5-1.
    trX = floatX(trX)/127.5-1.
    teX = floatX(teX)/127.5-1.

    # PORT: the original rebuilt these from the .jl arrays without names; they are the same values.
    params = [sharedX(p.get_value()) for p in discrim_params]
    print(desc.upper())
    print('epoch %d' % epoch)
    print(f'model: {path} | data: {len(trX)} train, {len(vaX)} valid, {len(teX)} test images',
          flush=True)
    mode = get_mode(resolve_backend(backend))

    t = time()
    _bnorm_stats = compile_bnorm_stats(params, mode)
    trU, trS = infer_bnorm_stats(trX, _bnorm_stats, desc='batchnorm statistics')
    _features = compile_features(params, trU, trS, mode)
    vaXt = features(vaX, _features, desc='validation features')
    print('%.2f seconds for batchnorm statistics and validation features' % (time()-t), flush=True)

    mean_va_accs = []
    per_c = []
    for c in cs:
        tr_accs = []
        va_accs = []
        for _ in tqdm(range(n_val_draws), leave=False, ncols=80):
            sampled_idxs = sample_labeled(trY)
            trXt = features(trX[sampled_idxs], _features)

            # PORT: named svm, not model (the original's shadowed the feature function model())
            svm = fit_svm(c, trXt, trY[sampled_idxs])
            tr_pred = svm.predict(trXt)
            va_pred = svm.predict(vaXt)
            tr_acc = metrics.accuracy_score(trY[sampled_idxs], tr_pred)
            va_acc = metrics.accuracy_score(vaY, va_pred)
            tr_accs.append(100*(1-tr_acc))
            va_accs.append(100*(1-va_acc))
        mean_va_accs.append(np.mean(va_accs))
        per_c.append(dict(c=c, train=np.mean(tr_accs), valid=np.mean(va_accs),
                          valid_ci=np.std(va_accs)*1.96))
        print('c: %.4f train: %.4f %.4f valid: %.4f %.4f' % (
            c, np.mean(tr_accs), np.std(tr_accs)*1.96, np.mean(va_accs), np.std(va_accs)*1.96))
    best_va_idx = np.argmin(mean_va_accs)
    best_va_c = cs[best_va_idx]
    print('best c: %.4f' % best_va_c)
    teXt = features(teX, _features, desc='test features')

    tr_accs = []
    va_accs = []
    te_accs = []
    for _ in tqdm(range(n_test_draws), leave=False, ncols=80):
        sampled_idxs = sample_labeled(trY)
        trXt = features(trX[sampled_idxs], _features)

        svm = fit_svm(best_va_c, trXt, trY[sampled_idxs])
        tr_pred = svm.predict(trXt)
        va_pred = svm.predict(vaXt)
        te_pred = svm.predict(teXt)
        tr_acc = metrics.accuracy_score(trY[sampled_idxs], tr_pred)
        va_acc = metrics.accuracy_score(vaY, va_pred)
        te_acc = metrics.accuracy_score(teY, te_pred)
        tr_accs.append(100*(1-tr_acc))
        va_accs.append(100*(1-va_acc))
        te_accs.append(100*(1-te_acc))
    print('train: %.4f %.4f valid: %.4f %.4f test: %.4f %.4f' % (
        np.mean(tr_accs), np.std(tr_accs)*1.96, np.mean(va_accs), np.std(va_accs)*1.96,
        np.mean(te_accs), np.std(te_accs)*1.96))
    result = dict(config=config, model=str(path), best_c=best_va_c, per_c=per_c,
                  train=np.mean(tr_accs), valid=np.mean(va_accs), test=np.mean(te_accs),
                  test_ci=np.std(te_accs)*1.96, n_features=int(teXt.shape[1]))
    print('test error: %.2f%% +- %.2f (mean +- 1.96 std over %d draws of %d labels; the paper: '
          '22.48%% +- 0.38)' % (result['test'], result['test_ci'], n_test_draws, 10*n_per_class))
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out, json.dumps(result, indent=1, default=float) + '\n')
    return result


if __name__ == '__main__':
    flags.command(main)
