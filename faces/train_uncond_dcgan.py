"""Train the paper's unconditional DCGAN on faces: the original faces/train_uncond_dcgan.py on PyTensor.

    python faces/train_uncond_dcgan.py [--name=value ...]

Every hyperparameter below can be overridden as ``--name=value``. With no ``--data`` it trains
on the embedded synthetic faces (faces/synthetic.py). Outputs: logs/uncond_dcgan.ndjson,
samples/uncond_dcgan/<epoch>.png, models/uncond_dcgan/<epoch>_{gen,discrim}_params.npz and a
resumable checkpoint, under --out_dir (default: this folder, where the original wrote them).
"""
from pathlib import Path
from time import time

import numpy as np

from lib import rng
from lib import gan, models64
from lib.models64 import gen, discrim
from lib.theano_utils import floatX
from lib.data_utils import center_crop
from lib.vis import color_grid_vis
from lib.params import save_params
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
speed_settings = True   # keep freed memory, freeze imports out of gc (lib/speed.py)
resume = False          # continue from models/<desc>/latest_checkpoint.npz
overwrite = False       # replace a run already in --out_dir (else it is refused)
dry_run = False         # two minibatches on tiny data, then stop (smoke test)
max_updates = 0         # stop with a checkpoint after this many updates (0 = no limit)
checkpoint_every = 600.  # seconds between mid-epoch checkpoints (0 = at epoch ends only)
n_eval = 1000           # # of faces for the per-epoch yardstick (faces/yardstick.py; 0 = off)

FLAGS = flags.declared(globals(), derived=['nx'])  # every value above is a --flag

desc = 'uncond_dcgan'
save_epochs = [1, 2, 3, 4, 5, 10, 15, 20, 25]


def init_params():
    """The original's parameter block (lib/models64.py) at this script's widths:
    (gen_params, discrim_params), drawn from lib.rng."""
    return models64.init_params(nz, ngf, ndf, nc)


def build(gen_params, discrim_params, mode):
    """The original's costs, Adam updaters and compiled functions (lib/gan.py): (_train_g,
    _train_d, _gen, g_updater, d_updater, lrt); each training function returns [g_cost, d_cost,
    g_cost_d, d_cost_real, d_cost_gen] computed before its update."""
    return gan.build(gen, discrim, gen_params, discrim_params, lr=lr, b1=b1, l2=l2, mode=mode)


def main(argv=None):
    global ntrain, nval, niter, niter_decay, n_synthetic, n_nnd, nx, n_eval
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

    gen_params, discrim_params = init_params()
    train.describe(run, f'{data or "synthetic faces"} ({tr_data.path})', ntrain, len(vaX),
                   gen_params, discrim_params, f'ngf={ngf}, ndf={ndf}, npx={npx}', name,
                   speed=speed_settings)

    print('COMPILING')
    t = time()
    _train_g, _train_d, _gen, g_updater, d_updater, lrt = build(gen_params, discrim_params, mode)
    print('%.2f seconds to compile theano functions' % (time()-t))

    # PORT: the original drew 196 of its 10000 validation faces and its 196 samples in 14x14
    # grids; here each grid is the smallest square that holds what it shows.
    vis_idxs = rng.py_rng.sample(range(len(vaX)), min(nvis, len(vaX)))
    vaX_vis = inverse_transform(vaX[vis_idxs])
    color_grid_vis(vaX_vis, (train.grid_side(len(vis_idxs)),)*2,
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
            scores = train.nnd_scores(vaX, n_nnd, gen_samples)
            if measures is not None:
                scores.update(measures(_gen))
            loop.log(**scores)
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
        batches = (np.asarray(_gen(z[i:i + nbatch])) for i in range(0, n_eval, nbatch))
        return {k: v for k, v in ys.measure_batches(batches).items() if not k.endswith('_real')}
    return measures


if __name__ == '__main__':
    flags.command(main)
