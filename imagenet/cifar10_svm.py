"""The paper's CIFAR-10 experiment: an L2-SVM on the ImageNet-1k DCGAN discriminator's features.

    python imagenet/cifar10_svm.py [--data_dir=.../cifar-10-batches-py] [--model_dir=DIR] [--epoch=30]

Radford et al. (2016), section 5.1 and Table 1: "we use all layers' features from the
discriminator, maxpooling each layer's representation to produce a 4 x 4 spatial grid. These
features are then flattened and concatenated to form a 28672 dimensional vector and a
regularized linear L2-SVM classifier is trained on top of them" (82.8% accuracy with the
DCGAN trained on ImageNet-1k). The original code released only the SVHN version of this
analysis (svhn/svhn_semisup_analysis.py); this script is that analysis, section by section,
on the 32x32 ImageNet discriminator of imagenet/load_pretrained.py:

- the six conv layers h .. h6 (channels ndf, ndf, ndf*2, ndf*2, ndf*4, ndf*4 at 32, 16, 16, 8, 8,
  4 px) are each max-pooled to 4x4 (windows 8, 4, 4, 2, 2, 1, stride = window) and
  concatenated: 16 * ndf * (1+1+2+2+4+4) = 28672 features at the paper's ndf = 128;
- batchnorm uses statistics inferred over the training images (``infer_bnorm_stats``: the
  mean over batches of 128 of each batch's mean and biased variance, as the SVHN analysis);
- sklearn's LinearSVC (squared hinge loss, L2 penalty: the L2-SVM) with C chosen on a
  validation split held out of the training set, then refit on the whole training set.

The model files are the original's .jl (``30_discrim_params.jl`` + side files) or this port's
.npz (imagenet/train_uncond_dcgan.py writes ``<epoch>_discrim_params.npz``).
"""
import json
import sys
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

from lib import flags
from lib import rng
from lib.ops import batchnorm_stats, dnn_pool, mean_over_batches
from lib.theano_utils import floatX, sharedX
from lib.data_utils import iter_data
from lib.backend import describe_mode, get_mode, resolve_backend
from lib.data_image import DataError, exit_on_data_error
from lib.files import atomic_write_text

from imagenet.load import cifar10
from imagenet.load_pretrained import REPO, discrim_layers, load_model
from imagenet.load_pretrained import desc as pretrained_desc

# PORT: what the SVHN analysis hard-coded is a flag here; the defaults follow the paper.
nc = 3            # # of channels in image
ndf = 128         # # of discrim filters in first conv layer (the released model's)
nbatch = 128      # # of examples per batch for the batchnorm statistics and the features
cs = '0.0001,0.0002,0.0005,0.001,0.002,0.005,0.01'  # L2-SVM C values tried (the SVHN analysis's)
ntrain = 50000    # # of CIFAR-10 training images used (first of data_batch_1..5), val included
nval = 5000       # # of those (the last ones) held out to choose C
ntest = 10000     # # of test images (first of test_batch)
max_iter = 1000   # # of LinearSVC iterations (sklearn's default)
data_dir = ''     # '' = <data_dir>/cifar-10-batches-py; or that folder, or cifar-10-python.tar.gz
model_dir = ''    # '' = <repo>/models/imagenet_gan_pretrain_128f_relu_lrelu_7l_3x3_256z/
epoch = 30        # which <epoch>_discrim_params.{jl,npz} to load
out = ''          # '' = none; else a .json file receiving the results
seed = 42         # seed of lib.rng and of LinearSVC
backend = ''      # c | numba | jax | pytorch | python; '' = the fastest here

FLAGS = flags.declared(globals(), derived=['nc', 'pretrained_desc'])  # every value above is a --flag


def transform(X):
    return floatX(X)/127.5 - 1.


def bnorm_statistics(X, *discrim_params):
    """Symbolic batch means and variances of discrim's five batchnorms on X: (h_us, h_ss)."""
    # PORT: the SVHN analysis re-typed the discriminator to expose them; batchnorm_stats collects them
    with batchnorm_stats() as stats:
        discrim_layers(X, *discrim_params[:-1])
    h_us = [u for u, s in stats]
    h_ss = [s for u, s in stats]
    return h_us, h_ss


