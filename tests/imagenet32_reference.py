"""NumPy float64 reference of the 32x32 ImageNet DCGAN (imagenet/load_pretrained.py) and of the
paper's CIFAR-10 features, written independently of lib.ops: true convolution (kernel flipped)
by explicit shifted sums, deconvolution as its adjoint (scatter), batchnorm with eps 1e-8 and
biased variance, LeakyReLU 0.2, max pooling with stride = window."""
import numpy as np


def _conv(X, w, s, p):
    """True convolution (kernel flipped) of X (n, c, h, w) by w (o, c, k, k), NumPy float64."""
    k = w.shape[2]
    Xp = np.pad(X, ((0, 0), (0, 0), (p, p), (p, p)))
    ho = (Xp.shape[2] - k) // s + 1
    wo = (Xp.shape[3] - k) // s + 1
    wf = w[:, :, ::-1, ::-1]
    out = np.zeros((X.shape[0], w.shape[0], ho, wo))
    for i in range(k):
        for j in range(k):
            patch = Xp[:, :, i:i + s * ho:s, j:j + s * wo:s]
            out += np.einsum('nchw,oc->nohw', patch, wf[:, :, i, j])
    return out


def _deconv(X, w, s, p):
    """The adjoint of _conv: X (n, o, h, w), w (o, c, k, k) -> (n, c, h*s, w*s)."""
    k = w.shape[2]
    H, W = X.shape[2] * s, X.shape[3] * s
    out = np.zeros((X.shape[0], w.shape[1], H + 2 * p, W + 2 * p))
    wf = w[:, :, ::-1, ::-1]
    for i in range(k):
        for j in range(k):
            contrib = np.einsum('nohw,oc->nchw', X, wf[:, :, i, j])
            out[:, :, i:i + s * X.shape[2]:s, j:j + s * X.shape[3]:s] += contrib
    return out[:, :, p:p + H, p:p + W]


def batch_stats(X):
    """Per-channel mean and biased variance of X (n, c, h, w) or (n, c)."""
    axes = (0, 2, 3) if X.ndim == 4 else (0,)
    return X.mean(axis=axes), X.var(axis=axes)


def _bn(X, g=None, b=None, u=None, v=None):
    if u is None:
        u, v = batch_stats(X)
    shape = (1, -1, 1, 1) if X.ndim == 4 else (1, -1)
    X = (X - u.reshape(shape)) / np.sqrt(v.reshape(shape) + 1e-8)
    if g is not None:
        X = X * g.reshape(shape) + b.reshape(shape)
    return X


def _relu(x):
    return np.maximum(x, 0)


def _lrelu(x):
    return np.where(x > 0, x, 0.2 * x)


def np_gen(Z, w, g, b, w2, g2, b2, w3, g3, b3, w4, g4, b4, w5, g5, b5, w6, g6, b6, wx):
    h = _relu(_bn(Z @ w, g, b)).reshape(len(Z), w2.shape[0], 4, 4)
    for wi, gi, bi, s in ((w2, g2, b2, 2), (w3, g3, b3, 1), (w4, g4, b4, 2), (w5, g5, b5, 1),
                          (w6, g6, b6, 2)):
        h = _relu(_bn(_deconv(h, wi, s, 1), gi, bi))
    return np.tanh(_deconv(h, wx, 1, 1))


def np_discrim_layers(X, w, *rest, stats=None):
    """[h, ..., h6]; batchnorm with batch statistics, or ``stats`` = [(u, v)] * 5 given.

    Returns (layers, the batch statistics of the five pre-batchnorm conv outputs)."""
    hs = [_lrelu(_conv(X, w, 1, 1))]
    seen = []
    for layer, s in zip(range(5), (2, 1, 2, 1, 2)):
        wi, gi, bi = rest[3 * layer:3 * layer + 3]
        c = _conv(hs[-1], wi, s, 1)
        seen.append(batch_stats(c))
        u, v = stats[layer] if stats is not None else seen[-1]
        hs.append(_lrelu(_bn(c, gi, bi, u, v)))
    return hs, seen


def np_max_pool(X, k):
    """Max over k x k windows, stride k, borders that do not fill a window dropped."""
    n, c, h, w = X.shape
    X = X[:, :, :h // k * k, :w // k * k].reshape(n, c, h // k, k, w // k, k)
    return X.max(axis=(3, 5))


def np_cifar_features(hs):
    """Each layer max-pooled to a 4x4 grid, flattened channel-major, concatenated."""
    return np.concatenate([np_max_pool(h, h.shape[2] // 4).reshape(len(h), -1) for h in hs],
                          axis=1)


