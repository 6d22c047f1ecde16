"""Forgetting to draw glasses (the paper's Fig. 6, where the bedroom generator forgot windows).

    python faces/forget.py [--model=DIR] [--seed=0] [--out_dir=section6]

1. A glasses detector (``GlassesDetector``): a per-location logistic regression on the attribute
   network's conv features (a 16x16 map, one cell per 4x4 pixels), trained on ``n_detector``
   synthetic faces whose renderer reports where it drew the glasses (faces/synthetic.py), no
   hand labels; scored on held-out synthetic faces.
2. On ``n_fit`` generated faces, the detector's cells are the boxes: a logistic regression on the
   generator's ``layer`` (h3: the second-highest of gen's rectified layers, 16x16; the paper's
   200 dropped maps fit only its bedroom model's 256-map layer of this size) tells feature vectors
   inside detected glasses from random places of the same image (lib/forget.py).
3. Every feature map with a positive weight is dropped (zeroed through a mask on that layer of
   the script's own ``gen``) and the same ``n_eval`` z are generated again; control: as many
   random maps dropped, ``n_random`` times.
Measured on the same z before and after: the glasses rate (attribute network), the detected
glasses area, the other attributes, and FD against held-out real faces (faces/yardstick.py).
Writes forget.png (rows: before, glasses maps dropped, random maps dropped, on faces that had
glasses) and forget.json under ``out_dir``.
"""
from pathlib import Path

import numpy as np

from lib import flags
from lib.data_image import exit_on_data_error
from lib.forget import fit_logistic, keep_mask, location_samples, positive_maps, random_maps, resample
from faces import section6

model = section6.DEFAULT_MODEL  # gen params file, checkpoint, or models folder
epoch = 0               # epoch of a models folder (0 = its latest)
layer = 'h3'            # gen's layer whose maps are dropped: h2 (8x8), h3 (16x16), h4 (32x32)
n_detector = 1000       # # of synthetic faces the glasses detector is trained on
n_fit = 1000            # # of generated faces the dropping regression is fit on
n_eval = 2000           # # of generated faces measured before and after (same z)
n_random = 5            # # of random drops of as many maps (the control)
C = 1.0                 # inverse L2 strength of the dropping regression
box_threshold = 0.5     # a generated face's cell is inside a glasses box above this detector probability
n_show = 12             # # of faces in the figure
seed = 0                # seed of the z, the negatives and the random drops
bn = 'population'       # batchnorm statistics: population | batch
n_population = 10000    # # of samples the population statistics are inferred from
nbatch = 128            # # of z per generator call
out_dir = 'section6'    # forget.png and forget.json go here
backend = 'c'           # c | numba | jax | pytorch | python

FLAGS = flags.declared(globals(), also=['C'])  # every value above is a --flag

DETECTOR_SEED = 3       # synthetic faces of this seed train the detector (no other set uses it)
CELL = 16               # the detector's map: CELL x CELL cells of 4x4 pixels
COVER = 0.15            # a cell is glasses when the glasses cover this fraction of it


