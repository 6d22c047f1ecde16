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
from pathlib import Path
from time import time

import numpy as np

from lib import rng
from lib import gan, models64
from lib.models64 import gen, discrim
from lib.theano_utils import floatX
from lib.vis import color_grid_vis
from lib.params import save_params
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
speed_settings = True   # keep freed memory, freeze imports out of gc (lib/speed.py)
resume = False          # continue from models/<desc>/latest_checkpoint.npz
overwrite = False       # replace a run already in --out_dir (else it is refused)
dry_run = False         # two minibatches of --data, then stop (smoke test)
max_updates = 0         # stop with a checkpoint after this many updates (0 = no limit)
checkpoint_every = 600.  # seconds between mid-epoch checkpoints (0 = at epoch ends only)

FLAGS = flags.declared(globals(), derived=['nx'])  # every value above is a --flag

desc = 'uncond_dcgan'
save_epochs = [1, 2, 3, 4, 5, 10, 15, 20, 25]


def init_params():
    """The faces model's parameters (lib/models64.py) at this script's widths:
    (gen_params, discrim_params), drawn from lib.rng."""
    return models64.init_params(nz, ngf, ndf, nc)


def build(gen_params, discrim_params, mode):
    """The costs, Adam updaters and compiled functions of faces/train_uncond_dcgan.py (lib/gan.py):
    (_train_g, _train_d, _gen, g_updater, d_updater, lrt)."""
    return gan.build(gen, discrim, gen_params, discrim_params, lr=lr, b1=b1, l2=l2, mode=mode)


def main(argv=None):
    """Train with ``--name=value`` overrides; returns the loop's counters (lib.train.Loop)."""
    global ntrain, nval, niter, niter_decay, n_nnd, nx
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
    except DataError as e:
        flags.fail(e)

    def fetch(idx):
        imb = tr_data.get(idx)
        if not len(imb):
            raise DataError(f'{data}: no entry of a whole minibatch decodes (keys '
                            f'{tr_data.skipped[-1]!r} and others); is the database damaged?')
        return (imb,)

    gen_params, discrim_params = init_params()
    train.describe(run, f'LSUN {data} ({len(tr_data)} images)', ntrain, len(vaX), gen_params,
                   discrim_params, f'ngf={ngf}, ndf={ndf}, npx={npx}', name,
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
            for imb, in loop.batches(fetch):
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
    if tr_data.n_skipped:
        print(f'skipped {tr_data.n_skipped} undecodable entries of {data} (e.g. key '
              f'{tr_data.skipped[0]!r})', flush=True)
    tr_data.close()
    return loop.result


if __name__ == '__main__':
    flags.command(main)
