"""Train the paper's DCGAN on LSUN bedrooms (section 4.1, Figs. 1 to 3).

    python lsun/train_uncond_dcgan.py --data=PATH/bedroom_train_lmdb [--name=value ...]

The original code has no LSUN script; the paper's bedroom model is its Fig. 1 generator
(z 100 -> 4x4x1024 -> 8x8x512 -> 16x16x256 -> 32x32x128 -> 64x64x3) with the discriminator
mirroring it, trained as faces/train_uncond_dcgan.py trains (the original's only unconditional
script): minibatch 128, Adam lr 0.0002 b1 0.5, L2 1e-5, uniform z. This file is that script's
model and costs, on LSUN's LMDB (lsun/load.py: 64 px min-side resize and center crop).

Samples are written after every epoch, ``samples/uncond_dcgan/<n>.png`` where n counts the
epochs before it (the original's numbering): ``0.png`` is Fig. 2 (after one pass over the data),
``4.png`` Fig. 3 (after five epochs), the paper's two points; the parameters are saved at the
same epochs. ``--drop``: keys to leave out, lsun/dedup.py's list (the paper removed near
duplicates first); by default the list lsun/dedup.py writes for --data, when there is one.
"""
import sys
from pathlib import Path

import pytensor
import pytensor.tensor as T

from lib import activations
from lib import updates
from lib import inits
from lib import rng
from lib.ops import batchnorm, deconv, dnn_conv
from lib.theano_utils import floatX, sharedX
from lib.costs import binary_crossentropy
from lib import flags, train
from lib.backend import get_mode, resolve_backend
from lib.data_image import DataError

from lsun.load import LSUN, WHERE, resolve_drop

HERE = Path(__file__).resolve().parent


def transform(X):
    # PORT: the loader already resized and center-cropped each image to npx (faces crops here)
    return floatX(X).transpose(0, 3, 1, 2)/127.5 - 1.


def inverse_transform(X):
    X = (X.reshape(-1, nc, npx, npx).transpose(0, 2, 3, 1)+1.)/2.
    return X


k = 1             # # of discrim updates for each gen update
l2 = 1e-5         # l2 weight decay
nvis = 196        # # of samples to visualize during training
b1 = 0.5          # momentum term of adam
nc = 3            # # of channels in image
nbatch = 128      # # of examples in batch
npx = 64          # # of pixels width/height of images
nz = 100          # # of dim for Z
ngf = 128         # # of gen filters in first conv layer
ndf = 128         # # of discrim filters in first conv layer
nx = npx*npx*nc   # # of dimensions in X
niter = 5         # # of iter at starting learning rate (the paper shows bedrooms after 5 epochs)
niter_decay = 0   # # of iter to linearly decay learning rate to zero
lr = 0.0002       # initial learning rate for adam
ntrain = 3033042  # # of examples to train on (LSUN bedroom_train; clamped to --data)

# PORT: run options, not in the original (which has no LSUN script).
data = ''               # LSUN's LMDB folder, e.g. bedroom_train_lmdb (required)
drop = 'auto'           # keys to leave out (lsun/dedup.py); auto = its list for --data if any; none
nval = 10000            # # of validation examples (the first training examples, as faces)
n_nnd = 100000          # # of samples for the per-epoch nnd scores (1k/10k/100k as faces)
out_dir = ''            # '' = this folder: logs/, samples/<desc>/, models/<desc>/
seed = 42               # seed of lib.rng (the original's value)
backend = ''            # c | numba | jax | pytorch | python; '' = the fastest here
resume = False          # continue from models/<desc>/latest_checkpoint.npz
overwrite = False       # replace a run already in --out_dir (else it is refused)
dry_run = False         # two minibatches of --data, then stop (smoke test)
max_updates = 0         # stop with a checkpoint after this many updates (0 = no limit)
checkpoint_every = 600.  # seconds between mid-epoch checkpoints (0 = at epoch ends only)

FLAGS = ['k', 'l2', 'nvis', 'b1', 'nc', 'nbatch', 'npx', 'nz', 'ngf', 'ndf', 'niter',
         'niter_decay', 'lr', 'ntrain', 'data', 'drop', 'nval', 'n_nnd', 'out_dir', 'seed',
         'backend', 'resume', 'overwrite', 'dry_run', 'max_updates', 'checkpoint_every']
DEFAULTS = {name: globals()[name] for name in FLAGS}

desc = 'uncond_dcgan'
save_epochs = [1, 2, 3, 4, 5, 10, 15, 20, 25]

relu = activations.Rectify()
sigmoid = activations.Sigmoid()
lrelu = activations.LeakyRectify()
tanh = activations.Tanh()
bce = binary_crossentropy

