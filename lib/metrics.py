"""The original evaluation metrics: nearest-neighbour scores and a cross-validated logistic regression.

The distance functions are compiled on first use (once per metric and backend), and the
distances are computed in (batch_size x batch_size) blocks, so 100k x 10k points fit in memory.
"""
import numpy as np
import pytensor
import pytensor.tensor as T
from sklearn import metrics
from sklearn.linear_model import LogisticRegression as LR

from lib import backend
from lib.ops import (cosine, cosine_given_norms, euclidean, euclidean_given_norms, l2norm,
                     sq_norms)
from lib.theano_utils import floatX

# PORT: the original compiled cosine_dist and euclid_dist at import time; here on first call
_compiled = {}


def _metric_fn(metric, mode=None):
    """The compiled distance (metric='euclidean') or similarity ('cosine') of two matrices.

    (n, d), (m, d) -> (n, m); ``mode`` is a backend name of lib.backend (None: PyTensor's default).
    """
    key = (metric, mode)
    if key not in _compiled:
        A = T.matrix('A')
        B = T.matrix('B')
        out = cosine(A, B) if metric == 'cosine' else euclidean(A, B)
        _compiled[key] = pytensor.function(
            [A, B], out, mode=None if mode is None else backend.get_mode(mode))
    return _compiled[key]


def _split_fns(metric, mode=None):
    """The compiled pieces of ``_metric_fn``'s function: the rows' norms (n, d) -> (n,) and the
    distance (similarity) given them (A, B, norms of A, norms of B) -> (n, m).

    The same graph cut in two: each row's norm, the product and the elementwise combination are
    computed by the same operations, so the pieces give ``_metric_fn``'s numbers bit for bit
    (tests/test_metrics.py), while the norms of rows that meet many blocks are computed once.
    """
    key = ('split', metric, mode)
    if key not in _compiled:
        A, B = T.matrix('A'), T.matrix('B')
        nA, nB = T.vector('nA'), T.vector('nB')
        if metric == 'cosine':
            norms, given = l2norm(A, keepdims=False), cosine_given_norms(A, B, nA, nB)
        else:
            norms, given = sq_norms(A), euclidean_given_norms(A, B, nA, nB)
        m = None if mode is None else backend.get_mode(mode)
        _compiled[key] = (pytensor.function([A], norms, mode=m),
                          pytensor.function([A, B, nA, nB], given, mode=m))
    return _compiled[key]


def cosine_dist(A, B, mode=None):
    """Cosine similarities of the rows of A (n, d) and B (m, d): (n, m) float32."""
    return _metric_fn('cosine', mode)(floatX(A), floatX(B))


def euclid_dist(A, B, mode=None):
    """Euclidean distances sqrt(|a|^2 + |b|^2 - 2 a.b) of the rows of A (n, d), B (m, d): (n, m)."""
    return _metric_fn('euclidean', mode)(floatX(A), floatX(B))


def cv_reg_lr(trX, trY, vaX, vaY, Cs=[0.01, 0.05, 0.1, 0.5, 1., 5., 10., 50., 100.]):
    """The logistic regression (one per C in ``Cs``) with the best accuracy on (vaX, vaY).

    trX (n, d), trY (n,) integer labels; prints each C's train and validation accuracies.
    """
    tr_accs = []
    va_accs = []
    models = []
    for C in Cs:
        model = LR(C=C)
        model.fit(trX, trY)
        tr_pred = model.predict(trX)
        va_pred = model.predict(vaX)
        tr_acc = metrics.accuracy_score(trY, tr_pred)
        va_acc = metrics.accuracy_score(vaY, va_pred)
        print('%.4f %.4f %.4f' % (C, tr_acc, va_acc))
        tr_accs.append(tr_acc)
        va_accs.append(va_acc)
        models.append(model)
    best = np.argmax(va_accs)
    print('best model C: %.4f tr_acc: %.4f va_acc: %.4f' % (Cs[best], tr_accs[best], va_accs[best]))
    return models[best]


