"""Train the paper's class-conditional DCGAN on MNIST (appendix, figure "MNIST"): the original
mnist/train_cond_dcgan.py on PyTensor.

    python mnist/train_cond_dcgan.py [--name=value ...]

Every hyperparameter below can be overridden as ``--name=value``. Reads the MNIST IDX files from
--data_dir (default: the project's data folder); without them it runs on scikit-learn's bundled
8x8 digits upscaled to 28x28 (NOT MNIST; see mnist/load.py). Outputs, under --out_dir (default:
this folder, where the original wrote them): logs/cond_dcgan.ndjson (every 5 epochs: nearest-
neighbour classification accuracy and distance of generated samples on the validation set),
samples/cond_dcgan/<epoch>.png (10x20 grid, one class per row), samples/cond_dcgan_etl_test.png,
models/cond_dcgan/<epoch>_{gen,discrim}_params.npz and a resumable checkpoint.
"""
from pathlib import Path
from time import time

import numpy as np
import pytensor.tensor as T

from lib import activations
from lib import gan
from lib import inits
from lib import rng
from lib.vis import grayscale_grid_vis
from lib.ops import batchnorm, conv_cond_concat, deconv, dnn_conv
from lib.theano_utils import floatX
from lib.data_utils import OneHot
from lib.metrics import StreamedNNDScores
from lib.params import save_params
from lib import flags, train
from lib.backend import get_mode, resolve_backend
from lib.data_image import exit_on_data_error

from mnist.load import has_mnist, mnist_with_valid_set

HERE = Path(__file__).resolve().parent

k = 1             # # of discrim updates for each gen update
l2 = 2.5e-5       # l2 weight decay
b1 = 0.5          # momentum term of adam
nc = 1            # # of channels in image
ny = 10           # # of classes
nbatch = 128      # # of examples in batch
npx = 28          # # of pixels width/height of images
nz = 100          # # of dim for Z
ngfc = 1024       # # of gen units for fully connected layers
ndfc = 1024       # # of discrim units for fully connected layers
ngf = 64          # # of gen filters in first conv layer
ndf = 64          # # of discrim filters in first conv layer
nx = npx*npx*nc   # # of dimensions in X
niter = 100       # # of iter at starting learning rate
niter_decay = 100  # # of iter to linearly decay learning rate to zero
lr = 0.0002       # initial learning rate for adam

# PORT: run options, not in the original (which hard-coded its data folder and output places).
data_dir = ''           # '' = the project's data folder, or the 8x8 digits stand-in without MNIST
nval = 0                # # of validation examples; 0 = the original's 10000 of 60000 (1/6)
n_samples = 100000      # # of samples for the nnc/nnd scores every 5 epochs (1k/10k/100k as the original)
out_dir = ''            # '' = this folder: logs/, samples/<desc>/, models/<desc>/ as the original
seed = 42               # seed of lib.rng (the original's value)
backend = ''            # c | numba | jax | pytorch | python; '' = the fastest here
speed_settings = True   # keep freed memory, freeze imports out of gc (lib/speed.py)
resume = False          # continue from models/<desc>/latest_checkpoint.npz
overwrite = False       # replace a run already in --out_dir (else it is refused)
dry_run = False         # two minibatches, then stop (smoke test)
max_updates = 0         # stop with a checkpoint after this many updates (0 = no limit)
checkpoint_every = 600.  # seconds between mid-epoch checkpoints (0 = at epoch ends only)

FLAGS = flags.declared(globals(), derived=['nx'])  # every value above is a --flag


def transform(X):
    return (floatX(X)/255.).reshape(-1, nc, npx, npx)


def inverse_transform(X):
    X = X.reshape(-1, npx, npx)
    return X


desc = 'cond_dcgan'
save_epochs = [1, 5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 150, 200]

relu = activations.Rectify()
sigmoid = activations.Sigmoid()
lrelu = activations.LeakyRectify()

gifn = inits.Normal(scale=0.02)
difn = inits.Normal(scale=0.02)


def init_params():
    """The original's parameter block: (gen_params, discrim_params), drawn from lib.rng."""
    gw  = gifn((nz+ny, ngfc), 'gw')
    gw2 = gifn((ngfc+ny, ngf*2*7*7), 'gw2')
    gw3 = gifn((ngf*2+ny, ngf, 5, 5), 'gw3')
    gwx = gifn((ngf+ny, nc, 5, 5), 'gwx')

    dw  = difn((ndf, nc+ny, 5, 5), 'dw')
    dw2 = difn((ndf*2, ndf+ny, 5, 5), 'dw2')
    dw3 = difn((ndf*2*7*7+ny, ndfc), 'dw3')
    dwy = difn((ndfc+ny, 1), 'dwy')

    gen_params = [gw, gw2, gw3, gwx]
    discrim_params = [dw, dw2, dw3, dwy]
    return gen_params, discrim_params