gifn = inits.Normal(scale=0.02)
difn = inits.Normal(scale=0.02)
gain_ifn = inits.Normal(loc=1., scale=0.02)
bias_ifn = inits.Constant(c=0.)


def init_params():
    """The bedroom model's parameters: (gen_params, discrim_params), drawn from lib.rng."""
    gw  = gifn((nz, ngf*8*4*4), 'gw')
    gg = gain_ifn((ngf*8*4*4), 'gg')
    gb = bias_ifn((ngf*8*4*4), 'gb')
    gw2 = gifn((ngf*8, ngf*4, 5, 5), 'gw2')
    gg2 = gain_ifn((ngf*4), 'gg2')
    gb2 = bias_ifn((ngf*4), 'gb2')
    gw3 = gifn((ngf*4, ngf*2, 5, 5), 'gw3')
    gg3 = gain_ifn((ngf*2), 'gg3')
    gb3 = bias_ifn((ngf*2), 'gb3')
    gw4 = gifn((ngf*2, ngf, 5, 5), 'gw4')
    gg4 = gain_ifn((ngf), 'gg4')
    gb4 = bias_ifn((ngf), 'gb4')
    gwx = gifn((ngf, nc, 5, 5), 'gwx')

    dw  = difn((ndf, nc, 5, 5), 'dw')
    dw2 = difn((ndf*2, ndf, 5, 5), 'dw2')
    dg2 = gain_ifn((ndf*2), 'dg2')
    db2 = bias_ifn((ndf*2), 'db2')
    dw3 = difn((ndf*4, ndf*2, 5, 5), 'dw3')
    dg3 = gain_ifn((ndf*4), 'dg3')
    db3 = bias_ifn((ndf*4), 'db3')
    dw4 = difn((ndf*8, ndf*4, 5, 5), 'dw4')
    dg4 = gain_ifn((ndf*8), 'dg4')
    db4 = bias_ifn((ndf*8), 'db4')
    dwy = difn((ndf*8*4*4, 1), 'dwy')

    gen_params = [gw, gg, gb, gw2, gg2, gb2, gw3, gg3, gb3, gw4, gg4, gb4, gwx]
    discrim_params = [dw, dw2, dg2, db2, dw3, dg3, db3, dw4, dg4, db4, dwy]
    return gen_params, discrim_params


def gen(Z, w, g, b, w2, g2, b2, w3, g3, b3, w4, g4, b4, wx):
    h = relu(batchnorm(T.dot(Z, w), g=g, b=b))                                            # (n, ngf*8*4*4)
    h = h.reshape((h.shape[0], ngf*8, 4, 4))                                              # (n, ngf*8, 4, 4)
    h2 = relu(batchnorm(deconv(h, w2, subsample=(2, 2), border_mode=(2, 2)), g=g2, b=b2))  # (n, ngf*4, 8, 8)
    h3 = relu(batchnorm(deconv(h2, w3, subsample=(2, 2), border_mode=(2, 2)), g=g3, b=b3))  # (n, ngf*2, 16, 16)
    h4 = relu(batchnorm(deconv(h3, w4, subsample=(2, 2), border_mode=(2, 2)), g=g4, b=b4))  # (n, ngf, 32, 32)
    x = tanh(deconv(h4, wx, subsample=(2, 2), border_mode=(2, 2)))                        # (n, nc, 64, 64)
    return x


def discrim(X, w, w2, g2, b2, w3, g3, b3, w4, g4, b4, wy):
    h = lrelu(dnn_conv(X, w, subsample=(2, 2), border_mode=(2, 2)))                          # (n, ndf, 32, 32)
    h2 = lrelu(batchnorm(dnn_conv(h, w2, subsample=(2, 2), border_mode=(2, 2)), g=g2, b=b2))  # (n, ndf*2, 16, 16)
    h3 = lrelu(batchnorm(dnn_conv(h2, w3, subsample=(2, 2), border_mode=(2, 2)), g=g3, b=b3))  # (n, ndf*4, 8, 8)
    h4 = lrelu(batchnorm(dnn_conv(h3, w4, subsample=(2, 2), border_mode=(2, 2)), g=g4, b=b4))  # (n, ndf*8, 4, 4)
    h4 = T.flatten(h4, 2)                                                                    # (n, ndf*8*4*4)
    y = sigmoid(T.dot(h4, wy))                                                               # (n, 1)
    return y


