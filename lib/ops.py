"""The original lib/ops.py on PyTensor: convolution, deconvolution, batchnorm and friends.

Run ``python lib/ops.py`` for a short demo of fractionally strided convolution.
"""
from contextlib import contextmanager

import numpy as np
import pytensor.tensor as pt

import lib  # noqa: F401  (sets floatX)
from lib import rng
from lib.conv_ops import Conv2d, Conv2dGradInputs, normalize_padding, normalize_subsample
# The Numba kernels of the conv Ops, registered as PyTensor's own link/numba/dispatch modules
# register theirs: a pytensor.function in PyTensor's default mode (Numba) runs them natively.
import lib.dispatch.numba  # noqa: F401


def l2normalize(x, axis=1, e=1e-8, keepdims=True):
    """``x`` divided by its L2 norm along ``axis`` (``e`` added inside the sqrt)."""
    return x / l2norm(x, axis=axis, e=e, keepdims=keepdims)


def l2norm(x, axis=1, e=1e-8, keepdims=True):
    """``sqrt(sum(x**2, axis) + e)``."""
    return pt.sqrt(pt.sum(pt.sqr(x), axis=axis, keepdims=keepdims) + e)


def cosine(x, y):
    """Cosine similarity of the rows of x (n, d) and y (m, d): (n, m)."""
    return cosine_given_norms(x, y, l2norm(x, keepdims=False), l2norm(y, keepdims=False))


def cosine_given_norms(x, y, nx, ny):
    """``cosine`` with the rows' norms ``l2norm`` given: nx (n,), ny (m,)."""
    d = pt.dot(x, y.T)
    d /= nx.dimshuffle(0, "x")
    d /= ny.dimshuffle("x", 0)
    return d


def euclidean(x, y, e=1e-8):
    """Euclidean distances between the rows of x (n, d) and y (m, d): (n, m).

    Computed as ``sqrt(|x|^2 + |y|^2 - 2 x.y)`` like the original (identical rows may give NaN).
    """
    return euclidean_given_norms(x, y, sq_norms(x, e), sq_norms(y, e))


def sq_norms(x, e=1e-8):
    """The squared norms of the rows of x (n, d) as ``euclidean`` computes them: (n,)."""
    return pt.sqr(pt.sqrt((x * x).sum(axis=1) + e))


def euclidean_given_norms(x, y, xx, yy):
    """``euclidean`` with the rows' ``sq_norms`` given: xx (n,), yy (m,)."""
    dist = pt.dot(x, y.T)
    dist *= -2
    dist += xx.dimshuffle(0, "x")
    dist += yy.dimshuffle("x", 0)
    return pt.sqrt(dist)


def dropout(X, p=0.):
    """Inverted dropout: zero each unit with probability ``p`` and scale the rest by 1/(1-p)."""
    if p > 0:
        retain_prob = 1 - p
        # PORT: Theano's MRG stream advanced implicitly; PyTensor's needs explicit updates, so
        # compile a graph with dropout using updates=... + rng.t_rng.updates().
        X = X * rng.t_rng.binomial(X.shape, p=retain_prob, dtype=X.dtype)
        X = X / np.float32(retain_prob)
    return X


def conv_cond_concat(x, y):
    """Concatenate conditioning ``y`` (N, K, 1, 1) to feature maps x (N, C, H, W) on axis 1."""
    return pt.concatenate([x, y * pt.ones((x.shape[0], y.shape[1], x.shape[2], x.shape[3]))],
                          axis=1)


class _BatchnormStats:
    """What ``batchnorm`` does with batch statistics inside ``batchnorm_stats``."""
    active = None

    def __init__(self, use=None):
        self.use = None if use is None else list(use)
        self.collected = []


@contextmanager
def batchnorm_stats(use=None):
    """Collect, or replace, the batch statistics of every ``batchnorm`` built in this block.

    Without ``use``: yields a list that receives one ``(u, s)`` pair of symbolic batch statistics
    per batchnorm call, in call order. With ``use=[(u, s), ...]``: those calls take the given
    (population) statistics instead of the batch's. This lets the unchanged ``gen`` of a script
    run with inferred population statistics, as the original did through ``u``/``s`` arguments.
    """
    ctx = _BatchnormStats(use)
    previous, _BatchnormStats.active = _BatchnormStats.active, ctx
    try:
        yield ctx.collected
    finally:
        _BatchnormStats.active = previous
    if ctx.use is not None and len(ctx.use) != len(ctx.collected):
        raise ValueError(f"batchnorm_stats: {len(ctx.use)} statistics given for "
                         f"{len(ctx.collected)} batchnorm layers")


