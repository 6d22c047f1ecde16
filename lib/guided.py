"""Guided backpropagation (Springenberg et al., 2015) through the original's rectifiers.

The paper's Fig. 5 shows what the discriminator's features respond to by guided backpropagation:
the gradient of one activation with respect to the input image, where every rectifier passes
back only positive gradients, and only where its input was positive (for a leaky rectifier: the
leak's slope where it was negative). ``guided_rectify(x, leak)`` is the original's
``LeakyRectify`` (``Rectify`` for leak 0) as an ``OpFromGraph`` of the same elementwise graph,
``f1*x + f2*|x|``, whose pullback is the guided one; ``guide(outputs)`` rewrites every
rectifier of a graph built by ``lib.activations`` into it, so a script's own ``discrim`` is
visualised without a second copy. Inlined when compiled: it runs on every backend.
"""
import numpy as np
import pytensor.tensor as T
from pytensor.compile.builders import OpFromGraph
from pytensor.graph.basic import Constant
from pytensor.graph.traversal import toposort
from pytensor.graph.replace import graph_replace
from pytensor.scalar import basic as ps
from pytensor.tensor.elemwise import DimShuffle, Elemwise

import lib  # noqa: F401  (sets floatX)


def guided_grad(x, gz, leak):
    """The guided pullback of a leaky rectifier at input ``x`` for upstream gradient ``gz``:
    ``max(gz, 0)`` times the rectifier's slope (1 above 0, ``leak`` below, the original's
    ``(1 + leak)/2`` at exactly 0). Same shape as ``x``."""
    f1 = np.float32(0.5 * (1 + leak))
    slope = T.switch(T.gt(x, 0), np.float32(1.), T.switch(T.lt(x, 0), np.float32(leak), f1))
    return T.switch(T.gt(gz, 0), gz, np.float32(0.)) * slope


_ops = {}


def guided_rectify(x, leak=0.2):
    """``LeakyRectify(leak)(x)`` forward (``Rectify`` for leak 0), with a guided gradient."""
    key = (float(leak), x.type)
    if key not in _ops:
        xi = x.type()
        f1, f2 = np.float32(0.5 * (1 + leak)), np.float32(0.5 * (1 - leak))
        _ops[key] = OpFromGraph(
            [xi], [f1 * xi + f2 * abs(xi)], inline=True, name=f'guided_rectify_{leak:g}',
            pullback=lambda inputs, outputs, grads: [guided_grad(inputs[0], grads[0], leak)])
    return _ops[key](x)


def _constant(v):
    """The scalar value of a (broadcast) constant ``v``, or None."""
    while v.owner is not None and isinstance(v.owner.op, DimShuffle):
        v = v.owner.inputs[0]
    if isinstance(v, Constant) and np.ndim(v.data) == 0:
        return float(v.data)
    return None


def _is(node, scalar_op):
    return node is not None and isinstance(node.op, Elemwise) and isinstance(node.op.scalar_op, scalar_op)


def rectifier_input(y):
    """``(x, leak)`` if ``y`` is ``lib.activations``' ``f1*x + f2*|x|`` or ``(x + |x|)/2``, else None."""
    node = y.owner
    if _is(node, ps.TrueDiv) and _constant(node.inputs[1]) == 2.:
        s = node.inputs[0].owner
        if _is(s, ps.Add) and len(s.inputs) == 2:
            a, b = s.inputs
            for x, ab in ((a, b), (b, a)):
                if _is(ab.owner, ps.Abs) and ab.owner.inputs[0] is x:
                    return x, 0.
        return None
    if not (_is(node, ps.Add) and len(node.inputs) == 2):
        return None
    terms = []
    for t in node.inputs:
        if not (_is(t.owner, ps.Mul) and len(t.owner.inputs) == 2):
            return None
        c, v = t.owner.inputs
        if _constant(c) is None:
            c, v = v, c
        if _constant(c) is None:
            return None
        terms.append((_constant(c), v))
    (c1, v1), (c2, v2) = terms
    if _is(v1.owner, ps.Abs):
        (c1, v1), (c2, v2) = (c2, v2), (c1, v1)
    if not (_is(v2.owner, ps.Abs) and v2.owner.inputs[0] is v1):
        return None
    leak = c1 - c2                      # f1 - f2 = leak; f1 + f2 = 1
    if abs(c1 + c2 - 1.) > 1e-6 or not -1e-6 <= leak < 1.:
        return None
    return v1, float(np.float32(round(leak, 6)))


