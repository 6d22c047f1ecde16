"""The paper's 32x32 ImageNet-1k DCGAN: the original imagenet/load_pretrained.py on PyTensor.

    python imagenet/load_pretrained.py [--model_dir=DIR] [--epoch=30] [--out=samples.png]

Loads the pretrained generator and discriminator (the original's joblib files
``30_gen_params.jl`` / ``30_discrim_params.jl`` with their ``.jl_NN.npy`` side files, or
this port's ``.npz``), generates 400 random samples, sorts them by the discriminator's
probability of being real (most real first) and writes them as a 20x20 grid.

This module is also the home of the 32x32 architecture: ``imagenet/train_uncond_dcgan.py``
trains this ``gen``/``discrim`` and ``imagenet/cifar10_svm.py`` pools the discriminator's
layers (``discrim_layers``) into the paper's CIFAR-10 features.
"""
from pathlib import Path
from time import time

import numpy as np
import pytensor
import pytensor.tensor as T

from lib import activations
from lib import rng
from lib import flags
from lib.vis import color_grid_vis
from lib.ops import batchnorm, deconv, dnn_conv
from lib.theano_utils import floatX, sharedX
from lib.backend import describe_mode, get_mode, resolve_backend
from lib.data_image import exit_on_data_error
from lib.params import check_shapes, load_params, params_path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent

nz = 256          # # of dim for Z
nc = 3            # # of channels in image
npx = 32          # # of pixels width/height of images (fixed by the architecture: 4 * 2**3)
ngf = 128         # # of gen filters in first conv layer
ndf = 128         # # of discrim filters in first conv layer

# PORT: run options, not in the original (which hard-coded them).
desc = 'imagenet_gan_pretrain_128f_relu_lrelu_7l_3x3_256z'
model_dir = ''    # '' = <repo>/models/<desc>/ (the original's ../models/<desc>/)
epoch = 30        # which <epoch>_{gen,discrim}_params file to load (the released model: 30)
nvis = 400        # # of samples generated and shown (a square grid: 400 -> 20x20)
out = ''          # '' = samples.png in this folder (where the original, run from here, wrote it)
seed = 42         # seed of lib.rng (the original's value)
backend = ''      # c | numba | jax | pytorch | python; '' = the fastest here

FLAGS = flags.declared(globals(), derived=['nc', 'npx', 'desc'])  # every value above is a --flag

relu = activations.Rectify()
sigmoid = activations.Sigmoid()
lrelu = activations.LeakyRectify()
tanh = activations.Tanh()


def param_shapes(nz, nc, ngf, ndf):
    """(name, shape) of every parameter, in gen's and discrim's argument order: (gen, discrim).

    The names are the training script's (``gw``, ``gg``, ... / ``dw``, ``dw2``, ...); the
    released model has nz, nc, ngf, ndf = 256, 3, 128, 128.
    """
    gen_shapes = [
        ('gw', (nz, ngf*4*4*4)),
        ('gg', (ngf*4*4*4,)),
        ('gb', (ngf*4*4*4,)),
        ('gw2', (ngf*4, ngf*4, 3, 3)),
        ('gg2', (ngf*4,)),
        ('gb2', (ngf*4,)),
        ('gw3', (ngf*4, ngf*2, 3, 3)),
        ('gg3', (ngf*2,)),
        ('gb3', (ngf*2,)),
        ('gw4', (ngf*2, ngf*2, 3, 3)),
        ('gg4', (ngf*2,)),
        ('gb4', (ngf*2,)),
        ('gw5', (ngf*2, ngf, 3, 3)),
        ('gg5', (ngf,)),
        ('gb5', (ngf,)),
        ('gw6', (ngf, ngf, 3, 3)),
        ('gg6', (ngf,)),
        ('gb6', (ngf,)),
        ('gwx', (ngf, nc, 3, 3)),
    ]
    discrim_shapes = [
        ('dw', (ndf, nc, 3, 3)),
        ('dw2', (ndf, ndf, 3, 3)),
        ('dg2', (ndf,)),
        ('db2', (ndf,)),
        ('dw3', (ndf*2, ndf, 3, 3)),
        ('dg3', (ndf*2,)),
        ('db3', (ndf*2,)),
        ('dw4', (ndf*2, ndf*2, 3, 3)),
        ('dg4', (ndf*2,)),
        ('db4', (ndf*2,)),
        ('dw5', (ndf*4, ndf*2, 3, 3)),
        ('dg5', (ndf*4,)),
        ('db5', (ndf*4,)),
        ('dw6', (ndf*4, ndf*4, 3, 3)),
        ('dg6', (ndf*4,)),
        ('db6', (ndf*4,)),
        ('dwy', (ndf*4*4*4, 1)),
    ]
    return gen_shapes, discrim_shapes


