"""Generate faces from a trained generator: a grid, or one image per seed.

    python faces/sample_dcgan.py --model=faces/models/uncond_dcgan/25_gen_params.npz --out=grid.png
    python faces/sample_dcgan.py --model=faces/models/uncond_dcgan --seeds=1,2,3 --single=true

``--model``: a ``<epoch>_gen_params`` file (ours or the original's .jl), a training checkpoint, or
a run's models folder (its latest epoch file). Each image's z is ``RandomState(seed).uniform(-1,
1, nz)``. ``--bn=batch`` (default) normalizes with the statistics of the generated batch, as the
original's ``_gen`` always did, so an image depends on the rest of the batch; ``--bn=population``
first infers the statistics over ``--n_population`` samples (averaging per-batch means and
variances, as the original's SVHN ``infer_bnorm_stats``) and then each image depends only on its z.
Batchnorm over a batch of one image normalises its z away, so ``--single=true`` (one image per
seed), or a batch that would hold one image, uses population statistics, and says so.
"""
import re
from pathlib import Path

import numpy as np
import pytensor
import pytensor.tensor as T
from PIL import Image

from lib import flags, models64
from lib.backend import get_mode, resolve_backend
from lib.data_image import DataError
from lib.params import ParamsFileError, load_params
from lib.ops import with_population_stats
from lib.theano_utils import floatX
from lib.train import CHECKPOINT
from lib.vis import color_grid_vis

model = ''               # gen params file, checkpoint, or models/<desc> folder
out = 'samples.png'      # grid PNG, or folder for --single
seeds = ''               # comma-separated seeds, or '' for --n seeds 0..n-1
n = 196                  # # of samples when --seeds is empty
single = False           # one PNG per seed instead of a grid
bn = 'batch'             # batch | population batchnorm statistics
n_population = 10000     # # of samples to infer population statistics from
nbatch = 128             # # of samples per generator call
backend = ''             # c | numba | jax | pytorch | python; '' = the default here

FLAGS = flags.declared(globals())  # every value above is a --flag


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
        try:
            with np.load(path, allow_pickle=False) as f:
                keys = sorted((k for k in f.files if re.fullmatch(r'gen/\d+', k)),
                              key=lambda k: int(k.split('/')[1]))
                arrays = [f[k] for k in keys]
        except Exception as e:  # not a zip, an object array, a damaged member
            raise DataError(f'{path}: unreadable checkpoint ({type(e).__name__}: {e})') from None
        if not arrays:
            raise DataError(f'{path}: a checkpoint without generator arrays')
        return arrays
    try:
        return load_params(path)
    except (ParamsFileError, OSError) as e:
        raise DataError(f'--model: {e}') from None


def build_sampler(arrays, mode, bn=None):
    """Compile ``_gen(Z)`` of the faces model's ``gen`` (lib/models64.py) over the generator
    ``arrays``, with batch or population (``bn``; default: the ``--bn`` flag) batchnorm
    statistics. The widths are read off the arrays' shapes."""
    bn = bn or globals()['bn']
    try:
        gen_params, _ = models64.load(gen_arrays=arrays)
    except ValueError as e:
        raise DataError(f'--model: {e}') from None
    Z = T.matrix()
    if bn == 'batch':
        return pytensor.function([Z], models64.gen(Z, *gen_params), mode=mode)
    rs = np.random.RandomState(0)
    nz = arrays[0].shape[0]
    batches = (floatX(rs.uniform(-1., 1., size=(min(nbatch, n_population - start), nz)))
               for start in range(0, n_population, nbatch))
    gX = with_population_stats(lambda Z: models64.gen(Z, *gen_params), Z, batches, mode)
    return pytensor.function([Z], gX, mode=mode)


def check_out(single):
    """Refuse an --out that cannot take what is written (before any work)."""
    path = Path(out if not single or out != 'samples.png' else 'samples')
    if single:
        if path.exists() and not path.is_dir():
            raise DataError(f'--out={out}: a file; --single=true writes a folder of images')
        return writable(path, True)
    if path.is_dir():
        raise DataError(f'--out={out}: a folder; expected an image file name such as grid.png')
    if Image.registered_extensions().get(path.suffix.lower()) is None:
        raise DataError(f'--out={out}: unknown image extension (expected .png, .jpg, ...)')
    if not path.parent.is_dir():
        raise DataError(f'--out={out}: no folder {path.parent}')
    return writable(path, False)


def writable(path, folder):
    """``path``, once a file could be made where it goes (a read-only folder is refused here, not
    after the sampling)."""
    try:
        flags.check_output('out', str(path), folder)
    except flags.FlagError as e:
        raise DataError(str(e)) from None
    return path


def main(argv=None):
    flags.configure(globals(), FLAGS, argv, positive=['n', 'n_population', 'nbatch'])
    try:
        if bn not in ('batch', 'population'):
            raise DataError(f"--bn={bn}: expected 'batch' or 'population'")
        if n_population < 2:  # used by --bn=population, and by --single=true with either
            raise DataError(f'--n_population={n_population}: expected at least 2 (batchnorm '
                            f'statistics of one sample are degenerate)')
        if not model:
            raise DataError('--model: required (a gen params file, checkpoint or models folder)')
        try:
            seed_list = [int(s) for s in seeds.split(',')] if seeds else list(range(n))
        except ValueError:
            raise DataError(f'--seeds={seeds}: expected comma-separated integers') from None
        bad = [s for s in seed_list if not 0 <= s <= flags.SEED_MAX]
        if bad:
            raise DataError(f'--seeds={seeds}: {bad[0]} is not a seed (0 .. {flags.SEED_MAX})')
        path = check_out(single)
        use_bn = bn
        if bn == 'batch' and (single or nbatch == 1 or len(seed_list) % nbatch == 1):
            # PORT: the original's batch statistics over one image ignore its z
            why = ('--single=true: each image depends on its seed alone' if single else
                   f'{len(seed_list)} images in batches of {nbatch} leave an image alone')
            print(f'--bn=population ({n_population} samples): {why}, and batchnorm over one '
                  f'image ignores its z', flush=True)
            use_bn = 'population'
        arrays = find_gen_params(model)
        _gen = build_sampler(arrays, get_mode(resolve_backend(backend)), use_bn)
    except DataError as e:
        flags.fail(e)
    nz, nc = arrays[0].shape[0], arrays[-1].shape[1]
    zs = floatX([np.random.RandomState(s).uniform(-1., 1., size=nz) for s in seed_list])
    samples = np.concatenate([_gen(zs[i:i+nbatch]) for i in range(0, len(zs), nbatch)])
    npx = samples.shape[-1]
    images = (samples.reshape(-1, nc, npx, npx).transpose(0, 2, 3, 1) + 1.) / 2.
    try:
        if single:
            path.mkdir(parents=True, exist_ok=True)
            for s, img in zip(seed_list, images):
                color_grid_vis(img[None], (1, 1), str(path / f'seed_{s}.png'))
            print(f'wrote {len(images)} images to {path}/')
        else:
            side = int(np.ceil(np.sqrt(len(images))))
            color_grid_vis(images, (int(np.ceil(len(images) / side)), side), str(path))
            print(f'wrote a grid of {len(images)} samples to {path}')
    except OSError as e:
        flags.fail(f'--out={out}: {e.strerror or e} ({e.filename or path})')


if __name__ == '__main__':
    flags.command(main)