def mean_over_batches(fn, batches):
    """The mean over ``batches`` of each array ``fn(batch)`` returns, every batch weighted alike.

    With ``fn`` returning a discriminator's per-batch means and variances, this is the original's
    estimate of population batchnorm statistics (its SVHN ``infer_bnorm_stats``): a shorter last
    batch counts as much as the others. Returns a list of arrays, one per output of ``fn``.
    """
    sums, n = None, 0
    for batch in batches:
        values = [np.asarray(v) for v in fn(batch)]
        sums = values if sums is None else [a + v for a, v in zip(sums, values)]
        n += 1
    if not n:
        raise ValueError("mean_over_batches: no batches")
    return [s / n for s in sums]


def _context_stats(b_u, b_s):
    ctx = _BatchnormStats.active
    if ctx is None:
        return b_u, b_s
    i = len(ctx.collected)
    ctx.collected.append((b_u, b_s))
    if ctx.use is None:
        return b_u, b_s
    if i >= len(ctx.use):
        raise ValueError(f"batchnorm_stats: only {len(ctx.use)} statistics given")
    return (pt.as_tensor_variable(ctx.use[i][0]).astype(b_u.dtype),
            pt.as_tensor_variable(ctx.use[i][1]).astype(b_s.dtype))


def batchnorm(X, g=None, b=None, u=None, s=None, a=1., e=1e-8):
    """Batch normalization as the original: 4-D over axes (0, 2, 3), 2-D over axis 0.

    Batch statistics unless ``u`` and ``s`` (inference mean and biased variance) are given;
    ``a != 1`` blends the statistics towards (0, 1); ``g`` and ``b`` apply only if both are given.
    Epsilon is the original's 1e-8.
    """
    g, b, u, s = (None if v is None else pt.as_tensor_variable(v) for v in (g, b, u, s))
    if X.ndim == 4:
        if u is not None and s is not None:
            b_u = u.dimshuffle("x", 0, "x", "x")
            b_s = s.dimshuffle("x", 0, "x", "x")
        else:
            b_u = pt.mean(X, axis=[0, 2, 3])
            b_s = pt.mean(pt.sqr(X - b_u.dimshuffle("x", 0, "x", "x")), axis=[0, 2, 3])
            b_u, b_s = _context_stats(b_u, b_s)
            b_u = b_u.dimshuffle("x", 0, "x", "x")
            b_s = b_s.dimshuffle("x", 0, "x", "x")
        if a != 1:
            b_u = (1. - a) * 0. + a * b_u
            b_s = (1. - a) * 1. + a * b_s
        X = (X - b_u) / pt.sqrt(b_s + e)
        if g is not None and b is not None:
            X = X * g.dimshuffle("x", 0, "x", "x") + b.dimshuffle("x", 0, "x", "x")
    elif X.ndim == 2:
        if u is None and s is None:
            u = pt.mean(X, axis=0)
            s = pt.mean(pt.sqr(X - u), axis=0)
            u, s = _context_stats(u, s)
        if a != 1:
            u = (1. - a) * 0. + a * u
            s = (1. - a) * 1. + a * s
        X = (X - u) / pt.sqrt(s + e)
        if g is not None and b is not None:
            X = X * g + b
    else:
        raise NotImplementedError(f"batchnorm: expected a 2-D or 4-D input, got {X.ndim}-D")
    return X


