"""Train the paper's 32x32 ImageNet-1k DCGAN (the model imagenet/load_pretrained.py loads).

    python imagenet/train_uncond_dcgan.py --data=/path/to/imagenet/train [--name=value ...]

The original code released this model (models/imagenet_gan_pretrain_128f_relu_lrelu_7l_3x3_256z,
epoch 30) but not its training script; this is faces/train_uncond_dcgan.py's loop on that
architecture (gen/discrim are load_pretrained.py's). Hyperparameters, and where they come from:

- the paper, section 4 (all models): minibatch 128, weights N(0, 0.02), LeakyReLU slope 0.2,
  Adam with lr 0.0002 and beta1 0.5; section 5.1: ImageNet-1k, 32x32 min-resized center crops,
  no data augmentation;
- the released model's name and files: 128 filters, ReLU (G) / LeakyReLU (D), 7 layers, 3x3
  kernels, nz = 256, weights saved at epoch 30 (so niter = 30 at the constant learning rate);
- the original's faces script (its only unconditional training script): uniform z in [-1, 1],
  one D update per G update (k = 1), L2 weight decay 1e-5 inside Adam, the linear decay schedule.

--data is a folder of images (searched recursively; converted once to a 32x32 HDF5 cache) or
an .hdf5 file in fuel's layout. Outputs under --out_dir (default: this folder):
logs/<desc>.ndjson, samples/<desc>/<epoch>.png, models/<desc>/<epoch>_{gen,discrim}_params.npz
and a resumable checkpoint; load_pretrained.py --model_dir=models/<desc> and cifar10_svm.py
--model_dir=models/<desc> read the parameter files.
"""
from pathlib import Path

import pytensor
import pytensor.tensor as T

from lib import updates
from lib import inits
from lib import rng
from lib.theano_utils import floatX, sharedX
from lib.data_utils import center_crop
from lib.costs import binary_crossentropy
from lib import flags, train
from lib.backend import get_mode, resolve_backend
from lib.data_image import exit_on_data_error

from imagenet.load import imagenet, min_resize
from imagenet.load_pretrained import gen, discrim

HERE = Path(__file__).resolve().parent


def transform(X):
    X = [min_resize(x, npx) for x in X]
    X = [center_crop(x, npx) for x in X]
    return floatX(X).transpose(0, 3, 1, 2)/127.5 - 1.


def inverse_transform(X):
    X = (X.reshape(-1, nc, npx, npx).transpose(0, 2, 3, 1)+1.)/2.
    return X


k = 1             # # of discrim updates for each gen update
l2 = 1e-5         # l2 weight decay
nvis = 400        # # of samples to visualize during training
b1 = 0.5          # momentum term of adam
nc = 3            # # of channels in image
nbatch = 128      # # of examples in batch
npx = 32          # # of pixels width/height of images (fixed by the architecture: 4 * 2**3)
nz = 256          # # of dim for Z
ngf = 128         # # of gen filters in first conv layer
ndf = 128         # # of discrim filters in first conv layer
nx = npx*npx*nc   # # of dimensions in X
niter = 30        # # of iter at starting learning rate
niter_decay = 0   # # of iter to linearly decay learning rate to zero
lr = 0.0002       # initial learning rate for adam
ntrain = 1281167  # # of examples to train on (ImageNet-1k's training set; clamped to --data)

# PORT: run options, not in the original.
data = ''               # a folder of images (e.g. ImageNet-1k's train/) or an .hdf5 (fuel layout)
nval = 10000            # # of validation examples (the first training examples, as faces)
n_nnd = 100000          # # of samples for the per-epoch nnd scores (1k/10k/100k as faces)
out_dir = ''            # '' = this folder: logs/, samples/<desc>/, models/<desc>/
seed = 42               # seed of lib.rng (the original's value)
backend = ''            # c | numba | jax | pytorch | python; '' = the fastest here
resume = False          # continue from models/<desc>/latest_checkpoint.npz
overwrite = False       # replace a run already in --out_dir (else it is refused)
dry_run = False         # two minibatches, then stop (smoke test)
max_updates = 0         # stop with a checkpoint after this many updates (0 = no limit)
checkpoint_every = 600.  # seconds between mid-epoch checkpoints (0 = at epoch ends only)

FLAGS = ['k', 'l2', 'nvis', 'b1', 'nbatch', 'nz', 'ngf', 'ndf', 'niter', 'niter_decay', 'lr',
         'ntrain', 'data', 'nval', 'n_nnd', 'out_dir', 'seed', 'backend', 'resume',
         'overwrite', 'dry_run', 'max_updates', 'checkpoint_every']
DEFAULTS = {name: globals()[name] for name in FLAGS}

desc = 'imagenet_gan_pretrain_128f_relu_lrelu_7l_3x3_256z'
save_epochs = [1, 2, 3, 4, 5, 10, 15, 20, 25, 30, 35, 40, 45, 50, 60, 70, 80, 90, 100]

bce = binary_crossentropy

