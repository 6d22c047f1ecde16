"""Making a generator forget an object (the paper's section 6.1, Fig. 6).

The paper fit a logistic regression on the feature maps of the generator's second-highest layer
to tell activations inside hand-drawn boxes around windows (positives) from activations at random
places of the same images (negatives), then dropped every feature map with a positive weight
and generated the same z again. This module is that recipe for any layer and any object mask;
a script supplies the generator's layer (its maps as a (n, C, H, W) array) and the masks, then
zeroes the maps that ``positive_maps`` names through a mask on that layer of its own ``gen``.
"""
import numpy as np
from sklearn.linear_model import LogisticRegression


def location_samples(features, masks, rng, negatives=1.):
    """Per-location training rows of the object classifier.

    ``features`` (n, C, H, W): a layer's maps; ``masks`` (n, H, W) bool: where the object is, at
    the layer's resolution. Positives: every masked location; negatives: ``negatives`` times as
    many random unmasked locations of the same image. Returns X (m, C) float64, y (m,) int.
    """
    features, masks = np.asarray(features, np.float64), np.asarray(masks, bool)
    if features.shape[:1] + features.shape[2:] != masks.shape:
        raise ValueError(f'features {features.shape} and masks {masks.shape} do not match')
    X, y = [], []
    for f, m in zip(features, masks):
        pos = np.flatnonzero(m.ravel())
        neg = np.flatnonzero(~m.ravel())
        if len(pos) == 0 or len(neg) == 0:
            continue
        neg = rng.choice(neg, min(len(neg), max(1, int(round(negatives * len(pos))))), replace=False)
        flat = f.reshape(f.shape[0], -1)
        X += [flat[:, pos].T, flat[:, neg].T]
        y += [np.ones(len(pos), int), np.zeros(len(neg), int)]
    if not X:
        raise ValueError('no image has both object and background locations')
    return np.concatenate(X), np.concatenate(y)


def fit_logistic(X, y, C=1.):
    """An L2-regularised logistic regression of y on X (sklearn): (coef (d,), intercept, accuracy)."""
    model = LogisticRegression(C=C, max_iter=2000)
    model.fit(X, y)
    return model.coef_[0], float(model.intercept_[0]), float(model.score(X, y))


def positive_maps(coef):
    """The feature maps the paper drops: those with a positive weight."""
    return np.flatnonzero(np.asarray(coef) > 0)


def random_maps(n_maps, k, rng):
    """``k`` feature maps of ``n_maps`` drawn uniformly without replacement (the control)."""
    return np.sort(rng.choice(n_maps, k, replace=False))


def keep_mask(n_maps, drop):
    """float32 (n_maps,): 1 for a kept map, 0 for one in ``drop``."""
    m = np.ones(n_maps, np.float32)
    m[np.asarray(drop, int)] = 0.
    return m


def resample(maps, size):
    """Maps (n, h, w) at size x size: block means to shrink, repeats to grow (integer ratios)."""
    maps = np.asarray(maps, np.float64)
    h = maps.shape[1]
    if size == h:
        return maps
    if h % size == 0:
        f = h // size
        return maps.reshape(len(maps), size, f, size, f).mean(axis=(2, 4))
    if size % h == 0:
        f = size // h
        return maps.repeat(f, axis=1).repeat(f, axis=2)
    raise ValueError(f'cannot resample {h}x{h} maps to {size}x{size}')
