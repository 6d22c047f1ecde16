"""The original optimizers: ``updater(params, cost)`` -> the list of (shared variable, new value) pairs.

Every updater keeps the shared variables it creates (Adam's t, m, v, ...) in ``self.state``, in
creation order, so a training loop can checkpoint and restore them. Every constant and every
state variable is float32, as Theano made them with floatX=float32.
"""
import numpy as np
import pytensor
import pytensor.tensor as T
from pytensor.graph.basic import Variable

import lib  # noqa: F401  (sets floatX)
from lib.ops import l2norm
from lib.theano_utils import shared0s, sharedX

f32 = np.float32


def _as_float32(x):
    """A Python number as a float32 constant (Theano's floatX cast); a variable unchanged."""
    return x if isinstance(x, Variable) else f32(x)


def clip_norm(g, c, n):
    """Gradient ``g`` scaled by c/n where the norm ``n`` >= ``c``; unchanged if c <= 0."""
    if c > 0:
        g = T.switch(T.ge(n, f32(c)), g * f32(c) / n, g)
    return g


def clip_norms(gs, c):
    """Gradients ``gs`` (list of tensors) rescaled so that their joint L2 norm is at most ``c``."""
    norm = T.sqrt(sum([T.sum(T.sqr(g)) for g in gs]))
    return [clip_norm(g, c, norm) for g in gs]


class Regularizer:
    """Gradient penalties (l1, l2) and weight constraints (maxnorm, l2norm, frobnorm)."""

    def __init__(self, l1=0., l2=0., maxnorm=0., l2norm=False, frobnorm=False):
        self.l1 = l1
        self.l2 = l2
        self.maxnorm = maxnorm
        self.l2norm = l2norm
        self.frobnorm = frobnorm

    def max_norm(self, p, maxnorm):
        """``p`` (d, k) with each column's L2 norm clipped to ``maxnorm`` (if > 0)."""
        if maxnorm > 0:
            norms = T.sqrt(T.sum(T.sqr(p), axis=0))
            desired = T.clip(norms, f32(0), f32(maxnorm))
            p = p * (desired / (f32(1e-7) + norms))
        return p

    def l2_norm(self, p):
        """``p`` with each column (axis 0) scaled to unit L2 norm (1e-8 inside the sqrt)."""
        return p / l2norm(p, axis=0)

    def frob_norm(self, p, nrows):
        """``p`` scaled to Frobenius norm sqrt(nrows)."""
        return (p / T.sqrt(T.sum(T.sqr(p)))) * f32(np.sqrt(nrows))

    def gradient_regularize(self, p, g):
        """The gradient ``g`` of parameter ``p`` plus l2*p + l1*sgn(p) (same shape as p)."""
        g += p * f32(self.l2)
        g += T.sign(p) * f32(self.l1)
        return g

    def weight_regularize(self, p):
        """The updated parameter ``p`` after the configured constraints."""
        p = self.max_norm(p, self.maxnorm)
        if self.l2norm:
            p = self.l2_norm(p)
        if self.frobnorm > 0:
            p = self.frob_norm(p, self.frobnorm)
        return p


class Update:
    """Base of the optimizers: holds the regularizer, the clipping norm and the state."""

    def __init__(self, regularizer=Regularizer(), clipnorm=0.):
        self.regularizer = regularizer
        self.clipnorm = clipnorm
        # PORT: the original kept its m, v, t only inside the graph; they are kept here so that a
        # training loop can checkpoint and resume them
        self.state = []  # the shared variables every __call__ creates, in creation order

    def _grads(self, params, cost):
        return clip_norms(pytensor.grad(cost, params), self.clipnorm)

    def _zeros_like(self, p, suffix):
        """A float32 shared variable of zeros shaped like parameter ``p``, recorded in the state."""
        name = f"{p.name}_{suffix}" if p.name else None
        s = shared0s(p.get_value(borrow=True).shape, name=name)
        self.state.append(s)
        return s

    def __call__(self, params, cost):
        raise NotImplementedError


