"""The original's GAN objective, Adam updaters and compiled functions, for any ``gen``/``discrim``.

The original's faces and mnist scripts wrote these lines identically, and the scripts added
here for SVHN, ImageNet and LSUN train the same way; each script's ``build`` calls ``build``
with its own ``gen``, ``discrim`` and hyperparameters.
"""
import pytensor
import pytensor.tensor as T

from lib import updates
from lib.costs import binary_crossentropy as bce
from lib.theano_utils import sharedX


def build(gen, discrim, gen_params, discrim_params, *, lr, b1, l2, mode, given=()):
    """Costs, updaters and compiled functions of ``gen(Z, *given, *gen_params)`` against
    ``discrim(X, *given, *discrim_params)`` (X: a batch of images, 4-D; Z: a batch of z, 2-D).

    ``given``: further symbolic inputs both models take (mnist's class matrix Y). Returns
    (_train_g, _train_d, _gen, g_updater, d_updater, lrt): ``_train_g(X, Z, *given)`` and
    ``_train_d(X, Z, *given)`` return [g_cost, d_cost, g_cost_d, d_cost_real, d_cost_gen]
    computed before their update (Adam at the shared learning rate ``lrt``, L2 decay ``l2``);
    ``_gen(Z, *given)`` returns the samples.
    """
    X = T.tensor4()
    Z = T.matrix()

    gX = gen(Z, *given, *gen_params)

    p_real = discrim(X, *given, *discrim_params)
    p_gen = discrim(gX, *given, *discrim_params)

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
    # PORT: the original mnist script's `updates = d_updates + g_updates` (unused) shadowed the
    # updates module; it is left out.

    inputs = [X, Z, *given]
    _train_g = pytensor.function(inputs, cost, updates=g_updates, mode=mode)
    _train_d = pytensor.function(inputs, cost, updates=d_updates, mode=mode)
    _gen = pytensor.function([Z, *given], gX, mode=mode)
    return _train_g, _train_d, _gen, g_updater, d_updater, lrt