def gen(Z, w, g, b, w2, g2, b2, w3, g3, b3, w4, g4, b4, w5, g5, b5, w6, g6, b6, wx):
    h = relu(batchnorm(T.dot(Z, w), g=g, b=b))                                               # (n, ngf*4*4*4)
    # PORT: ngf*4 read from w2, so one gen serves the released model, training at any --ngf and the tests
    h = h.reshape((h.shape[0], w2.shape[0], 4, 4))                                           # (n, ngf*4, 4, 4)
    h2 = relu(batchnorm(deconv(h, w2, subsample=(2, 2), border_mode=(1, 1)), g=g2, b=b2))    # (n, ngf*4, 8, 8)
    h3 = relu(batchnorm(deconv(h2, w3, subsample=(1, 1), border_mode=(1, 1)), g=g3, b=b3))   # (n, ngf*2, 8, 8)
    h4 = relu(batchnorm(deconv(h3, w4, subsample=(2, 2), border_mode=(1, 1)), g=g4, b=b4))   # (n, ngf*2, 16, 16)
    h5 = relu(batchnorm(deconv(h4, w5, subsample=(1, 1), border_mode=(1, 1)), g=g5, b=b5))   # (n, ngf, 16, 16)
    h6 = relu(batchnorm(deconv(h5, w6, subsample=(2, 2), border_mode=(1, 1)), g=g6, b=b6))   # (n, ngf, 32, 32)
    x = tanh(deconv(h6, wx, subsample=(1, 1), border_mode=(1, 1)))                           # (n, nc, 32, 32)
    return x


def discrim_layers(X, w, w2, g2, b2, w3, g3, b3, w4, g4, b4, w5, g5, b5, w6, g6, b6):
    """The discriminator's six conv layers ``[h, h2, ..., h6]`` for images X (n, nc, 32, 32).

    Batchnorm uses batch statistics, or those given through ``lib.ops.batchnorm_stats``.
    """
    h = lrelu(dnn_conv(X, w, subsample=(1, 1), border_mode=(1, 1)))                            # (n, ndf, 32, 32)
    h2 = lrelu(batchnorm(dnn_conv(h, w2, subsample=(2, 2), border_mode=(1, 1)), g=g2, b=b2))   # (n, ndf, 16, 16)
    h3 = lrelu(batchnorm(dnn_conv(h2, w3, subsample=(1, 1), border_mode=(1, 1)), g=g3, b=b3))  # (n, ndf*2, 16, 16)
    h4 = lrelu(batchnorm(dnn_conv(h3, w4, subsample=(2, 2), border_mode=(1, 1)), g=g4, b=b4))  # (n, ndf*2, 8, 8)
    h5 = lrelu(batchnorm(dnn_conv(h4, w5, subsample=(1, 1), border_mode=(1, 1)), g=g5, b=b5))  # (n, ndf*4, 8, 8)
    h6 = lrelu(batchnorm(dnn_conv(h5, w6, subsample=(2, 2), border_mode=(1, 1)), g=g6, b=b6))  # (n, ndf*4, 4, 4)
    return [h, h2, h3, h4, h5, h6]


def discrim(X, w, w2, g2, b2, w3, g3, b3, w4, g4, b4, w5, g5, b5, w6, g6, b6, wy):
    # PORT: the conv layers live in discrim_layers, shared with the CIFAR-10 features
    h6 = discrim_layers(X, w, w2, g2, b2, w3, g3, b3, w4, g4, b4, w5, g5, b5, w6, g6, b6)[-1]  # (n, ndf*4, 4, 4)
    h6 = T.flatten(h6, 2)                                                                     # (n, ndf*4*4*4)
    y = sigmoid(T.dot(h6, wy))                                                                # (n, 1)
    return y


