"""Train the paper's unconditional all-convolutional DCGAN on SVHN (section 5.1.2), on PyTensor.

    python svhn/train_uncond_dcgan.py [--name=value ...]

The original repository released this model's weights
(models/svhn_unsup_all_conv_dcgan_100z_gaussian_lr_0.0005_64mb/200_{gen,discrim}_params.jl) and
the analysis that uses them, but not its training script. This script is faces/train_uncond_dcgan.py
with the architecture read off those weights (32x32 images: gen 4x4x256 -> 8x8x128 -> 16x16x64 ->
32x32x3, discrim 64 -> 128 -> 256 channels) and the settings its name records (100-d Gaussian z,
lr 0.0005, minibatches of 64). Needs train_32x32.mat and test_32x32.mat (see svhn/load.py).

Outputs, under --out_dir (default: this folder): logs/<desc>.ndjson, samples/<desc>/<epoch>.png and
models/<desc>/<epoch>_{gen,discrim}_params.npz, the layout svhn/svhn_semisup_analysis.py loads.
"""
from pathlib import Path
from time import time

import numpy as np
import pytensor.tensor as T

from lib import activations
from lib import gan
from lib import inits
from lib import rng
from lib.ops import batchnorm, deconv, dnn_conv
from lib.theano_utils import floatX
from lib.vis import color_grid_vis
from lib.params import save_params
from lib import flags, train
from lib.backend import get_mode, resolve_backend
from lib.data_image import exit_on_data_error

from svhn.load import svhn_with_valid_set

HERE = Path(__file__).resolve().parent


def transform(X):
    return floatX(X)/127.5 - 1.


def inverse_transform(X):
    X = (X.reshape(-1, nc, npx, npx).transpose(0, 2, 3, 1)+1.)/2.
    return X


k = 1             # # of discrim updates for each gen update
l2 = 1e-5         # l2 weight decay
nvis = 196        # # of samples to visualize during training
b1 = 0.5          # momentum term of adam
nc = 3            # # of channels in image
nbatch = 64       # # of examples in batch
npx = 32          # # of pixels width/height of images
nz = 100          # # of dim for Z
ngf = 64          # # of gen filters in last conv layer (ngf*4 at 4x4, as the released weights)
ndf = 64          # # of discrim filters in first conv layer
nx = npx*npx*nc   # # of dimensions in X
niter = 200       # # of iter at starting learning rate
niter_decay = 0   # # of iter to linearly decay learning rate to zero
lr = 0.0005       # initial learning rate for adam
ntrain = 1000000  # # of examples to train on (at most the training set)

# PORT: run options, not in the original (which hard-coded its data folder and output places).
data_dir = ''           # '' = the project's data folder (lib.config); holds train_32x32.mat, ...
extra = False           # also train on extra_32x32.mat (the released weights do not say)
nval = 10000            # # of validation examples split off train_32x32 (as the analysis)
n_nnd = 100000          # # of samples for the per-epoch nnd scores (1k/10k/100k as faces)
out_dir = ''            # '' = this folder: logs/, samples/<desc>/, models/<desc>/
seed = 42               # seed of lib.rng (the original's value)
backend = ''            # c | numba | jax | pytorch | python; '' = the fastest here
speed_settings = True   # keep freed memory, freeze imports out of gc (lib/speed.py)
resume = False          # continue from models/<desc>/latest_checkpoint.npz
overwrite = False       # replace a run already in --out_dir (else it is refused)
dry_run = False         # two minibatches on tiny data, then stop (smoke test)
max_updates = 0         # stop with a checkpoint after this many updates (0 = no limit)
checkpoint_every = 600.  # seconds between mid-epoch checkpoints (0 = at epoch ends only)

FLAGS = flags.declared(globals(), derived=['nx'])  # every value above is a --flag

desc = 'svhn_unsup_all_conv_dcgan_100z_gaussian_lr_0.0005_64mb'
save_epochs = [1, 5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 150, 200]