class SGD(Update):
    """p <- p - lr*g."""

    def __init__(self, lr=0.01, *args, **kwargs):
        Update.__init__(self, *args, **kwargs)
        self.lr = lr

    def __call__(self, params, cost):
        """Update pairs for ``params`` (shared variables) minimising scalar ``cost``."""
        updates = []
        lr = _as_float32(self.lr)
        for p, g in zip(params, self._grads(params, cost)):
            g = self.regularizer.gradient_regularize(p, g)
            updated_p = p - lr * g
            updated_p = self.regularizer.weight_regularize(updated_p)
            updates.append((p, updated_p))
        return updates


class Momentum(Update):
    """Classical momentum: m <- momentum*m - lr*g; p <- p + m."""

    def __init__(self, lr=0.01, momentum=0.9, *args, **kwargs):
        Update.__init__(self, *args, **kwargs)
        self.lr = lr
        self.momentum = momentum

    def __call__(self, params, cost):
        """Update pairs for ``params`` (shared variables) minimising scalar ``cost``."""
        updates = []
        lr = _as_float32(self.lr)
        for p, g in zip(params, self._grads(params, cost)):
            g = self.regularizer.gradient_regularize(p, g)
            m = self._zeros_like(p, 'm')
            v = (f32(self.momentum) * m) - (lr * g)
            updates.append((m, v))

            updated_p = p + v
            updated_p = self.regularizer.weight_regularize(updated_p)
            updates.append((p, updated_p))
        return updates


class NAG(Update):
    """Nesterov momentum: m <- momentum*m - lr*g; p <- p + momentum*m_new - lr*g."""

    def __init__(self, lr=0.01, momentum=0.9, *args, **kwargs):
        Update.__init__(self, *args, **kwargs)
        self.lr = lr
        self.momentum = momentum

    def __call__(self, params, cost):
        """Update pairs for ``params`` (shared variables) minimising scalar ``cost``."""
        updates = []
        lr = _as_float32(self.lr)
        momentum = f32(self.momentum)
        for p, g in zip(params, self._grads(params, cost)):
            g = self.regularizer.gradient_regularize(p, g)
            m = self._zeros_like(p, 'm')
            v = (momentum * m) - (lr * g)

            updated_p = p + momentum * v - lr * g
            updated_p = self.regularizer.weight_regularize(updated_p)
            updates.append((m, v))
            updates.append((p, updated_p))
        return updates


class RMSprop(Update):
    """acc <- rho*acc + (1-rho)*g^2; p <- p - lr*g/sqrt(acc + epsilon)."""

    def __init__(self, lr=0.001, rho=0.9, epsilon=1e-6, *args, **kwargs):
        Update.__init__(self, *args, **kwargs)
        self.lr = lr
        self.rho = rho
        self.epsilon = epsilon

    def __call__(self, params, cost):
        """Update pairs for ``params`` (shared variables) minimising scalar ``cost``."""
        updates = []
        lr = _as_float32(self.lr)
        rho = f32(self.rho)
        for p, g in zip(params, self._grads(params, cost)):
            g = self.regularizer.gradient_regularize(p, g)
            acc = self._zeros_like(p, 'acc')
            acc_new = rho * acc + f32(1 - self.rho) * T.sqr(g)
            updates.append((acc, acc_new))

            updated_p = p - lr * (g / T.sqrt(acc_new + f32(self.epsilon)))
            updated_p = self.regularizer.weight_regularize(updated_p)
            updates.append((p, updated_p))
        return updates