def gen(Z, Y, w, w2, w3, wx):
    yb = Y.dimshuffle(0, 1, 'x', 'x')                                                # (n, ny, 1, 1)
    Z = T.concatenate([Z, Y], axis=1)                                                # (n, nz+ny)
    h = relu(batchnorm(T.dot(Z, w)))                                                 # (n, ngfc)
    h = T.concatenate([h, Y], axis=1)                                                # (n, ngfc+ny)
    h2 = relu(batchnorm(T.dot(h, w2)))                                               # (n, ngf*2*7*7)
    h2 = h2.reshape((h2.shape[0], ngf*2, 7, 7))                                      # (n, ngf*2, 7, 7)
    h2 = conv_cond_concat(h2, yb)                                                    # (n, ngf*2+ny, 7, 7)
    h3 = relu(batchnorm(deconv(h2, w3, subsample=(2, 2), border_mode=(2, 2))))       # (n, ngf, 14, 14)
    h3 = conv_cond_concat(h3, yb)                                                    # (n, ngf+ny, 14, 14)
    x = sigmoid(deconv(h3, wx, subsample=(2, 2), border_mode=(2, 2)))                # (n, nc, 28, 28)
    return x


def discrim(X, Y, w, w2, w3, wy):
    yb = Y.dimshuffle(0, 1, 'x', 'x')                                                # (n, ny, 1, 1)
    X = conv_cond_concat(X, yb)                                                      # (n, nc+ny, 28, 28)
    h = lrelu(dnn_conv(X, w, subsample=(2, 2), border_mode=(2, 2)))                  # (n, ndf, 14, 14)
    h = conv_cond_concat(h, yb)                                                      # (n, ndf+ny, 14, 14)
    h2 = lrelu(batchnorm(dnn_conv(h, w2, subsample=(2, 2), border_mode=(2, 2))))     # (n, ndf*2, 7, 7)
    h2 = T.flatten(h2, 2)                                                            # (n, ndf*2*7*7)
    h2 = T.concatenate([h2, Y], axis=1)                                              # (n, ndf*2*7*7+ny)
    h3 = lrelu(batchnorm(T.dot(h2, w3)))                                             # (n, ndfc)
    h3 = T.concatenate([h3, Y], axis=1)                                              # (n, ndfc+ny)
    y = sigmoid(T.dot(h3, wy))                                                       # (n, 1)
    return y


def build(gen_params, discrim_params, mode):
    """The original's costs, Adam updaters and compiled functions (lib/gan.py), conditioned on
    the class matrix Y: (_train_g, _train_d, _gen, g_updater, d_updater, lrt). ``_train_g(X, Z,
    Y)`` and ``_train_d(X, Z, Y)`` return [g_cost, d_cost, g_cost_d, d_cost_real, d_cost_gen]
    computed before their update; ``_gen(Z, Y)`` returns samples in [0, 1]."""
    Y = T.matrix()
    return gan.build(gen, discrim, gen_params, discrim_params, lr=lr, b1=b1, l2=l2, mode=mode,
                     given=[Y])


def class_grid(X, Y, n_per_class=20):
    """``n_per_class`` random images (lib.rng.py_rng) of each class 0..ny-1, class-major; a class
    with fewer images is padded with blanks so every class keeps its own row."""
    tr_idxs = np.arange(len(X))
    rows = []
    for y in range(ny):
        # PORT: random.sample needs a sequence in Python 3 (the original passed a numpy array).
        idxs = rng.py_rng.sample(list(tr_idxs[Y == y]), min(n_per_class, int((Y == y).sum())))
        row = [X[i] for i in idxs] + [np.zeros_like(X[0])] * (n_per_class - len(idxs))
        rows.append(row)
    return np.asarray(rows).reshape(ny*n_per_class, -1)