relu = activations.Rectify()
sigmoid = activations.Sigmoid()
lrelu = activations.LeakyRectify()
tanh = activations.Tanh()

gifn = inits.Normal(scale=0.02)
difn = inits.Normal(scale=0.02)
gain_ifn = inits.Normal(loc=1., scale=0.02)
bias_ifn = inits.Constant(c=0.)


def init_params(nz, ngf, ndf, nc):
    """The parameter block at the given widths: (gen_params, discrim_params), drawn from
    lib.rng, in the order and with the shapes of the released 200_{gen,discrim}_params.jl."""
    gw  = gifn((nz, ngf*4*4*4), 'gw')
    gg = gain_ifn((ngf*4*4*4), 'gg')
    gb = bias_ifn((ngf*4*4*4), 'gb')
    gw2 = gifn((ngf*4, ngf*2, 5, 5), 'gw2')
    gg2 = gain_ifn((ngf*2), 'gg2')
    gb2 = bias_ifn((ngf*2), 'gb2')
    gw3 = gifn((ngf*2, ngf, 5, 5), 'gw3')
    gg3 = gain_ifn((ngf), 'gg3')
    gb3 = bias_ifn((ngf), 'gb3')
    gwx = gifn((ngf, nc, 5, 5), 'gwx')

    dw  = difn((ndf, nc, 5, 5), 'dw')
    dw2 = difn((ndf*2, ndf, 5, 5), 'dw2')
    dg2 = gain_ifn((ndf*2), 'dg2')
    db2 = bias_ifn((ndf*2), 'db2')
    dw3 = difn((ndf*4, ndf*2, 5, 5), 'dw3')
    dg3 = gain_ifn((ndf*4), 'dg3')
    db3 = bias_ifn((ndf*4), 'db3')
    dwy = difn((ndf*4*4*4, 1), 'dwy')

    gen_params = [gw, gg, gb, gw2, gg2, gb2, gw3, gg3, gb3, gwx]
    discrim_params = [dw, dw2, dg2, db2, dw3, dg3, db3, dwy]
    return gen_params, discrim_params


def gen(Z, w, g, b, w2, g2, b2, w3, g3, b3, wx):
    h = relu(batchnorm(T.dot(Z, w), g=g, b=b))                                            # (n, ngf*4*4*4)
    # PORT: ngf*4 read off w2 (a constant for shared parameters), not the script's ngf
    h = h.reshape((h.shape[0], w2.shape[0], 4, 4))                                        # (n, ngf*4, 4, 4)
    h2 = relu(batchnorm(deconv(h, w2, subsample=(2, 2), border_mode=(2, 2)), g=g2, b=b2))  # (n, ngf*2, 8, 8)
    h3 = relu(batchnorm(deconv(h2, w3, subsample=(2, 2), border_mode=(2, 2)), g=g3, b=b3))  # (n, ngf, 16, 16)
    x = tanh(deconv(h3, wx, subsample=(2, 2), border_mode=(2, 2)))                        # (n, nc, 32, 32)
    return x


def discrim(X, w, w2, g2, b2, w3, g3, b3, wy):
    h = lrelu(dnn_conv(X, w, subsample=(2, 2), border_mode=(2, 2)))                          # (n, ndf, 16, 16)
    h2 = lrelu(batchnorm(dnn_conv(h, w2, subsample=(2, 2), border_mode=(2, 2)), g=g2, b=b2))  # (n, ndf*2, 8, 8)
    h3 = lrelu(batchnorm(dnn_conv(h2, w3, subsample=(2, 2), border_mode=(2, 2)), g=g3, b=b3))  # (n, ndf*4, 4, 4)
    h3 = T.flatten(h3, 2)                                                                    # (n, ndf*4*4*4)
    y = sigmoid(T.dot(h3, wy))                                                               # (n, 1)
    return y


