"""Train the paper's unconditional DCGAN on faces: the original faces/train_uncond_dcgan.py on PyTensor.

    python faces/train_uncond_dcgan.py [--name=value ...]

Every hyperparameter below can be overridden as ``--name=value``. With no ``--data`` it trains
on the embedded synthetic faces (faces/synthetic.py). Outputs: logs/uncond_dcgan.ndjson,
samples/uncond_dcgan/<epoch>.png, models/uncond_dcgan/<epoch>_{gen,discrim}_params.npz and a
resumable checkpoint, under --out_dir (default: this folder, where the original wrote them).
"""
from pathlib import Path

import numpy as np

import pytensor
import pytensor.tensor as T

from lib import activations
from lib import updates
from lib import inits
from lib import rng
from lib.ops import batchnorm, deconv, dnn_conv
from lib.theano_utils import floatX, sharedX
from lib.data_utils import center_crop
from lib.costs import binary_crossentropy
from lib import flags, train
from lib.backend import get_mode, resolve_backend
from lib.data_image import exit_on_data_error

from faces.load import faces

HERE = Path(__file__).resolve().parent


def transform(X):
    X = [center_crop(x, npx) for x in X]
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
niter = 25        # # of iter at starting learning rate
niter_decay = 0   # # of iter to linearly decay learning rate to zero
lr = 0.0002       # initial learning rate for adam
ntrain = 350000   # # of examples to train on

# PORT: run options, not in the original (which hard-coded its data file and output places).
data = ''               # '' = synthetic faces; else an .hdf5 in fuel's layout or a folder of images
n_synthetic = 50000     # # of synthetic faces generated (and cached) when --data is not given
nval = 10000            # # of validation examples (the first training examples, as the original)
n_nnd = 100000          # # of samples for the per-epoch nnd scores (1k/10k/100k as the original)
out_dir = ''            # '' = this folder: logs/, samples/<desc>/, models/<desc>/ as the original
seed = 42               # seed of lib.rng (the original's value)
backend = ''            # c | numba | jax | pytorch | python; '' = the fastest here
resume = False          # continue from models/<desc>/latest_checkpoint.npz
overwrite = False       # replace a run already in --out_dir (else it is refused)
dry_run = False         # two minibatches on tiny data, then stop (smoke test)
max_updates = 0         # stop with a checkpoint after this many updates (0 = no limit)
checkpoint_every = 600.  # seconds between mid-epoch checkpoints (0 = at epoch ends only)
n_eval = 1000           # # of faces for the per-epoch yardstick (faces/yardstick.py; 0 = off)

FLAGS = ['k', 'l2', 'nvis', 'b1', 'nc', 'nbatch', 'npx', 'nz', 'ngf', 'ndf', 'niter',
         'niter_decay', 'lr', 'ntrain', 'data', 'n_synthetic', 'nval', 'n_nnd', 'out_dir',
         'seed', 'backend', 'resume', 'overwrite', 'dry_run', 'max_updates', 'checkpoint_every',
         'n_eval']

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
    """The original's parameter block: (gen_params, discrim_params), drawn from lib.rng."""
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
    """The original's costs, Adam updaters and compiled functions.

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
    global ntrain, nval, niter, niter_decay, n_synthetic, n_nnd, nvis, nx, n_eval
    config = train.configure(globals(), FLAGS, argv)
    # gen doubles 4x4 four times and discrim halves back to 4x4: 64x64 RGB images only
    if (npx, nc) != (64, 3):
        flags.fail(f'--npx={npx} --nc={nc}: this model makes and judges 64x64 RGB images (4x4 '
                   f'doubled by 4 layers, 3 channels): --npx=64 --nc=3')
    name = resolve_backend(backend, task='train')
    nx = npx*npx*nc
    if dry_run:
        # two minibatches on a tiny synthetic set; everything else runs as in a real epoch
        ntrain, niter, niter_decay = 2*nbatch, 1, 0
        n_synthetic = min(n_synthetic, 3*nbatch) if not data else n_synthetic
        nval, n_nnd = min(nval, nbatch), min(n_nnd, nbatch)
        n_eval = min(n_eval, nbatch)
    from faces.yardstick import K
    if 0 < n_eval <= K:  # else its k-nearest-neighbour measures fail at the first epoch end
        flags.fail(f'--n_eval={n_eval}{" (--dry_run: at most --nbatch)" if dry_run else ""}: '
                   f'the yardstick needs more than {K} faces (0 turns it off)')
    run = train.open_run(desc, out_dir, config, resume=resume, overwrite=overwrite,
                         default_dir=HERE)
    mode = get_mode(name)
    rng.set_seed(seed)

    tr_data, te_data = exit_on_data_error(faces, path=data or None, npx=npx,
                                          n_synthetic=n_synthetic)
    ntrain = min(ntrain, tr_data.num_examples)  # PORT: fuel failed mid-epoch past the split's end
    if nval > tr_data.num_examples:
        flags.fail(f'--nval={nval}: {tr_data.path} has only {tr_data.num_examples} training '
                   f'images')
    tr_handle = tr_data.open()
    vaX, = tr_data.get_data(tr_handle, slice(0, nval))
    vaX = transform(vaX)

    measures = yardstick_measures(mode)

    def grids(nvis, nshow):
        side = train.grid_side(nshow)
        return (side, side), (14, 14) if nvis == 196 else (side, side)

    return train.train_uncond(
        run=run, vaX=vaX,
        fetch=lambda idx: tr_data.get_data(tr_handle, idx), close=lambda: tr_data.close(tr_handle),
        ntrain=ntrain, transform=transform, inverse_transform=inverse_transform,
        init_params=init_params, build=build, mode=mode, backend_name=name,
        draw_z=lambda n: (floatX(rng.np_rng.uniform(-1., 1., size=(n, nz))),),
        nvis=nvis, k=k, nbatch=nbatch, niter=niter, niter_decay=niter_decay, lr=lr, n_nnd=n_nnd,
        save_epochs=save_epochs, resume=resume, max_updates=max_updates,
        checkpoint_every=checkpoint_every,
        data_desc=f'{data or "synthetic faces"} ({tr_data.path})',
        model_desc=f'ngf={ngf}, ndf={ndf}, npx={npx}', grids=grids, measures=measures)


def yardstick_measures(mode):
    """``measures(_gen)`` for the training log: the yardstick on ``n_eval`` faces, or None.

    The faces' z are fixed (``RandomState(0)``), so epochs are compared on the same z, and
    nothing is drawn from lib.rng: the training's random stream is the original's.
    """
    # PORT: the original logged only the nnd scores; the yardstick is this project's measure.
    if n_eval <= 0:
        return None
    from faces import attrnet, yardstick
    if (npx, nc) != (attrnet.NPX, 3):
        print(f'yardstick off: it measures {attrnet.NPX}x{attrnet.NPX} RGB faces, this model '
              f'makes {npx}x{npx}x{nc}', flush=True)
        return None
    ys = exit_on_data_error(yardstick.make, n_eval, data, mode=mode)
    if not ys.labelled:
        print(f'yardstick: {data} has no attribute labels, so only fd, precision and recall are '
              f'logged', flush=True)
    z = floatX(np.random.RandomState(0).uniform(-1., 1., size=(n_eval, nz)))

    def measures(_gen):
        gX = np.concatenate([np.asarray(_gen(z[i:i + nbatch])) for i in range(0, n_eval, nbatch)])
        return {k: v for k, v in ys.measure(gX).items() if not k.endswith('_real')}
    return measures


if __name__ == '__main__':
    flags.command(main)