def build(gen_params, discrim_params, mode):
    """The costs, Adam updaters and compiled functions of faces/train_uncond_dcgan.py.

    Returns (_train_g, _train_d, _gen, g_updater, d_updater, lrt). Each training function
    returns [g_cost, d_cost, g_cost_d, d_cost_real, d_cost_gen] computed before its update.
    """
    X = T.tensor4()
    Z = T.matrix()

    gX = gen(Z, *gen_params)

    p_real = discrim(X, *discrim_params)
    p_gen = discrim(gX, *discrim_params)

    # D update: maximise log D(x) + log(1 - D(G(z))); G update: maximise log D(G(z)).
    d_cost_real = bce(p_real, T.ones(p_real.shape)).mean()
    d_cost_gen = bce(p_gen, T.zeros(p_gen.shape)).mean()
    g_cost_d = bce(p_gen, T.ones(p_gen.shape)).mean()

    d_cost = d_cost_real + d_cost_gen
    g_cost = g_cost_d

    cost = [g_cost, d_cost, g_cost_d, d_cost_real, d_cost_gen]

    lrt = sharedX(lr)
    d_updater = updates.Adam(lr=lrt, b1=b1, regularizer=updates.Regularizer(l2=l2))
    g_updater = updates.Adam(lr=lrt, b1=b1, regularizer=updates.Regularizer(l2=l2))
    d_updates = d_updater(discrim_params, d_cost)
    g_updates = g_updater(gen_params, g_cost)

    _train_g = pytensor.function([X, Z], cost, updates=g_updates, mode=mode)
    _train_d = pytensor.function([X, Z], cost, updates=d_updates, mode=mode)
    _gen = pytensor.function([Z], gX, mode=mode)
    return _train_g, _train_d, _gen, g_updater, d_updater, lrt


def main(argv=None):
    """Train with ``--name=value`` overrides; returns lib.train.fit's counters."""
    global ntrain, nval, niter, niter_decay, n_nnd, nx
    globals().update(DEFAULTS)  # PORT: every call starts from the defaults, then the flags
    config = train.configure(globals(), FLAGS, argv)
    if not data:
        flags.fail(f'--data: required. {WHERE}')
    # gen doubles 4x4 four times and discrim halves back to 4x4: 64x64 RGB images only
    if (npx, nc) != (64, 3):
        flags.fail(f'--npx={npx} --nc={nc}: this model makes and judges 64x64 RGB images (4x4 '
                   f'doubled by 4 layers, 3 channels): --npx=64 --nc=3')
    name = resolve_backend(backend, task='train')
    run = train.open_run(desc, out_dir, config, resume=resume, overwrite=overwrite,
                         default_dir=HERE)
    nx = npx*npx*nc
    if dry_run:
        # two minibatches; everything else runs as in a real epoch
        ntrain, niter, niter_decay = 2*nbatch, 1, 0
        nval, n_nnd = min(nval, nbatch), min(n_nnd, nbatch)
    mode = get_mode(name)
    rng.set_seed(seed)

    try:
        dropped, drop_path = resolve_drop(drop, data)
        tr_data = LSUN(data, npx=npx, drop=dropped)
        ntrain = min(ntrain, len(tr_data))
        if nval > len(tr_data):
            flags.fail(f'--nval={nval}: {data} has only {len(tr_data)} images')
        vaX = transform(tr_data.get(range(nval)))
        if drop_path is not None:
            print(f'left out {tr_data.n_dropped} near duplicates listed in {drop_path}', flush=True)
        elif drop == 'auto':
            print(f'no de-duplication list for {data} (the paper removed near duplicates first: '
                  f'python lsun/dedup.py --data={data})', flush=True)

        def grids(nvis, nshow):
            side = train.grid_side(nshow)
            return (side, side), (14, 14) if nvis == 196 else (side, side)

        def fetch(idx):
            imb = tr_data.get(idx)
            if not len(imb):
                raise DataError(f'{data}: no entry of a whole minibatch decodes (keys '
                                f'{tr_data.skipped[-1]!r} and others); is the database damaged?')
            return (imb,)

        def close():
            if tr_data.n_skipped:
                print(f'skipped {tr_data.n_skipped} undecodable entries of {data} (e.g. key '
                      f'{tr_data.skipped[0]!r})', flush=True)
            tr_data.close()

        return train.train_uncond(
            run=run, vaX=vaX, fetch=fetch, close=close,
            ntrain=ntrain, transform=transform, inverse_transform=inverse_transform,
            init_params=init_params, build=build, mode=mode, backend_name=name,
            draw_z=lambda n: (floatX(rng.np_rng.uniform(-1., 1., size=(n, nz))),),
            nvis=nvis, k=k, nbatch=nbatch, niter=niter, niter_decay=niter_decay, lr=lr,
            n_nnd=n_nnd, save_epochs=save_epochs, resume=resume, max_updates=max_updates,
            checkpoint_every=checkpoint_every,
            data_desc=f'LSUN {data} ({len(tr_data)} images)', model_desc=f'ngf={ngf}, ndf={ndf}, '
            f'npx={npx}', grids=grids)
    except DataError as e:
        flags.fail(e)


if __name__ == '__main__':
    flags.command(main)