gifn = inits.Normal(scale=0.02)
difn = inits.Normal(scale=0.02)
gain_ifn = inits.Normal(loc=1., scale=0.02)
bias_ifn = inits.Constant(c=0.)


def init_params():
    """The parameters of load_pretrained's gen/discrim: (gen_params, discrim_params), from lib.rng."""
    gw  = gifn((nz, ngf*4*4*4), 'gw')
    gg = gain_ifn((ngf*4*4*4), 'gg')
    gb = bias_ifn((ngf*4*4*4), 'gb')
    gw2 = gifn((ngf*4, ngf*4, 3, 3), 'gw2')
    gg2 = gain_ifn((ngf*4), 'gg2')
    gb2 = bias_ifn((ngf*4), 'gb2')
    gw3 = gifn((ngf*4, ngf*2, 3, 3), 'gw3')
    gg3 = gain_ifn((ngf*2), 'gg3')
    gb3 = bias_ifn((ngf*2), 'gb3')
    gw4 = gifn((ngf*2, ngf*2, 3, 3), 'gw4')
    gg4 = gain_ifn((ngf*2), 'gg4')
    gb4 = bias_ifn((ngf*2), 'gb4')
    gw5 = gifn((ngf*2, ngf, 3, 3), 'gw5')
    gg5 = gain_ifn((ngf), 'gg5')
    gb5 = bias_ifn((ngf), 'gb5')
    gw6 = gifn((ngf, ngf, 3, 3), 'gw6')
    gg6 = gain_ifn((ngf), 'gg6')
    gb6 = bias_ifn((ngf), 'gb6')
    gwx = gifn((ngf, nc, 3, 3), 'gwx')

    dw  = difn((ndf, nc, 3, 3), 'dw')
    dw2 = difn((ndf, ndf, 3, 3), 'dw2')
    dg2 = gain_ifn((ndf), 'dg2')
    db2 = bias_ifn((ndf), 'db2')
    dw3 = difn((ndf*2, ndf, 3, 3), 'dw3')
    dg3 = gain_ifn((ndf*2), 'dg3')
    db3 = bias_ifn((ndf*2), 'db3')
    dw4 = difn((ndf*2, ndf*2, 3, 3), 'dw4')
    dg4 = gain_ifn((ndf*2), 'dg4')
    db4 = bias_ifn((ndf*2), 'db4')
    dw5 = difn((ndf*4, ndf*2, 3, 3), 'dw5')
    dg5 = gain_ifn((ndf*4), 'dg5')
    db5 = bias_ifn((ndf*4), 'db5')
    dw6 = difn((ndf*4, ndf*4, 3, 3), 'dw6')
    dg6 = gain_ifn((ndf*4), 'dg6')
    db6 = bias_ifn((ndf*4), 'db6')
    dwy = difn((ndf*4*4*4, 1), 'dwy')

    gen_params = [gw, gg, gb, gw2, gg2, gb2, gw3, gg3, gb3, gw4, gg4, gb4, gw5, gg5, gb5,
                  gw6, gg6, gb6, gwx]
    discrim_params = [dw, dw2, dg2, db2, dw3, dg3, db3, dw4, dg4, db4, dw5, dg5, db5,
                      dw6, dg6, db6, dwy]
    return gen_params, discrim_params


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
    if nvis < 2:
        flags.fail(f'--nvis={nvis}: expected at least 2 samples (batchnorm needs a batch)')
    if not data:
        flags.fail("--data: required (a folder of images, e.g. ImageNet-1k's train/, or an .hdf5 "
                   "file in fuel's layout)")
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

    tr_data, te_data = exit_on_data_error(imagenet, path=data or None, npx=npx)
    ntrain = min(ntrain, tr_data.num_examples)  # PORT: fuel failed mid-epoch past the split's end
    if nval > tr_data.num_examples:
        flags.fail(f'--nval={nval}: {tr_data.path} has only {tr_data.num_examples} training '
                   f'images')
    tr_handle = tr_data.open()
    vaX, = tr_data.get_data(tr_handle, slice(0, nval))
    vaX = transform(vaX)

    def grids(nvis, nshow):
        return (train.grid_side(nvis),) * 2, (train.grid_side(nvis),) * 2

    return train.train_uncond(
        run=run, vaX=vaX,
        fetch=lambda idx: tr_data.get_data(tr_handle, idx), close=lambda: tr_data.close(tr_handle),
        ntrain=ntrain, transform=transform, inverse_transform=inverse_transform,
        init_params=init_params, build=build, mode=mode, backend_name=name,
        draw_z=lambda n: (floatX(rng.np_rng.uniform(-1., 1., size=(n, nz))),),
        nvis=nvis, k=k, nbatch=nbatch, niter=niter, niter_decay=niter_decay, lr=lr, n_nnd=n_nnd,
        save_epochs=save_epochs, resume=resume, max_updates=max_updates,
        checkpoint_every=checkpoint_every,
        data_desc=f'{data} ({tr_data.path})', model_desc=f'nz={nz}, ngf={ngf}, ndf={ndf}',
        grids=grids)


if __name__ == '__main__':
    flags.command(main)
