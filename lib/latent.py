"""Walks and arithmetic in a generator's latent space, and the measures of the paper's section 6
(Radford et al., 2016, Figs. 4, 7 and 8) that take no model: only z's and what a network read off
the images they give.
"""
import numpy as np
from scipy import stats


def interpolate(z0, z1, steps):
    """``steps`` points on the segment from z0 to z1 (both (nz,)), ends included: (steps, nz)."""
    t = np.linspace(0., 1., steps)[:, None]
    return (1. - t) * np.asarray(z0, np.float64) + t * np.asarray(z1, np.float64)


def step_sizes(features):
    """The distance between consecutive points of each walk: features (n_walks, steps, d) ->
    (n_walks, steps - 1)."""
    f = np.asarray(features, np.float64)
    return np.sqrt(((f[:, 1:] - f[:, :-1]) ** 2).sum(-1))


def sharp_transitions(steps, factor=3.):
    """For each walk (a row of ``step_sizes``), whether one step exceeds ``factor`` times that
    walk's median step (the paper's sign of memorisation: a walk that jumps between modes)."""
    steps = np.asarray(steps, np.float64)
    return steps.max(axis=1) > factor * np.median(steps, axis=1)


def walk_measures(features, factor=3.):
    """The smoothness of walks in a feature space: the distribution of the step size, each walk's
    largest step over its median, and the fraction of walks with a sharp transition."""
    s = step_sizes(features)
    ratio = s.max(axis=1) / np.maximum(np.median(s, axis=1), 1e-12)
    return dict(n_walks=int(len(s)), steps_per_walk=int(s.shape[1]),
                step_mean=float(s.mean()), step_median=float(np.median(s)),
                step_p10=float(np.percentile(s, 10)), step_p90=float(np.percentile(s, 90)),
                step_max=float(s.max()),
                max_over_median_median=float(np.median(ratio)),
                max_over_median_max=float(ratio.max()),
                sharp_factor=float(factor),
                sharp_fraction=float(np.mean(sharp_transitions(s, factor))))


def analogy(za, zb, zc):
    """The paper's vector arithmetic on concept means: mean(za) - mean(zb) + mean(zc), where each
    is (k, nz) (the z of k exemplars of a concept; k = 1 is single-exemplar arithmetic)."""
    return np.mean(za, axis=0) - np.mean(zb, axis=0) + np.mean(zc, axis=0)


def neighbours(z, n, radius, rng):
    """z (nz,) followed by ``n - 1`` copies with uniform noise in [-radius, radius] added (the
    paper's Fig. 7 shows a result and 8 such neighbours): (n, nz)."""
    z = np.asarray(z, np.float64)
    return np.concatenate([z[None], z + rng.uniform(-radius, radius, size=(n - 1, len(z)))])


def direction(z, scores, low, high):
    """The mean z of rows whose ``scores`` are at or below ``low`` minus the mean of those at or
    above ``high``, and the two counts: ((nz,), n_low, n_high)."""
    z, scores = np.asarray(z, np.float64), np.asarray(scores)
    lo, hi = scores <= low, scores >= high
    if not lo.any() or not hi.any():
        raise ValueError(f'no rows scored <= {low} ({lo.sum()}) or >= {high} ({hi.sum()})')
    return z[lo].mean(0) - z[hi].mean(0), int(lo.sum()), int(hi.sum())


def spearman(x, y):
    """Spearman's rank correlation of x and y (1-D), 0 where either is constant."""
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return 0.
    return float(stats.spearmanr(x, y)[0])