def main(argv=None):
    global ntrain, nval, ntest, niter, niter_decay, n_samples, nx
    config = train.configure(globals(), FLAGS, argv, non_negative=['nval'])
    nx = npx*npx*nc
    if (npx, nc, ny) != (28, 1, 10):
        flags.fail(f'--npx={npx} --nc={nc} --ny={ny}: MNIST digits are 28x28 grayscale in 10 '
                   'classes (npx=28, nc=1, ny=10)')
    name = resolve_backend(backend)
    run = train.open_run(desc, out_dir, config, resume=resume, overwrite=overwrite,
                         default_dir=HERE)
    if dry_run:
        # two minibatches; everything else runs as in a real epoch (scores over 1k samples)
        niter, niter_decay = 1, 0
        n_samples = min(n_samples, 1000)
    mode = get_mode(name)
    rng.set_seed(seed)

    trX, vaX, teX, trY, vaY, teY = exit_on_data_error(mnist_with_valid_set,
                                                      data_dir=data_dir or None, nval=nval or None)

    vaX = floatX(vaX)/255.

    ntrain, nval, ntest = len(trX), len(vaX), len(teX)
    if dry_run:
        ntrain = min(ntrain, 2*nbatch)

    gen_params, discrim_params = init_params()
    source = 'MNIST' if data_dir or has_mnist() else "scikit-learn's 8x8 digits (NOT MNIST)"
    train.describe(run, source, ntrain, nval, gen_params, discrim_params,
                   f'ngf={ngf}, ndf={ndf}, ngfc={ngfc}, ndfc={ndfc}', name,
                   speed=speed_settings)

    print('COMPILING')
    t = time()
    _train_g, _train_d, _gen, g_updater, d_updater, lrt = build(gen_params, discrim_params, mode)
    print('%.2f seconds to compile theano functions' % (time()-t))

    trX_vis = class_grid(trX, trY)
    trX_vis = inverse_transform(transform(trX_vis))
    grayscale_grid_vis(trX_vis, (10, 20), str(run.samples_dir.parent / f'{desc}_etl_test.png'))

    sample_zmb = floatX(rng.np_rng.uniform(-1., 1., size=(200, nz)))
    sample_ymb = floatX(OneHot(np.asarray([[i for _ in range(20)] for i in range(10)]).flatten(), ny))

    print(desc.upper())
    groups = dict(gen=gen_params, discrim=discrim_params, g_opt=g_updater.state,
                  d_opt=d_updater.state, lrt=[lrt])
    with train.Loop(run, groups, ntrain=ntrain, nbatch=nbatch, nepochs=niter+niter_decay) as loop:
        for epoch in loop.epochs():
            for imb, ymb in loop.batches(lambda idx: (trX[idx], trY[idx])):
                imb = transform(imb)
                ymb = floatX(OneHot(ymb, ny))
                zmb = floatX(rng.np_rng.uniform(-1., 1., size=(len(imb), nz)))
                if loop.n_updates % (k+1) == 0:
                    loop.cost = _train_g(imb, zmb, ymb)
                else:
                    loop.cost = _train_d(imb, zmb, ymb)
            if epoch % 5 == 0:  # the original's (epoch-1) % 5 == 0 with epoch counted from 1
                scores = nn_scores(_gen, vaX, vaY)
                shown = ' '.join(('%.2f' if key.endswith('acc') else '%.4f') % v if v is not None
                                 else '-' for key, v in scores.items())
                loop.log('%.0f %s %.4f %.4f' % (epoch+1, shown, *loop.cost[:2]), **scores)
            samples = np.asarray(_gen(sample_zmb, sample_ymb))
            grayscale_grid_vis(inverse_transform(samples), (10, 20),
                               str(run.samples_dir / f'{epoch}.png'))
            n_epochs = epoch + 1
            if n_epochs > niter:
                lrt.set_value(floatX(lrt.get_value() - lr/niter_decay))
            if n_epochs in save_epochs:
                save_params(gen_params, run.model_dir / f'{n_epochs}_gen_params.npz')
                save_params(discrim_params, run.model_dir / f'{n_epochs}_discrim_params.npz')
    return loop.result


def nn_scores(_gen, vaX, vaY):
    """The original's every-5-epochs scores of ``n_samples`` samples of random classes against
    the validation digits: {'1k_va_nnc_acc': ..., '100k_va_nnc_acc': ..., '1k_va_nnd': ...,
    '100k_va_nnd': ...}; sizes past the samples are None."""
    # PORT: the original kept all the samples (100k digits: 313 MB) and scored prefixes of them;
    # here they stream through the same scores in blocks (lib.metrics.StreamedNNDScores), and
    # scores over more samples than --n_samples generated are logged as null.
    stream = StreamedNNDScores(vaX, (1000, 10000, 100000), metric='euclidean', teY=vaY)
    for m in train.gen_sizes(n_samples):
        ymb = floatX(OneHot(rng.np_rng.randint(0, 10, m), ny))
        zmb = floatX(rng.np_rng.uniform(-1., 1., size=(m, nz)))
        stream.add(np.asarray(_gen(zmb, ymb)), np.argmax(ymb, axis=1))
    nnc = {f'{n // 1000}k_va_nnc_acc': v for n, v in stream.nnc().items()}
    nnd = {f'{n // 1000}k_va_nnd': v for n, v in stream.scores().items()}
    return {**nnc, **nnd}


if __name__ == '__main__':
    flags.command(main)