class GlassesDetector:
    """Where glasses are in a face: a (16, 16) probability map per image.

    Features per cell of 4x4 pixels, read from the attribute network's own graph
    (``attrnet.attrnet``) over its committed weights: its first conv layer's 2x2 cells (32x32),
    its second layer over the cell's 3x3 neighbourhood (16x16), and its third and fourth layers
    (8x8, 4x4) where the cell lies; standardised, then a logistic regression (lib/forget.py).
    """
    MIN_CELLS = 3       # an image shows glasses when at least this many cells are detected

    def __init__(self, net, mode):
        import pytensor
        import pytensor.tensor as T
        from faces import attrnet
        X = T.tensor4('X')
        f, _ = attrnet.attrnet(X, *net.params)
        layers = section6.rectified_layers(f)[:4]   # h, h2, h3, h4; then the dense features
        self._layers = pytensor.function([X], layers, mode=mode)
        self.coef = self.intercept = self.mu = self.sd = None

    def features(self, X, nbatch=250):
        """(n, d, 16, 16) features of images X (n, 3, 64, 64) in [-1, 1]."""
        parts = []
        for i in range(0, len(X), nbatch):
            h, h2, h3, h4 = self._layers(np.asarray(X[i:i + nbatch], np.float32))
            n, c = h.shape[:2]
            cells = h.reshape(n, c, CELL, 2, CELL, 2).transpose(0, 1, 3, 5, 2, 4)
            cells = cells.reshape(n, 4 * c, CELL, CELL)        # each cell's 2x2 of the 32x32 layer
            pad = np.pad(h2, ((0, 0), (0, 0), (1, 1), (1, 1)))
            around = [pad[:, :, a:a + CELL, b:b + CELL] for a in range(3) for b in range(3)]
            parts.append(np.concatenate([cells] + around + [
                h3.repeat(2, axis=2).repeat(2, axis=3), h4.repeat(4, axis=2).repeat(4, axis=3)], axis=1))
        return np.concatenate(parts)

    def _rows(self, X):
        F = self.features(X)
        return F.transpose(0, 2, 3, 1).reshape(-1, F.shape[1]), F.shape[0]

    def fit(self, X, masks, rng, negatives=0.2):
        """Train on images X and their pixel masks (n, 64, 64): every glasses cell and a
        ``negatives`` fraction of the others. Returns the training accuracy."""
        rows, _ = self._rows(X)
        labels = (resample(masks, CELL) >= COVER).ravel()
        keep = labels | (rng.uniform(size=len(labels)) < negatives)
        self.mu, self.sd = rows[keep].mean(0), rows[keep].std(0) + 1e-3
        self.coef, self.intercept, acc = fit_logistic((rows[keep] - self.mu) / self.sd,
                                                      labels[keep].astype(int))
        self.intercept += float(np.log(negatives))   # undo the negatives' subsampling in the odds
        return acc

    def predict(self, X):
        """Probability maps (n, 16, 16) that a cell shows glasses."""
        rows, n = self._rows(X)
        logit = ((rows - self.mu) / self.sd) @ self.coef + self.intercept
        return (1. / (1. + np.exp(-logit))).reshape(n, CELL, CELL)

    @classmethod
    def has_glasses(cls, maps):
        """Whether each probability map (n, 16, 16) shows glasses: (n,) bool."""
        return (maps > 0.5).sum((1, 2)) >= cls.MIN_CELLS

    def score(self, X, masks):
        """Per-cell precision and recall at p > 0.5 against the renderer's masks, and the
        image-level agreement (``has_glasses`` <=> the face has glasses)."""
        maps = self.predict(X)
        det = maps > 0.5
        y = resample(masks, CELL) >= COVER
        tp = float((det & y).sum())
        return dict(cell_precision=tp / max(det.sum(), 1), cell_recall=tp / max(y.sum(), 1),
                    image_agreement=float(np.mean(self.has_glasses(maps) == y.any((1, 2)))))


def train_detector(net, mode, n, rng):
    """A ``GlassesDetector`` fit on ``n`` synthetic faces of DETECTOR_SEED, scored on ``n``
    held-out faces (the yardstick's seed): (detector, scores)."""
    from faces import attrnet, synthetic
    imgs, _, masks = synthetic.render_range(DETECTOR_SEED, 0, n, 64, glasses_masks=True)
    det = GlassesDetector(net, mode)
    train_acc = det.fit(attrnet.transform(imgs), masks, rng)
    imgs, _, masks = synthetic.render_range(attrnet.HELDOUT_SEED, 0, n, 64, glasses_masks=True)
    return det, dict(n=n, train_accuracy=train_acc, **det.score(attrnet.transform(imgs), masks))


def attributes(pred, det_maps):
    """The rates the experiment compares: attribute-network glasses, smiling, long hair, yaw,
    hair colours, and the detector's glasses area and images."""
    return dict(glasses=float(np.mean(pred['glasses'] > 0.5)),
                glasses_detected_images=float(np.mean(GlassesDetector.has_glasses(det_maps))),
                glasses_detected_area=float(np.mean(det_maps > 0.5)),
                smiling=float(np.mean(pred['smiling'] > 0.5)),
                long_hair=float(np.mean(pred['long_hair'] > 0.5)),
                yaw_mean=float(np.mean(pred['yaw'])),
                hair_histogram=np.bincount(pred['hair'], minlength=6) / len(pred['hair']))