def with_population_stats(build, x, batches, mode=None):
    """``build(x)`` with every batchnorm normalising by population statistics: the per-batch
    means and variances of its batchnorms over ``batches`` (arrays fed to ``x``), averaged, as
    the original's SVHN ``infer_bnorm_stats`` did. Returns the output of the second ``build``."""
    import pytensor
    from lib.theano_utils import sharedX
    with batchnorm_stats() as stats:
        build(x)
    fn = pytensor.function([x], [v for pair in stats for v in pair], mode=mode)
    means = mean_over_batches(fn, batches)
    population = [(sharedX(means[2 * i]), sharedX(means[2 * i + 1]))
                  for i in range(len(means) // 2)]
    with batchnorm_stats(use=population):
        return build(x)


def conv2d(X, w, subsample=(1, 1), border_mode=(0, 0), conv_mode="conv"):
    """Convolution of X (N, C, H, W) by w (O, C, kh, kw) -> (N, O, Ho, Wo).

    ``conv_mode='conv'`` is a true convolution (kernel flipped), the original ``dnn_conv``'s
    cuDNN default; ``'cross'`` is cross-correlation. ``border_mode``: ``(ph, pw)``, an int,
    ``'valid'``, or ``((top, bottom), (left, right))``.
    """
    op = Conv2d(subsample=subsample, padding=normalize_padding(border_mode), conv_mode=conv_mode)
    return op(X, w)


dnn_conv = conv2d  # the original scripts' name for it


def deconv(X, w, subsample=(1, 1), border_mode=(0, 0), conv_mode="conv", output_shape=None):
    """Fractionally strided convolution of X (N, C, H, W) by w (C, O, kh, kw).

    Like the original, it is the gradient w.r.t. its input of a dummy forward ``conv2d`` (same
    ``subsample``, ``border_mode``, ``conv_mode``) whose input would be (N, O, H*sh, W*sw): the
    output has that shape. ``output_shape=(Ho, Wo)`` gives the spatial size explicitly, for
    geometries where ``H*sh`` is not the size a conv would map back to H (with asymmetric
    ``border_mode=((top, bottom), (left, right))`` this covers TensorFlow's conv2d_transpose).
    """
    s = normalize_subsample(subsample)
    op = Conv2dGradInputs(subsample=s, padding=normalize_padding(border_mode),
                          conv_mode=conv_mode)
    if output_shape is not None:
        out_hw = pt.as_tensor_variable(np.asarray(output_shape, dtype="int64"))
    else:
        X = pt.as_tensor_variable(X)
        h, w_ = X.type.shape[2:]
        if h is not None and w_ is not None:
            out_hw = pt.constant(np.array([h * s[0], w_ * s[1]], dtype="int64"))
        else:
            out_hw = X.shape[2:] * np.array(s, dtype="int64")
    return op(w, X, out_hw)


def max_pool(X, ws, stride=None):
    """Max pooling of (N, C, H, W) with window ``ws`` and ``stride`` (= ws), borders ignored.

    The original's ``dnn_pool(x, ws, stride, mode='max')``; rows/columns that do not fill a
    window are dropped (``ignore_border=True``).
    """
    ws = normalize_subsample(ws)
    stride = ws if stride is None else normalize_subsample(stride)
    if stride != ws:
        raise NotImplementedError(f"max_pool: only stride == ws is implemented (got ws={ws}, "
                                  f"stride={stride})")
    if ws == (1, 1):
        return X
    X = pt.as_tensor_variable(X)
    h, w = X.type.shape[2:]
    # static sizes when the graph knows them (XLA needs static slices: the JAX backend)
    ho = h // ws[0] if h is not None else X.shape[2] // ws[0]
    wo = w // ws[1] if w is not None else X.shape[3] // ws[1]
    if (h is None or h % ws[0]) or (w is None or w % ws[1]):
        X = X[:, :, : ho * ws[0], : wo * ws[1]]
    X = X.reshape((X.shape[0], X.shape[1], ho, ws[0], wo, ws[1]))
    return X.max(axis=(3, 5))


dnn_pool = max_pool


def _demo():
    """Print the seed presentation's conv2d_transpose example, computed as a conv gradient."""
    import pytensor

    x = np.arange(1, 17, dtype="float32").reshape(1, 1, 4, 4)
    w = np.ones((1, 1, 5, 5), dtype="float32")
    X, W = pt.tensor4("X"), pt.tensor4("W")
    # TensorFlow's conv2d_transpose(stride 4, 'SAME') to 16x16 is the input-gradient of a conv
    # of a 16x16 image by 5x5 kernels at stride 4 with padding 0 before and 1 after.
    y = deconv(X, W, subsample=(4, 4), border_mode=((0, 1), (0, 1)))
    f = pytensor.function([X, W], y)
    out = f(x, w)[0, 0]
    print(__doc__.splitlines()[0])
    print("""
Fractionally strided convolution (the paper's generator layers) is the gradient of a strided
convolution with respect to its input. A strided conv maps a 16x16 image to 4x4; its gradient
maps 4x4 back to 16x16: every input value is spread over the 5x5 kernel window its output
came from, windows 4 apart, and overlapping contributions add up. lib.ops.deconv builds exactly
this gradient, as the original did ("dummy convolutional forward pass and uses its grad").

input (4x4):""")
    print(x[0, 0].astype(int))
    print("\ndeconv(input, ones(5x5), subsample=(4, 4), border_mode=((0, 1), (0, 1))) -> 16x16:")
    with np.printoptions(linewidth=120):
        print(out.astype(int))


if __name__ == "__main__":
    _demo()