def build(gen_params, discrim_params, mode):
    """The costs, Adam updaters and compiled functions of faces/train_uncond_dcgan.py (lib/gan.py):
    (_train_g, _train_d, _gen, g_updater, d_updater, lrt)."""
    return gan.build(gen, discrim, gen_params, discrim_params, lr=lr, b1=b1, l2=l2, mode=mode)


def main(argv=None):
    global ntrain, nval, niter, niter_decay, n_nnd, nvis, nx
    config = train.configure(globals(), FLAGS, argv)
    nx = npx*npx*nc
    if npx != 32 or nc != 3:
        flags.fail(f'--npx={npx} --nc={nc}: SVHN images are 32x32 RGB (npx=32, nc=3)')
    name = resolve_backend(backend, task='train')
    run = train.open_run(desc, out_dir, config, resume=resume, overwrite=overwrite,
                         default_dir=HERE)
    if dry_run:
        # two minibatches on the first images; everything else runs as in a real epoch
        ntrain, niter, niter_decay = 2*nbatch, 1, 0
        nval, n_nnd, nvis = min(nval, nbatch), min(n_nnd, nbatch), min(nvis, nbatch)
    mode = get_mode(name)
    rng.set_seed(seed)

    loaded = exit_on_data_error(svhn_with_valid_set, extra=extra, data_dir=data_dir or None,
                                nval=nval)
    trX, vaX = loaded[0], loaded[1]
    ntrain = min(ntrain, len(trX))
    vaX = transform(vaX)

    gen_params, discrim_params = init_params(nz, ngf, ndf, nc)
    train.describe(run, f'SVHN{" + extra" if extra else ""} ({data_dir or "default data folder"})',
                   ntrain, len(vaX), gen_params, discrim_params, f'ngf={ngf}, ndf={ndf}', name,
                   speed=speed_settings)

    print('COMPILING')
    t = time()
    _train_g, _train_d, _gen, g_updater, d_updater, lrt = build(gen_params, discrim_params, mode)
    print('%.2f seconds to compile theano functions' % (time()-t))

    vis_idxs = rng.py_rng.sample(range(len(vaX)), min(nvis, len(vaX)))
    color_grid_vis(inverse_transform(vaX[vis_idxs]), (train.grid_side(len(vis_idxs)),)*2,
                   str(run.samples_dir.parent / f'{desc}_etl_test.png'))

    # z ~ N(0, 1): the 'gaussian' of the model's name (faces and mnist draw uniform z)
    sample_zmb = floatX(rng.np_rng.normal(0., 1., size=(nvis, nz)))

    def gen_samples(n):
        return _gen(floatX(rng.np_rng.normal(0., 1., size=(n, nz))))

    print(desc.upper())
    groups = dict(gen=gen_params, discrim=discrim_params, g_opt=g_updater.state,
                  d_opt=d_updater.state, lrt=[lrt])
    with train.Loop(run, groups, ntrain=ntrain, nbatch=nbatch, nepochs=niter+niter_decay) as loop:
        for epoch in loop.epochs():
            for imb, in loop.batches(lambda idx: (trX[idx],)):
                imb = transform(imb)
                zmb = floatX(rng.np_rng.normal(0., 1., size=(len(imb), nz)))
                if loop.n_updates % (k+1) == 0:
                    loop.cost = _train_g(imb, zmb)
                else:
                    loop.cost = _train_d(imb, zmb)
            loop.log(**train.nnd_scores(vaX, n_nnd, gen_samples))
            samples = np.asarray(_gen(sample_zmb))
            color_grid_vis(inverse_transform(samples), (train.grid_side(nvis),)*2,
                           str(run.samples_dir / f'{epoch}.png'))
            n_epochs = epoch + 1
            if n_epochs > niter:
                lrt.set_value(floatX(lrt.get_value() - lr/niter_decay))
            if n_epochs in save_epochs:
                save_params(gen_params, run.model_dir / f'{n_epochs}_gen_params.npz')
                save_params(discrim_params, run.model_dir / f'{n_epochs}_discrim_params.npz')
    return loop.result


if __name__ == '__main__':
    flags.command(main)