def gpu_nnc_predict(trX, trY, teX, metric='cosine', batch_size=4096, mode=None):
    """For each row of teX (m, d), the label trY[i] of its nearest row of trX (n, d): (m,).

    Nearest: the largest cosine similarity (metric='cosine') or the smallest euclidean distance;
    ties go to the first training row. ``mode``: a lib.backend name for the distance function.
    """
    # PORT: ``mode`` is new (the original had one Theano device); None is PyTensor's default
    if metric == 'cosine':
        metric_fn = cosine_dist
    else:
        metric_fn = euclid_dist
    idxs = []
    for i in range(0, len(teX), batch_size):
        mb_dists = []
        mb_idxs = []
        for j in range(0, len(trX), batch_size):
            dist = metric_fn(teX[i:i + batch_size], trX[j:j + batch_size], mode=mode)
            if metric == 'cosine':
                mb_dists.append(np.max(dist, axis=1))
                mb_idxs.append(j + np.argmax(dist, axis=1))
            else:
                mb_dists.append(np.min(dist, axis=1))
                mb_idxs.append(j + np.argmin(dist, axis=1))
        mb_idxs = np.asarray(mb_idxs)
        mb_dists = np.asarray(mb_dists)
        if metric == 'cosine':
            best = mb_idxs[np.argmax(mb_dists, axis=0), np.arange(mb_idxs.shape[1])]
        else:
            best = mb_idxs[np.argmin(mb_dists, axis=0), np.arange(mb_idxs.shape[1])]
        idxs.append(best)
    idxs = np.concatenate(idxs, axis=0)
    nearest = trY[idxs]
    return nearest


def gpu_nnd_score(trX, teX, metric='cosine', batch_size=4096, mode=None):
    """Mean over the rows of teX (m, d) of the distance to (euclidean: smallest) or similarity
    with (cosine: largest) the nearest row of trX (n, d): a float."""
    if metric == 'cosine':
        metric_fn = cosine_dist
    else:
        metric_fn = euclid_dist
    dists = []
    for i in range(0, len(teX), batch_size):
        mb_dists = []
        for j in range(0, len(trX), batch_size):
            dist = metric_fn(teX[i:i + batch_size], trX[j:j + batch_size], mode=mode)
            if metric == 'cosine':
                mb_dists.append(np.max(dist, axis=1))
            else:
                mb_dists.append(np.min(dist, axis=1))
        mb_dists = np.asarray(mb_dists)
        if metric == 'cosine':
            d = np.max(mb_dists, axis=0)
        else:
            d = np.min(mb_dists, axis=0)
        dists.append(d)
    dists = np.concatenate(dists, axis=0)
    return float(np.mean(dists))


def nnc_score(trX, trY, teX, teY, metric='euclidean', mode=None):
    """Nearest-neighbour classification accuracy of teX (m, d) against labelled trX, in percent."""
    pred = gpu_nnc_predict(trX, trY, teX, metric=metric, mode=mode)
    acc = metrics.accuracy_score(teY, pred)
    return acc * 100.


def nnd_score(trX, teX, metric='euclidean', mode=None):
    """Mean nearest-neighbour distance from the rows of teX to trX (see ``gpu_nnd_score``)."""
    return gpu_nnd_score(trX, teX, metric=metric, mode=mode)


