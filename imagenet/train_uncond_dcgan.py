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
from time import time

import numpy as np

from lib import gan
from lib import inits
from lib import rng
from lib.theano_utils import floatX
from lib.data_utils import center_crop
from lib.vis import color_grid_vis
from lib.params import save_params
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
speed_settings = True   # keep freed memory, freeze imports out of gc (lib/speed.py)
resume = False          # continue from models/<desc>/latest_checkpoint.npz
overwrite = False       # replace a run already in --out_dir (else it is refused)
dry_run = False         # two minibatches, then stop (smoke test)
max_updates = 0         # stop with a checkpoint after this many updates (0 = no limit)
checkpoint_every = 600.  # seconds between mid-epoch checkpoints (0 = at epoch ends only)

FLAGS = flags.declared(globals(), derived=['nx', 'nc', 'npx'])  # every value above is a --flag

desc = 'imagenet_gan_pretrain_128f_relu_lrelu_7l_3x3_256z'
save_epochs = [1, 2, 3, 4, 5, 10, 15, 20, 25, 30, 35, 40, 45, 50, 60, 70, 80, 90, 100]

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
    """The costs, Adam updaters and compiled functions of faces/train_uncond_dcgan.py (lib/gan.py):
    (_train_g, _train_d, _gen, g_updater, d_updater, lrt)."""
    return gan.build(gen, discrim, gen_params, discrim_params, lr=lr, b1=b1, l2=l2, mode=mode)


def main(argv=None):
    """Train with ``--name=value`` overrides; returns the loop's counters (lib.train.Loop)."""
    global ntrain, nval, niter, niter_decay, n_nnd, nx
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

    gen_params, discrim_params = init_params()
    train.describe(run, f'{data} ({tr_data.path})', ntrain, len(vaX), gen_params, discrim_params,
                   f'nz={nz}, ngf={ngf}, ndf={ndf}', name,
                   speed=speed_settings)

    print('COMPILING')
    t = time()
    _train_g, _train_d, _gen, g_updater, d_updater, lrt = build(gen_params, discrim_params, mode)
    print('%.2f seconds to compile theano functions' % (time()-t))

    vis_idxs = rng.py_rng.sample(range(len(vaX)), min(nvis, len(vaX)))
    color_grid_vis(inverse_transform(vaX[vis_idxs]), (train.grid_side(len(vis_idxs)),)*2,
                   str(run.samples_dir.parent / f'{desc}_etl_test.png'))

    sample_zmb = floatX(rng.np_rng.uniform(-1., 1., size=(nvis, nz)))

    def gen_samples(n):
        return _gen(floatX(rng.np_rng.uniform(-1., 1., size=(n, nz))))

    print(desc.upper())
    groups = dict(gen=gen_params, discrim=discrim_params, g_opt=g_updater.state,
                  d_opt=d_updater.state, lrt=[lrt])
    with train.Loop(run, groups, ntrain=ntrain, nbatch=nbatch, nepochs=niter+niter_decay) as loop:
        for epoch in loop.epochs():
            for imb, in loop.batches(lambda idx: tr_data.get_data(tr_handle, idx)):
                imb = transform(imb)
                zmb = floatX(rng.np_rng.uniform(-1., 1., size=(len(imb), nz)))
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
    tr_data.close(tr_handle)
    return loop.result


if __name__ == '__main__':
    flags.command(main)
