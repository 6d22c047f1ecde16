"""House numbers from the original's released SVHN generator (or one this port trained).

    python svhn/sample_pretrained.py [--model_dir=...] [--epoch=200] [--n=64] [--seed=1234] [--out=...]

Loads ``<model_dir>/<epoch>_gen_params.jl`` (the original's joblib file) or ``.npz`` (ours) into the
generator of svhn/train_uncond_dcgan.py -- the same ``gen``, not a copy -- draws z ~ N(0, 1)
(the 'gaussian' of the model's name) from ``RandomState(seed)`` and writes a grid PNG. The
generator normalizes with the statistics of the generated batch, as the original's ``_gen``
always did. The defaults (64 samples, seed 1234) are the batch of ../shared/golden/svhn_pretrained.npz.
"""
from pathlib import Path

import numpy as np
import pytensor
import pytensor.tensor as T

from lib import flags
from lib import rng
from lib.backend import get_mode, resolve_backend
from lib.data_image import exit_on_data_error
from lib.theano_utils import floatX
from lib.vis import color_grid_vis

import svhn.train_uncond_dcgan as script
from svhn.model_files import DEFAULT_MODEL_DIR, load_model

model_dir = ''    # '' = the repo's models/<desc>/ (where the original's weights go)
epoch = 200       # which <epoch>_gen_params file
n = 64            # # of samples in the grid
seed = 1234       # z = RandomState(seed).normal(0, 1, (n, nz))
out = ''          # '' = svhn/samples/<desc>_pretrained_<epoch>.png
backend = ''      # c | numba | jax | pytorch | python; '' = the default here

FLAGS = flags.declared(globals())  # every value above is a --flag


def build_gen(gen_params, mode):
    """``_gen(Z)``: the train script's ``gen`` over ``gen_params``, compiled."""
    Z = T.matrix()
    return pytensor.function([Z], script.gen(Z, *gen_params), mode=mode)


def draw_z(n, seed, nz):
    """z ~ N(0, 1), ``(n, nz)`` float32, from ``lib.rng`` seeded with ``seed``."""
    rng.set_seed(seed)
    return floatX(rng.np_rng.normal(0., 1., size=(n, nz)))


def grid_shape(n):
    """(rows, columns) of a near-square grid holding ``n`` images."""
    nw = int(np.ceil(np.sqrt(n)))
    return int(np.ceil(n / nw)), nw


def main(argv=None):
    flags.configure(globals(), FLAGS, argv, positive=['n', 'epoch'], files=['out'])
    if n < 2:  # PORT: the grid is one batch, and batchnorm over one sample ignores its z
        flags.fail(f'--n={n}: expected at least 2 samples (batchnorm needs a batch)')
    path = Path(out) if out else script.HERE / 'samples' / f'{script.desc}_pretrained_{epoch}.png'
    if path.is_dir() or path.suffix.lower() not in ('.png', '.jpg', '.jpeg', '.webp', '.bmp'):
        flags.fail(f'--out={out}: expected an image file name (.png, .jpg, ...)')
    params = exit_on_data_error(load_model, model_dir or DEFAULT_MODEL_DIR, epoch, parts=('gen',))
    _gen = build_gen(params['gen'], get_mode(resolve_backend(backend)))
    nz = params['gen'][0].get_value(borrow=True).shape[0]
    samples = np.asarray(_gen(draw_z(n, seed, nz)))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        color_grid_vis(script.inverse_transform(samples), grid_shape(n), str(path))
    except OSError as e:
        flags.fail(f'--out={out}: {e.strerror or e} ({e.filename or path})')
    print(f'wrote a grid of {n} samples (z ~ N(0, 1), seed {seed}) to {path}')
    return samples


if __name__ == '__main__':
    flags.command(main)