def block_rows(d, budget=2**23):
    """Rows of a (rows, d) float32 block of at most ``budget`` bytes (8 MiB; 1 .. 4096 rows).

    With 64 px colour images: 170 rows. The streamed scores then hold about 30 MB at their peak
    where the original's 4096-row blocks held 518 MB, for 1.05x their CPU time
    (bench/epoch_end_memory.py, bench/README.md).
    """
    return int(min(4096, max(1, budget // (4 * d))))


TE_ROWS = 4096  # the rows of teX in one distance call of StreamedNNDScores


class StreamedNNDScores:
    """``nnd_score(trX[:n], teX)`` (and, given labels, ``nnc_score(trX[:n], trY[:n], teX,
    teY)``) for several prefix sizes ``ns`` of samples ``trX`` that arrive in pieces (``add``),
    holding one block of ``batch_size`` samples at a time, not all of them.

    Each distance is computed by the same operations as in ``gpu_nnd_score`` and
    ``gpu_nnc_predict`` (the norms apart, the product and their combination; one element does
    not depend on the blocks around it), and reduced with the same exact min/max (ties to the
    first sample), so ``scores()`` equals them bit for bit (tests/test_metrics.py checks it at
    several block sizes). A prefix longer than the samples added is None.
    ``batch_size`` None: ``block_rows`` of the rows' width, so that a block and the distance
    function's temporaries stay a few tens of MB whatever the image size. The norms of teX's rows
    are computed once, and those of a block once, not once per pair of blocks.
    """

    def __init__(self, teX, ns, metric='euclidean', batch_size=None, mode=None, teY=None):
        self.teX = floatX(np.asarray(teX).reshape(len(teX), -1))
        self.teY = None if teY is None else np.asarray(teY)
        self.ns = sorted(set(int(n) for n in ns))
        self.metric = metric
        self.batch_size = batch_size or block_rows(self.teX.shape[1])
        self.mode = mode
        self.te_norms = None  # the rows' norms of teX, computed with the first block
        self.count = 0  # samples added so far
        self.block = None  # the samples of the current block, [count - filled, count)
        self.labels = None  # and their labels (nnc)
        self.filled = 0
        self._best = {n: None for n in self.ns}
        self._label = {n: None for n in self.ns}

    def _nearest(self, B, L):
        """For each row of teX: its best distance (similarity) to the rows of B, and the label
        in L of the first row that has it (None without labels)."""
        norms, given = _split_fns(self.metric, self.mode)

        def norms_of(X):  # in pieces of 4 MiB: the squared rows are a temporary of that size
            rows = block_rows(X.shape[1], 2**22)
            return np.concatenate([norms(X[i:i + rows]) for i in range(0, len(X), rows)])

        if self.te_norms is None:  # teX's norms, once
            self.te_norms = norms_of(self.teX)
        pick = np.argmax if self.metric == 'cosine' else np.argmin
        best, labels = [], []
        B_norms = norms_of(B)
        # teX's rows in the original's blocks of 4096 whatever the samples' block: a view and its
        # (4096, len(B)) distances, and a product large enough on that side to run at speed
        for i in range(0, len(self.teX), TE_ROWS):
            dist = given(self.teX[i:i + TE_ROWS], B, self.te_norms[i:i + TE_ROWS], B_norms)
            idx = pick(dist, axis=1)
            best.append(dist[np.arange(len(dist)), idx])
            if L is not None:
                labels.append(L[idx])
        return np.concatenate(best), (np.concatenate(labels) if L is not None else None)

    def _fold(self, n, best, labels):
        """Reduce one block's nearest distances (and labels) into prefix n's."""
        if self._best[n] is None:
            self._best[n], self._label[n] = best, labels
            return
        if labels is not None:  # an earlier block keeps its label on a tie
            better = best > self._best[n] if self.metric == 'cosine' else best < self._best[n]
            self._label[n] = np.where(better, labels, self._label[n])
        reduce = np.maximum if self.metric == 'cosine' else np.minimum
        self._best[n] = reduce(self._best[n], best)

    def add(self, X, Y=None):
        """Add samples X (m, ...), flattened to rows, after those added before; ``Y`` (m,):
        their labels, for ``nnc``."""
        X = floatX(np.asarray(X).reshape(len(X), -1))
        if self.block is None:  # no prefix needs more rows than its size
            rows = min(self.batch_size, self.ns[-1])
            self.block = np.empty((rows, X.shape[1]), dtype=X.dtype)
            if Y is not None:
                self.labels = np.empty(rows, dtype=np.asarray(Y).dtype)
        pos = 0
        while pos < len(X) and self.count < self.ns[-1]:  # rows past every prefix: unused
            ends = [n for n in self.ns if n > self.count]
            take = min(len(X) - pos, self.batch_size - self.filled,
                       *(n - self.count for n in ends[:1]))
            self.block[self.filled:self.filled + take] = X[pos:pos + take]
            if Y is not None:
                self.labels[self.filled:self.filled + take] = Y[pos:pos + take]
            pos += take
            self.filled += take
            self.count += take
            # prefix n takes this block when it is full, or when n ends inside it here; the
            # prefixes that take the same block share its distances
            takers = [n for n in self.ns
                      if (n >= self.count if self.filled == self.batch_size else n == self.count)]
            if takers:
                best, labels = self._nearest(self.block[:self.filled],
                                             None if Y is None else self.labels[:self.filled])
                for n in takers:
                    self._fold(n, best, labels)
            if self.filled == self.batch_size:
                self.filled = 0

    def scores(self):
        """{n: the mean nearest-neighbour distance (similarity) over teX, or None}."""
        return {n: float(np.mean(self._best[n])) if self.count >= n else None for n in self.ns}

    def nnc(self):
        """{n: the accuracy (percent) of teX's labels predicted by their nearest samples'
        labels, or None} (needs teY and labelled samples)."""
        return {n: metrics.accuracy_score(self.teY, self._label[n]) * 100.
                if self.count >= n else None for n in self.ns}


# --------------------------------------------------------------------------------------------
# Distribution measures of the faces yardstick (faces/yardstick.py): NumPy/SciPy, float64
# --------------------------------------------------------------------------------------------

def gaussian_stats(X):
    """Mean (d,) and unbiased covariance (d, d) of the rows of X (n, d), in float64."""
    X = np.asarray(X, dtype=np.float64)
    return X.mean(axis=0), np.cov(X, rowvar=False)


def frechet_distance(mu1, sigma1, mu2, sigma2):
    """Frechet distance of two Gaussians: |mu1 - mu2|^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2)).

    The trace of (S1 S2)^(1/2) is computed as the sum of the square roots of the eigenvalues of
    the symmetric S1^(1/2) S2 S1^(1/2) (the same eigenvalues), which stays real and stable where
    a general matrix square root of S1 S2 picks up imaginary round-off.
    """
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    s1, s2 = np.atleast_2d(sigma1).astype(np.float64), np.atleast_2d(sigma2).astype(np.float64)
    w1, v1 = np.linalg.eigh(s1)
    root1 = (v1 * np.sqrt(np.clip(w1, 0, None))) @ v1.T
    m = root1 @ s2 @ root1
    eig = np.linalg.eigvalsh((m + m.T) / 2)
    tr_covmean = np.sqrt(np.clip(eig, 0, None)).sum()
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2 * tr_covmean)


def frechet_distance_of(X, Y):
    """Frechet distance between Gaussians fitted to the rows of X (n, d) and Y (m, d)."""
    return frechet_distance(*gaussian_stats(X), *gaussian_stats(Y))


def _sq_dists(A, B):
    """Squared Euclidean distances (n, m) of the rows of A and B, float64, clipped at 0."""
    d = (A * A).sum(1)[:, None] + (B * B).sum(1)[None, :] - 2 * A @ B.T
    return np.maximum(d, 0)


def knn_radii(X, k=3, chunk=1024):
    """Distance from each row of X (n, d) to its k-th nearest other row: (n,)."""
    X = np.asarray(X, dtype=np.float64)
    if len(X) <= k:
        raise ValueError(f'{len(X)} points: k-nearest-neighbour radii need more than k={k}')
    radii = np.empty(len(X))
    for i in range(0, len(X), chunk):
        d = _sq_dists(X[i:i + chunk], X)
        # the k-th smallest after the point itself (distance 0, index 0 of the partition)
        radii[i:i + chunk] = np.sqrt(np.partition(d, k, axis=1)[:, k])
    return radii


def manifold_coverage(manifold, radii, queries, chunk=1024):
    """Fraction of ``queries`` inside the union of balls around ``manifold``'s rows with ``radii``."""
    manifold = np.asarray(manifold, dtype=np.float64)
    queries = np.asarray(queries, dtype=np.float64)
    r2 = radii ** 2
    inside = np.empty(len(queries), dtype=bool)
    for i in range(0, len(queries), chunk):
        inside[i:i + chunk] = (_sq_dists(queries[i:i + chunk], manifold) <= r2[None, :]).any(1)
    return float(inside.mean())


def precision_recall(real, fake, k=3):
    """Improved precision and recall (Kynkaanniemi et al., 2019) with k-NN manifolds.

    Precision: the fraction of ``fake`` rows within the k-NN ball of some ``real`` row; recall:
    the fraction of ``real`` rows within the k-NN ball of some ``fake`` row. Returns (p, r).
    """
    precision = manifold_coverage(real, knn_radii(real, k), fake)
    recall = manifold_coverage(fake, knn_radii(fake, k), real)
    return precision, recall


def total_variation(a, b, bins=10, range_=(-1., 1.)):
    """Total-variation distance between the histograms of samples ``a`` and ``b``.

    Both are binned on ``bins`` equal bins over ``range_`` (values outside are clipped into the
    end bins); the result is half the L1 distance of the two normalised histograms, in [0, 1].
    """
    lo, hi = range_
    ha, _ = np.histogram(np.clip(a, lo, hi), bins=bins, range=range_)
    hb, _ = np.histogram(np.clip(b, lo, hi), bins=bins, range=range_)
    return float(0.5 * np.abs(ha / ha.sum() - hb / hb.sum()).sum())


def nearest_neighbours(queries, reference, chunk=512):
    """For each row of ``queries`` (n, d), the index of its nearest row of ``reference`` (m, d)
    and the Euclidean distance to it: ((n,) int64, (n,) float64). Ties go to the first row."""
    queries = np.asarray(queries, dtype=np.float64).reshape(len(queries), -1)
    reference = np.asarray(reference, dtype=np.float64).reshape(len(reference), -1)
    idx = np.empty(len(queries), np.int64)
    dist = np.empty(len(queries))
    for i in range(0, len(queries), chunk):
        d = _sq_dists(queries[i:i + chunk], reference)
        idx[i:i + chunk] = np.argmin(d, axis=1)
        dist[i:i + chunk] = np.sqrt(d[np.arange(len(d)), idx[i:i + chunk]])
    return idx, dist