def inverse_transform(X):
    X = (X.reshape(-1, nc, npx, npx).transpose(0, 2, 3, 1)+1.)/2.
    return X


def load_model(model_dir, epoch, parts=('gen', 'discrim'), nz=nz, nc=nc, ngf=ngf, ndf=ndf):
    """Shared variables of the model at ``epoch`` in ``model_dir``, shape-checked: one list per part.

    ``parts`` picks the files (``lib.params.params_path``): ('gen', 'discrim') -> (gen_params,
    discrim_params); ('discrim',) -> (discrim_params,). The shapes expected are
    ``param_shapes(nz, nc, ngf, ndf)`` (default: the released model's). Raises a one-line
    DataError (``ParamsFileError``) for missing, unreadable or misshapen files.
    """
    gen_shapes, discrim_shapes = param_shapes(nz, nc, ngf, ndf)
    expected = dict(gen=gen_shapes, discrim=discrim_shapes)
    dims = (f' (nz={nz}, nc={nc}, ngf={ngf}, ndf={ndf})' if 'gen' in parts
            else f' (nc={nc}, ndf={ndf})')
    out = []
    for which in parts:
        path = params_path(model_dir, epoch, which)
        arrays = load_params(path)
        check_shapes(arrays, expected[which], path, dims)
        out.append([sharedX(a, name=name) for a, (name, _) in zip(arrays, expected[which])])
    return tuple(out)


def build(gen_params, discrim_params, mode):
    """The original's two compiled functions: ``_gen(Z) -> X`` and ``_discrim(X) -> p (n, 1)``."""
    Z = T.matrix()
    X = T.tensor4()

    gX = gen(Z, *gen_params)
    dX = discrim(X, *discrim_params)

    _gen = pytensor.function([Z], gX, mode=mode)
    _discrim = pytensor.function([X], dX, mode=mode)
    return _gen, _discrim


def sorted_samples(_gen, _discrim, n):
    """``n`` samples from uniform z in [-1, 1], most real first by ``_discrim``: (samples, scores).

    One batch of ``n``, as the original: the generator's and the discriminator's batchnorm use
    the statistics of the whole batch.
    """
    sample_zmb = floatX(rng.np_rng.uniform(-1., 1., size=(n, nz)))
    samples = np.asarray(_gen(sample_zmb))
    scores = np.asarray(_discrim(samples))
    sort = np.argsort(scores.flatten())[::-1]
    return samples[sort], scores[sort]


def main(argv=None):
    """Run the original's demo with ``--name=value`` overrides; returns (samples, scores, path)."""
    flags.configure(globals(), FLAGS, argv, positive=['nz', 'ngf', 'ndf', 'epoch', 'nvis'],
                    files=['out'])
    name = resolve_backend(backend)
    mode = get_mode(name)
    rng.set_seed(seed)
    grid = int(np.ceil(np.sqrt(nvis)))
    path = Path(out) if out else HERE / 'samples.png'
    if nvis < 2:
        flags.fail(f'--nvis={nvis}: expected at least 2 samples (batchnorm needs a batch)')
    if path.is_dir() or path.suffix.lower() not in ('.png', '.jpg', '.jpeg', '.webp', '.bmp'):
        flags.fail(f'--out={out}: expected an image file name (.png, .jpg, ...)')
    gen_params, discrim_params = exit_on_data_error(load_model, model_dir or REPO / 'models' / desc,
                                                    epoch, nz=nz, nc=nc, ngf=ngf, ndf=ndf)
    print(f'model: {model_dir or REPO / "models" / desc} epoch {epoch} (nz={nz}, ngf={ngf}, '
          f'ndf={ndf}) | backend: {describe_mode(name)}', flush=True)

    t = time()
    _gen, _discrim = build(gen_params, discrim_params, mode)
    print('%.2f seconds to compile theano functions' % (time()-t), flush=True)

    t = time()
    samples, scores = sorted_samples(_gen, _discrim, nvis)
    path.parent.mkdir(parents=True, exist_ok=True)
    color_grid_vis(inverse_transform(samples), (grid, grid), str(path))
    print(f'{nvis} samples in {time() - t:.2f} seconds, D(x) from {float(scores.max()):.4f} '
          f'(top left) to {float(scores.min()):.4f}: {path}')
    return samples, scores, path


if __name__ == '__main__':
    flags.command(main)
