"""The paper's 64x64 DCGAN (Fig. 1): the original faces script's parameters, ``gen`` and ``discrim``.

faces/train_uncond_dcgan.py trains it on faces and lsun/train_uncond_dcgan.py on LSUN bedrooms;
the faces experiments (faces/section6.py, faces/sample_dcgan.py, faces/evaluate.py) compile it
from parameter files. ``gen`` and ``discrim`` read every width off their parameters, so a graph
is built for any saved model without setting a script's hyperparameters.
"""
import numpy as np
import pytensor.tensor as T

from lib import activations
from lib import inits
from lib import rng
from lib.theano_utils import floatX
from lib.ops import batchnorm, deconv, dnn_conv

relu = activations.Rectify()
sigmoid = activations.Sigmoid()
lrelu = activations.LeakyRectify()
tanh = activations.Tanh()

gifn = inits.Normal(scale=0.02)
difn = inits.Normal(scale=0.02)
gain_ifn = inits.Normal(loc=1., scale=0.02)
bias_ifn = inits.Constant(c=0.)


def init_params(nz, ngf, ndf, nc):
    """The original's parameter block: (gen_params, discrim_params), drawn from lib.rng.

    ``nz``: # of dim for Z; ``ngf``/``ndf``: # of gen filters in the last / discrim filters in
    the first conv layer; ``nc``: # of channels in image.
    """
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
    # PORT: ngf*8 read off w2 (a constant for shared parameters), not the script's ngf
    h = h.reshape((h.shape[0], w2.shape[0], 4, 4))                                        # (n, ngf*8, 4, 4)
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


def load(gen_arrays=None, discrim_arrays=None):
    """(gen_params, discrim_params): ``init_params``' shared variables (names, shapes) at the
    widths the arrays have, holding the arrays (None where not given); a wrong number of arrays
    or a wrong shape is a ValueError naming the parameter. Draws nothing from lib.rng."""
    w = widths(gen_arrays, discrim_arrays)
    state = rng.np_rng.get_state()
    try:
        params = init_params(w.get('nz', 1), w.get('ngf', 1), w.get('ndf', 1), w['nc'])
    finally:
        rng.np_rng.set_state(state)
    out = []
    for part, arrays, ps in zip(('gen', 'discrim'), (gen_arrays, discrim_arrays), params):
        if arrays is None:
            out.append(None)
            continue
        if len(arrays) != len(ps):
            raise ValueError(f'{len(arrays)} {part} arrays, expected {len(ps)} '
                             f'({", ".join(p.name for p in ps)})')
        for p, a in zip(ps, arrays):
            if not isinstance(a, np.ndarray) or a.dtype.kind not in 'fiu':
                raise ValueError(f'{p.name} is not a numeric array')
            if tuple(a.shape) != p.type.shape:
                raise ValueError(f'{p.name} has shape {tuple(a.shape)}, expected {p.type.shape}')
            p.set_value(floatX(a))
        out.append(ps)
    return tuple(out)


def widths(gen_arrays=None, discrim_arrays=None):
    """{nz, ngf, nc} of a generator's arrays and {ndf, nc} of a discriminator's (their shapes)."""
    out = {}
    for arrays, shape in ((gen_arrays, 'gw (nz, ngf*8*4*4) ... gwx (ngf, nc, 5, 5)'),
                          (discrim_arrays, 'dw (ndf, nc, 5, 5) ...')):
        if arrays is not None and (len(arrays) < 2 or np.ndim(arrays[0]) < 2
                                   or np.ndim(arrays[-1]) < 2):
            raise ValueError(f'arrays of shapes {[np.shape(a) for a in arrays[:2]]}...: '
                             f'expected {shape}')
    if discrim_arrays is not None:
        out.update(ndf=discrim_arrays[0].shape[0], nc=discrim_arrays[0].shape[1])
    if gen_arrays is not None:
        out.update(nz=gen_arrays[0].shape[0], ngf=gen_arrays[-1].shape[0],
                   nc=gen_arrays[-1].shape[1])
    return {k: int(v) for k, v in out.items()}