def model(X, h_us, h_ss, *discrim_params):
    """The features of images X (n, nc, 32, 32): [f (n, 16 * ndf * 14)], batchnorm given by h_us/h_ss."""
    # PORT: discrim's own layers with the inferred statistics swapped in, instead of a re-typed copy
    with batchnorm_stats(use=list(zip(h_us, h_ss))):
        h, h2, h3, h4, h5, h6 = discrim_layers(X, *discrim_params[:-1])
    h = T.flatten(dnn_pool(h, (8, 8), (8, 8)), 2)      # (n, ndf*4*4)
    h2 = T.flatten(dnn_pool(h2, (4, 4), (4, 4)), 2)    # (n, ndf*4*4)
    h3 = T.flatten(dnn_pool(h3, (4, 4), (4, 4)), 2)    # (n, ndf*2*4*4)
    h4 = T.flatten(dnn_pool(h4, (2, 2), (2, 2)), 2)    # (n, ndf*2*4*4)
    h5 = T.flatten(dnn_pool(h5, (2, 2), (2, 2)), 2)    # (n, ndf*4*4*4)
    h6 = T.flatten(dnn_pool(h6, (1, 1), (1, 1)), 2)    # (n, ndf*4*4*4)
    f = T.concatenate([h, h2, h3, h4, h5, h6], axis=1)  # (n, ndf*14*16) = (n, 28672) at ndf=128
    return [f]


def build_bnorm_stats(discrim_params, mode):
    """``_bnorm_stats(X) -> [u2, ..., u6, s2, ..., s6]``: the batch statistics of X (float32)."""
    X = T.tensor4()
    h_us, h_ss = bnorm_statistics(X, *discrim_params)
    return pytensor.function([X], h_us + h_ss, mode=mode)