class Adam(Update):
    """The original's Adam (Kingma & Ba, v1 of the paper, with its b1 decay ``l``).

    One shared step counter ``t`` per call, starting at 1; b1_t = b1*l**(t-1);
    m <- b1_t*m + (1-b1_t)*g; v <- b2*v + (1-b2)*g^2;
    p <- p - lr*(m/(1-b1**t)) / (sqrt(v/(1-b2**t)) + e); g includes the regularizer's l1/l2 terms.
    ``lr`` is a number or a float32 shared variable (to anneal it).
    """

    def __init__(self, lr=0.001, b1=0.9, b2=0.999, e=1e-8, l=1-1e-8, *args, **kwargs):
        Update.__init__(self, *args, **kwargs)
        self.lr = lr
        self.b1 = b1
        self.b2 = b2
        self.e = e
        self.l = l

    def __call__(self, params, cost):
        """Update pairs for ``params`` (shared variables) minimising scalar ``cost``.

        The state (``t``, then ``m``, ``v`` per parameter) is appended to ``self.state``.
        """
        updates = []
        grads = self._grads(params, cost)
        lr = _as_float32(self.lr)
        b1, b2, e = f32(self.b1), f32(self.b2), f32(self.e)
        t = sharedX(1., name='adam_t')
        self.state.append(t)
        # float32(1 - 1e-8) == 1.0, so this decay is a no-op, exactly as in Theano with floatX=float32
        b1_t = b1 * f32(self.l) ** (t - f32(1))

        for p, g in zip(params, grads):
            g = self.regularizer.gradient_regularize(p, g)
            m = self._zeros_like(p, 'm')
            v = self._zeros_like(p, 'v')

            m_t = b1_t * m + (f32(1) - b1_t) * g
            # (1 - b2) is a Python float subtraction cast to float32 afterwards, as in Theano:
            # float32(0.001) differs from float32(1) - float32(0.999) in the 5th digit
            v_t = b2 * v + f32(1 - self.b2) * T.sqr(g)
            m_c = m_t / (f32(1) - b1 ** t)
            v_c = v_t / (f32(1) - b2 ** t)
            p_t = p - (lr * m_c) / (T.sqrt(v_c) + e)
            p_t = self.regularizer.weight_regularize(p_t)
            updates.append((m, m_t))
            updates.append((v, v_t))
            updates.append((p, p_t))
        updates.append((t, t + f32(1)))
        return updates


class Adagrad(Update):
    """acc <- acc + g^2; p <- p - lr*g/sqrt(acc + epsilon)."""

    def __init__(self, lr=0.01, epsilon=1e-6, *args, **kwargs):
        Update.__init__(self, *args, **kwargs)
        self.lr = lr
        self.epsilon = epsilon

    def __call__(self, params, cost):
        """Update pairs for ``params`` (shared variables) minimising scalar ``cost``."""
        updates = []
        lr = _as_float32(self.lr)
        for p, g in zip(params, self._grads(params, cost)):
            g = self.regularizer.gradient_regularize(p, g)
            acc = self._zeros_like(p, 'acc')
            acc_t = acc + T.sqr(g)
            updates.append((acc, acc_t))

            p_t = p - (lr / T.sqrt(acc_t + f32(self.epsilon))) * g
            p_t = self.regularizer.weight_regularize(p_t)
            updates.append((p, p_t))
        return updates


class Adadelta(Update):
    """Zeiler's Adadelta, scaled by ``lr``."""

    def __init__(self, lr=0.5, rho=0.95, epsilon=1e-6, *args, **kwargs):
        Update.__init__(self, *args, **kwargs)
        self.lr = lr
        self.rho = rho
        self.epsilon = epsilon

    def __call__(self, params, cost):
        """Update pairs for ``params`` (shared variables) minimising scalar ``cost``."""
        updates = []
        lr = _as_float32(self.lr)
        rho, epsilon = f32(self.rho), f32(self.epsilon)
        for p, g in zip(params, self._grads(params, cost)):
            g = self.regularizer.gradient_regularize(p, g)

            acc = self._zeros_like(p, 'acc')
            acc_delta = self._zeros_like(p, 'acc_delta')
            acc_new = rho * acc + f32(1 - self.rho) * T.sqr(g)
            updates.append((acc, acc_new))

            update = g * T.sqrt(acc_delta + epsilon) / T.sqrt(acc_new + epsilon)
            updated_p = p - lr * update
            updated_p = self.regularizer.weight_regularize(updated_p)
            updates.append((p, updated_p))

            acc_delta_new = rho * acc_delta + f32(1 - self.rho) * T.sqr(update)
            updates.append((acc_delta, acc_delta_new))
        return updates


class NoUpdate(Update):
    """Leaves every parameter unchanged (p <- p)."""

    def __init__(self, lr=0.01, momentum=0.9, *args, **kwargs):
        Update.__init__(self, *args, **kwargs)
        self.lr = lr
        self.momentum = momentum

    def __call__(self, params, cost):
        """Identity update pairs for ``params``."""
        return [(p, p) for p in params]