def guide(outputs):
    """``outputs`` (a variable or list) with every rectifier above their inputs made guided.

    The rectifiers are the 4-D ones written by ``lib.activations.Rectify``/``LeakyRectify``;
    returns the rewritten variables (the forward values are unchanged) and how many were found.
    """
    single = not isinstance(outputs, (list, tuple))
    outs = [outputs] if single else list(outputs)
    n = 0
    while True:
        # one at a time, nearest the inputs first: each replacement clones the graph above it
        found = next(((v, r) for v in toposort_variables(outs)
                      if v.ndim == 4 and (r := rectifier_input(v)) is not None), None)
        if found is None:
            return (outs[0] if single else outs), n
        v, (x, leak) = found
        outs = graph_replace(outs, {v: guided_rectify(x, leak)}, strict=False)
        n += 1


def toposort_variables(outputs):
    """The variables computed above ``outputs``, inputs first."""
    return [v for node in toposort(outputs) for v in node.outputs]


# ------------------------------------------------------------------------------------------
# What a discriminator's feature maps respond to (the paper's Fig. 5)
# ------------------------------------------------------------------------------------------

def guided_views(X, layer, mode=None):
    """(act: images -> ``layer``, grad: (images, channel, row, col) -> the guided gradient of
    ``layer[i, channel_i, row_i, col_i]`` with respect to image i, n): two compiled functions of
    the input ``X`` (n, c, h, w), and how many rectifiers between them were made guided."""
    import warnings
    import pytensor
    guided, n = guide(layer)
    ch, row, col = T.lvector('ch'), T.lvector('row'), T.lvector('col')
    picked = guided[T.arange(X.shape[0]), ch, row, col].sum()
    with warnings.catch_warnings():
        # OpFromGraph's inner graphs do not pickle: these two graphs skip the on-disk graph cache
        warnings.filterwarnings('ignore', message='graph cache: a graph could not be pickled')
        act = pytensor.function([X], layer, mode=mode)
        grad = pytensor.function([X, ch, row, col], T.grad(picked, X), mode=mode)
    return act, grad, n


def strongest(acts, channels, k):
    """For each channel, the ``k`` images with its largest response and where it is:
    (images (c, k), rows (c, k), cols (c, k)) of activations (n, C, H, W)."""
    n, _, h, w = acts.shape
    flat = acts[:, channels].reshape(n, len(channels), h * w)
    best = flat.max(-1)                                    # (n, c)
    imgs = np.argsort(-best, axis=0, kind='stable')[:k].T  # (c, k)
    pos = flat.argmax(-1)[imgs, np.arange(len(channels))[:, None]]
    return imgs, pos // w, pos % w


def concentration(g, top=0.05):
    """Share of each gradient's squared norm in its ``top`` fraction of pixels: g (n, ...) -> (n,)."""
    e = (np.asarray(g, np.float64) ** 2).reshape(len(g), -1)
    m = max(1, int(round(top * e.shape[1])))
    return np.sort(e, axis=1)[:, -m:].sum(1) / np.maximum(e.sum(1), 1e-30)


def mean_pair_distance(F):
    """Mean Euclidean distance between distinct rows of F (m, d)."""
    d = np.sqrt(np.maximum(((F[:, None] - F[None]) ** 2).sum(-1), 0))
    return float(d.sum() / (len(F) * (len(F) - 1)))


def to_display(views):
    """Gradients (c, k, ...) as images: each over 3 of its standard deviations, clipped to
    [-1, 1], (c*k, ...) for a grid."""
    v = views.reshape(-1, *views.shape[2:])
    sd = v.reshape(len(v), -1).std(1)
    return np.clip(v / np.maximum(3 * sd, 1e-30)[:, None, None, None], -1., 1.)