def infer_bnorm_stats(_bnorm_stats, X, nbatch=128):
    """Population statistics (U, S) of uint8 images X: the mean over minibatches of ``nbatch``
    (the last one may be short, weighted like the others) of each batch's mean and variance."""
    batches = tqdm(iter_data(X, size=nbatch), total=-(-len(X) // nbatch), desc='bnorm stats',
                   leave=False, dynamic_ncols=True, file=sys.stderr)
    stats = mean_over_batches(_bnorm_stats, (transform(xmb) for xmb in batches))
    return stats[:len(stats) // 2], stats[len(stats) // 2:]


def build_features(discrim_params, U, S, mode):
    """``_features(X) -> [f]`` with batchnorm fixed to the statistics U, S."""
    X = T.tensor4()
    HUs = [sharedX(u) for u in U]
    HSs = [sharedX(s) for s in S]
    f = model(X, HUs, HSs, *discrim_params)
    return pytensor.function([X], f, mode=mode)


def features(_features, X, nbatch=128, desc='features'):
    """Features of uint8 images X (n, nc, 32, 32) in minibatches: float32 (n, d)."""
    Xfs = []
    for xmb in tqdm(iter_data(X, size=nbatch), total=-(-len(X) // nbatch), desc=desc,
                    leave=False, dynamic_ncols=True, file=sys.stderr):
        fmbs = _features(transform(xmb))
        for fmb in fmbs:
            Xfs.append(np.asarray(fmb))
    return np.concatenate(Xfs, axis=0)


def parse_cs(text):
    """The --cs flag as a list of positive floats."""
    try:
        values = [float(c) for c in text.split(',') if c.strip()]
    except ValueError:
        values = []
    if not values or min(values) <= 0:
        raise DataError(f'--cs={text}: expected comma-separated positive numbers, e.g. 0.001,0.01')
    return values


def fit_svm(c, Xt, Y):
    """A LinearSVC (L2-SVM: squared hinge loss, L2 penalty, one-vs-rest) with C=c fitted on Xt."""
    # PORT: dual=True, sklearn's default in 2015 (today's 'auto' picks the primal when n_samples >
    # n_features, as here); liblinear's shuffling is seeded from --seed.
    svm = LSVC(C=c, loss='squared_hinge', penalty='l2', dual=True, max_iter=max_iter,
               random_state=seed)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always', ConvergenceWarning)
        svm.fit(Xt, Y)
    if any(issubclass(w.category, ConvergenceWarning) for w in caught):
        tqdm.write(f'note: LinearSVC(C={c}) stopped at --max_iter={max_iter} before converging')
    return svm


def main(argv=None):
    """Run the experiment with ``--name=value`` overrides; returns the results dict."""
    config = flags.configure(globals(), FLAGS, argv, positive=['ndf', 'nbatch', 'ntrain', 'nval',
                                                               'ntest', 'max_iter', 'epoch'],
                             files=['out'])
    name = resolve_backend(backend)
    mode = get_mode(name)
    rng.set_seed(seed)
    path = model_dir or REPO / 'models' / pretrained_desc
    c_values = exit_on_data_error(parse_cs, cs)
    if not 0 < nval < ntrain:
        flags.fail(f'--nval={nval}: expected 0 < nval < ntrain ({ntrain})')
    if nbatch < 2:
        flags.fail(f'--nbatch={nbatch}: expected at least 2 (batchnorm statistics)')
    discrim_params, = exit_on_data_error(load_model, path, epoch, parts=('discrim',), nc=nc, ndf=ndf)
    trX, trY, teX, teY = exit_on_data_error(cifar10, data_dir or None, ntrain=ntrain, ntest=ntest)
    if len(trX) <= nval:
        flags.fail(f'--nval={nval}: only {len(trX)} training images, expected more')
    if len(np.unique(trY[:-nval])) < 2:
        flags.fail(f'--ntrain={ntrain} --nval={nval}: the SVM needs at least two classes among '
                   f'the {len(trX) - nval} training images')
    print(f'model: {path} epoch {epoch} (ndf={ndf}) | data: {len(trX)} train ({nval} for '
          f'choosing C), {len(teX)} test | backend: {describe_mode(name)}', flush=True)

    t = time()
    _bnorm_stats = build_bnorm_stats(discrim_params, mode)
    trU, trS = infer_bnorm_stats(_bnorm_stats, trX, nbatch=nbatch)
    _features = build_features(discrim_params, trU, trS, mode)
    trXt = features(_features, trX, nbatch=nbatch, desc='train features')
    teXt = features(_features, teX, nbatch=nbatch, desc='test features')
    t_features = time() - t
    print(f'{trXt.shape[1]} features per image ({len(trX) + len(teX)} images in '
          f'{t_features:.1f} seconds)', flush=True)

    fitX, fitY, vaXt, vaY = trXt[:-nval], trY[:-nval], trXt[-nval:], trY[-nval:]
    va_accs = []
    for c in tqdm(c_values, desc='choosing C', leave=False, dynamic_ncols=True, file=sys.stderr):
        svm = fit_svm(c, fitX, fitY)
        va_acc = metrics.accuracy_score(vaY, svm.predict(vaXt))
        tr_acc = metrics.accuracy_score(fitY, svm.predict(fitX))
        va_accs.append(va_acc)
        tqdm.write('c: %.4f train: %.2f%% valid: %.2f%%' % (c, 100*tr_acc, 100*va_acc))
    best_va_c = c_values[int(np.argmax(va_accs))]
    print('best c: %.4f' % best_va_c)

    svm = fit_svm(best_va_c, trXt, trY)
    tr_acc = metrics.accuracy_score(trY, svm.predict(trXt))
    te_acc = metrics.accuracy_score(teY, svm.predict(teXt))
    print('train: %.2f%% test: %.2f%% (accuracy; the paper: 82.8%%)' % (100*tr_acc, 100*te_acc))
    results = dict(config=config, n_features=int(trXt.shape[1]), ntrain=len(trX), nval=nval,
                   ntest=len(teX), c_values=c_values, valid_accuracy=[float(a) for a in va_accs],
                   best_c=best_va_c, train_accuracy=float(tr_acc), test_accuracy=float(te_acc),
                   feature_seconds=t_features)
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out, json.dumps(results, indent=1) + '\n')
    return results


if __name__ == '__main__':
    flags.command(main)