def main(argv=None):
    config = flags.configure(globals(), FLAGS, argv, positive=['C', 'n_show', 'n_population',
                                                            'nbatch', 'n_detector', 'n_fit',
                                                            'n_eval'],
                             non_negative=['epoch'], fractions=['box_threshold'],
                             folders=['out_dir'])
    if layer not in ('h2', 'h3', 'h4'):
        flags.fail(f'--layer={layer}: expected h2, h3 or h4 (gen\'s rectified conv layers)')
    for name, v, lo in (('n_detector', n_detector, 10), ('n_fit', n_fit, 2), ('n_eval', n_eval, 4),
                        ('n_random', n_random, 0)):
        if v < lo:
            flags.fail(f'--{name}={v}: expected at least {lo}')
    mode, files, gen = exit_on_data_error(section6.setup, model, epoch, backend, bn, n_population,
                                          nbatch)
    print(section6.describe(files, gen, bn) + f' | dropping maps of {layer}', flush=True)
    from faces import attrnet, yardstick
    net = attrnet.load(mode=mode)
    ys = exit_on_data_error(yardstick.make, n_eval, net=net)
    rs = np.random.RandomState(seed)
    det, det_scores = train_detector(net, mode, n_detector, rs)
    print(f'glasses detector: cell precision {det_scores["cell_precision"]:.2f} recall '
          f'{det_scores["cell_recall"]:.2f}, image agreement {det_scores["image_agreement"]:.3f}',
          flush=True)

    # the regression on gen's layer, inside detected glasses against elsewhere in the same image
    z_fit = rs.uniform(-1., 1., (n_fit, gen.nz))
    H, X_fit = gen.run(gen.compile([gen.layers[layer], gen.gX]), z_fit, 'fit samples')
    boxes = resample(det.predict(X_fit), H.shape[-1]) > box_threshold
    n_maps = H.shape[1]
    try:
        Xr, yr = location_samples(H, boxes, rs)
    except ValueError:
        flags.fail(f'--model={model}: none of {n_fit} samples has detected glasses; nothing to forget')
    coef, intercept, fit_acc = fit_logistic(Xr, yr, C)
    drop = positive_maps(coef)

    # the same z before and after
    gX_drop, mask = gen.drop(layer)
    _drop = gen.compile(gX_drop)
    z = rs.uniform(-1., 1., (n_eval, gen.nz))

    def measure(kept, label):
        mask.set_value(kept)
        X = gen.run(_drop, z, label)
        pred = net.predict(X)
        m = attributes(pred, det.predict(X))
        m['fd'] = ys.compare(pred)['fd']
        return m, X, pred
    before, X0, pred0 = measure(keep_mask(n_maps, []), 'before')
    after, X1, _ = measure(keep_mask(n_maps, drop), 'glasses maps dropped')
    randoms, X2 = [], None
    for i in range(n_random):
        m, X, _ = measure(keep_mask(n_maps, random_maps(n_maps, len(drop), rs)), f'random drop {i + 1}')
        randoms.append(m)
        X2 = X if X2 is None else X2
    mask.set_value(keep_mask(n_maps, []))
    keys = [k for k in before if k != 'hair_histogram']
    random_mean = {k: float(np.mean([m[k] for m in randoms])) for k in keys} if randoms else {}

    out = Path(out_dir)
    show = np.flatnonzero(pred0['glasses'] > 0.5)[:n_show]
    if len(show) < n_show:
        show = np.concatenate([show, np.setdiff1d(np.arange(n_eval), show)[:n_show - len(show)]])
    rows_ = [X0[show], X1[show]] + ([X2[show]] if X2 is not None else [])
    pictures = dict(forget=section6.save_grid(np.concatenate(rows_), len(rows_), len(show),
                                              out / 'forget.png'))
    record = dict(experiment='forgetting glasses (Fig. 6)', config=config, model=files, bn=bn,
                  detector=det_scores,
                  regression=dict(layer=layer, n_maps=n_maps, n_rows=len(yr),
                                  n_positive_rows=int(yr.sum()), train_accuracy=fit_acc,
                                  n_dropped=len(drop), dropped=drop,
                                  images_with_boxes=int(boxes.any((1, 2)).sum())),
                  before=before, after=after, random_mean=random_mean, random=randoms,
                  fd_floor=ys.floor['fd'], pictures=pictures,
                  paper=dict(claim='dropping the window maps removes most windows (or turns them '
                                   'into other objects) while the scene stays'))
    section6.write_json(record, out / 'forget.json')
    print(f'dropped {len(drop)} of {n_maps} maps of {layer}: glasses {before["glasses"]:.2f} -> '
          f'{after["glasses"]:.2f} (random drop: {random_mean.get("glasses", float("nan")):.2f}) | '
          f'FD {before["fd"]:.2f} -> {after["fd"]:.2f} (random {random_mean.get("fd", float("nan")):.2f}, '
          f'floor {ys.floor["fd"]:.2f}) | wrote {out / "forget.json"}, {pictures["forget"]}')
    return record


if __name__ == '__main__':
    flags.command(main)
