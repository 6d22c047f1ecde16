"""Generate faces from a trained generator: a grid, or one image per seed.

    python faces/sample_dcgan.py --model=faces/models/uncond_dcgan/25_gen_params.npz --out=grid.png
    python faces/sample_dcgan.py --model=faces/models/uncond_dcgan --seeds=1,2,3 --single=true

``--model``: a ``<epoch>_gen_params`` file (ours or the original's .jl), a training checkpoint, or
a run's models folder (its latest epoch file). Each image's z is ``RandomState(seed).uniform(-1,
1, nz)``. ``--bn=batch`` (default) normalizes with the statistics of the generated batch, as the
original's ``_gen`` always did, so an image depends on the rest of the batch; ``--bn=population``
first infers the statistics over ``--n_population`` samples (averaging per-batch means and
variances, as the original's SVHN ``infer_bnorm_stats``) and then each image depends only on its z.
"""
import re
import sys
from pathlib import Path

import numpy as np
import pytensor
import pytensor.tensor as T

from lib import flags
from lib.backend import get_mode, resolve_backend
from lib.data_image import DataError
from lib.ops import batchnorm_stats
from lib.params import load_params
from lib.theano_utils import floatX, sharedX
from lib.train import CHECKPOINT
from lib.vis import color_grid_vis

import faces.train_uncond_dcgan as script

model = ''               # gen params file, checkpoint, or models/<desc> folder
out = 'samples.png'      # grid PNG, or folder for --single
seeds = ''               # comma-separated seeds, or '' for --n seeds 0..n-1
n = 196                  # # of samples when --seeds is empty
single = False           # one PNG per seed instead of a grid
bn = 'batch'             # batch | population batchnorm statistics
n_population = 10000     # # of samples to infer population statistics from
nbatch = 128             # # of samples per generator call
backend = ''             # c | numba | jax | pytorch | python; '' = the default here

FLAGS = ['model', 'out', 'seeds', 'n', 'single', 'bn', 'n_population', 'nbatch', 'backend']


def find_gen_params(path):
    """The generator arrays of ``path`` (params file, checkpoint or models folder)."""
    path = Path(path)
    if path.is_dir():
        files = [p for p in path.iterdir() if re.fullmatch(r'\d+_gen_params\.(npz|jl)', p.name)]
        if not files:
            if (path / CHECKPOINT).exists():
                return find_gen_params(path / CHECKPOINT)
            raise DataError(f'{path}: no <epoch>_gen_params.npz/.jl file and no checkpoint in it')
        path = max(files, key=lambda p: int(p.name.split('_')[0]))
    if not path.exists():
        raise DataError(f'--model={path}: no such file or folder')
    if path.name == CHECKPOINT or path.name.endswith('_checkpoint.npz'):
        with np.load(path, allow_pickle=False) as f:
            keys = sorted((k for k in f.files if k.startswith('gen/')),
                          key=lambda k: int(k.split('/')[1]))
            if not keys:
                raise DataError(f'{path}: a checkpoint without generator arrays')
            return [f[k] for k in keys]
    return load_params(path)


def build_sampler(arrays, mode):
    """Compile ``_gen(Z)`` with the training script's own ``gen`` over ``arrays``.

    The architecture is read off the shapes: nz = gw.shape[0], ngf = gwx.shape[0], nc = gwx.shape[1].
    """
    if len(arrays) != 13:
        raise DataError(f'--model: {len(arrays)} generator arrays, expected 13 (gw, gg, gb, ..., gwx)')
    script.nz, script.ngf, script.nc = arrays[0].shape[0], arrays[-1].shape[0], arrays[-1].shape[1]
    gen_params, _ = script.init_params()  # the script's own shapes and names, then our values
    for p, a in zip(gen_params, arrays):
        if tuple(a.shape) != p.type.shape:
            raise DataError(f'--model: {p.name} has shape {tuple(a.shape)}, expected {p.type.shape}')
        p.set_value(floatX(a))
    Z = T.matrix()
    if bn == 'batch':
        return pytensor.function([Z], script.gen(Z, *gen_params), mode=mode)
    with batchnorm_stats() as stats:
        script.gen(Z, *gen_params)
    _stats = pytensor.function([Z], [v for pair in stats for v in pair], mode=mode)
    rs = np.random.RandomState(0)
    sums, count = None, 0
    for start in range(0, n_population, nbatch):
        m = min(nbatch, n_population - start)
        values = _stats(floatX(rs.uniform(-1., 1., size=(m, script.nz))))
        sums = values if sums is None else [a + b for a, b in zip(sums, values)]
        count += 1
    pop = [(sharedX(sums[2*i] / count), sharedX(sums[2*i+1] / count)) for i in range(len(stats))]
    with batchnorm_stats(use=pop):
        gX = script.gen(Z, *gen_params)
    return pytensor.function([Z], gX, mode=mode)


def main(argv=None):
    flags.configure(globals(), FLAGS, argv)
    try:
        if bn not in ('batch', 'population'):
            raise DataError(f"--bn={bn}: expected 'batch' or 'population'")
        if not model:
            raise DataError('--model: required (a gen params file, checkpoint or models folder)')
        try:
            seed_list = [int(s) for s in seeds.split(',')] if seeds else list(range(n))
        except ValueError:
            raise DataError(f'--seeds={seeds}: expected comma-separated integers') from None
        _gen = build_sampler(find_gen_params(model), get_mode(resolve_backend(backend)))
    except DataError as e:
        print(f'error: {e}', file=sys.stderr)
        raise SystemExit(2)
    zs = floatX([np.random.RandomState(s).uniform(-1., 1., size=script.nz) for s in seed_list])
    samples = np.concatenate([_gen(zs[i:i+nbatch]) for i in range(0, len(zs), nbatch)])
    npx = samples.shape[-1]
    images = (samples.reshape(-1, script.nc, npx, npx).transpose(0, 2, 3, 1) + 1.) / 2.
    if single:
        folder = Path(out if out != 'samples.png' else 'samples')
        folder.mkdir(parents=True, exist_ok=True)
        for s, img in zip(seed_list, images):
            color_grid_vis(img[None], (1, 1), str(folder / f'seed_{s}.png'))
        print(f'wrote {len(images)} images to {folder}/')
    else:
        side = int(np.ceil(np.sqrt(len(images))))
        color_grid_vis(images, (int(np.ceil(len(images) / side)), side), out)
        print(f'wrote a grid of {len(images)} samples to {out}')


if __name__ == '__main__':
    main()
