"""The faces yardstick: how close a generator's faces are to the data, in the attribute network's terms.

Measures, each between ``n`` generated faces and ``n`` held-out real faces:

- ``fd``: the Frechet distance of Gaussians fitted to the attribute network's penultimate
  features (as FID does with Inception features); ``fd_floor`` is the same between two disjoint
  held-out real sets of ``n``, the value a perfect generator would get at this sample size.
- ``precision``, ``recall``: improved precision and recall with k = 3 nearest-neighbour
  manifolds (Kynkaanniemi et al., 2019) in the same feature space.
- coverage (labelled data only): the fraction of faces predicted smiling, with glasses and with
  long hair, generated against real (``<attr>_gen``, ``<attr>_real``, ``<attr>_gap``), and
  ``yaw_tv``, the total-variation distance between the histograms (10 bins on [-1, 1]) of the
  predicted yaw of generated and of real faces.

The real faces are the held-out synthetic faces (seed ``attrnet.HELDOUT_SEED``, never trained on
by a GAN or by the attribute network), or, for ``--data`` given as an HDF5 file or image folder,
that data's test split; such data has no attribute labels unless it is a synthetic-faces file,
and then only the label-free measures (fd, precision, recall) are computed.
"""
import numpy as np

from lib.data_image import DataError, center_crop
from lib.metrics import frechet_distance_of, precision_recall, total_variation
from faces import attrnet

K = 3   # neighbours of the precision/recall manifolds (the paper's default)


def real_faces(n, data=''):
    """``2 n`` held-out real faces as float32 (2n, 3, 64, 64) in [-1, 1], and whether labelled.

    ``data`` '' is the held-out synthetic faces; otherwise an .hdf5 file or image folder, whose
    test split must hold ``2 n`` images (two disjoint sets: one to compare with, one for the floor).
    """
    from lib.data_hdf5 import H5Dataset
    from faces import synthetic
    from faces.load import resolve_path
    if not data:
        path = synthetic.ensure(n=2 * n, seed=attrnet.HELDOUT_SEED, size=attrnet.NPX)
        # the whole file is held out: both of its splits
        ds = H5Dataset(path, which_sets=('train', 'test'), npx=attrnet.NPX)
        labelled = True
    else:
        path = resolve_path(data, size=attrnet.NPX)
        ds = H5Dataset(path, which_sets=('test',), npx=attrnet.NPX)
        labelled = set(attrnet.BINARY + ('yaw',)) <= set(ds.attribute_names())
        if ds.num_examples < 2 * n:
            raise DataError(f"--n_eval={n}: the yardstick needs {2 * n} held-out real faces, "
                            f"{path} has {ds.num_examples} in its 'test' split")
    handle = ds.open()
    try:
        imgs, = ds.get_data(handle, slice(0, 2 * n))
    finally:
        ds.close(handle)
    imgs = np.stack([center_crop(x, attrnet.NPX) for x in imgs])
    return attrnet.transform(imgs), labelled


class Yardstick:
    """The reference side of the measures: the real faces' features and predictions.

    ``net``: an ``attrnet.AttributeNet``; ``real``: float32 (2n, 3, 64, 64) in [-1, 1], the first
    n compared with generated faces, the other n only for the real-against-real floor.
    """

    def __init__(self, net, real, labelled=True):
        if len(real) < 2 * (K + 1) or len(real) % 2:
            raise ValueError(f'{len(real)} real faces: need an even number, at least {2 * (K + 1)}')
        self.net = net
        self.n = len(real) // 2
        self.images = real[:self.n]
        self.labelled = labelled
        pred = net.predict(real)
        self.real = {k: v[:self.n] for k, v in pred.items()}
        self.other = {k: v[self.n:] for k, v in pred.items()}
        self.floor = self.compare(self.other)
        self.floor_fd = self.floor['fd']

    def compare(self, pred):
        """The measures of predictions ``pred`` (``net.predict`` of n faces) against the real n."""
        out = dict(fd=frechet_distance_of(pred['features'], self.real['features']))
        out['precision'], out['recall'] = precision_recall(self.real['features'], pred['features'], K)
        if self.labelled:
            for a in attrnet.BINARY:
                g, r = float(np.mean(pred[a] > 0.5)), float(np.mean(self.real[a] > 0.5))
                out.update({f'{a}_gen': g, f'{a}_real': r, f'{a}_gap': abs(g - r)})
            out['yaw_tv'] = total_variation(pred['yaw'], self.real['yaw'])
        return out

    def measure(self, X):
        """All measures of generated faces X (float32 (n, 3, 64, 64) in [-1, 1]), with the floor."""
        return self.measure_batches([X])

    def measure_batches(self, batches):
        """``measure`` of the faces of ``batches`` (float32 (m, 3, 64, 64) arrays), which pass
        the network one at a time: only their features and predictions are kept."""
        preds = [self.net.predict(np.asarray(X)) for X in batches]
        pred = {k: np.concatenate([p[k] for p in preds]) for k in preds[0]}
        if len(pred['features']) != self.n:
            raise ValueError(f'{len(pred["features"])} generated faces, the yardstick compares '
                             f'{self.n}')
        out = self.compare(pred)
        out['fd_floor'] = self.floor_fd
        return out


def make(n, data='', net=None, mode=None):
    """A ``Yardstick`` over ``n`` held-out real faces of ``data`` (see ``real_faces``)."""
    real, labelled = real_faces(n, data)
    return Yardstick(net or attrnet.load(mode=mode), real, labelled)


COLUMNS = ('fd', 'precision', 'recall', 'smiling_gap', 'glasses_gap', 'long_hair_gap', 'yaw_tv')


def format_table(rows):
    """A plain-text table of measure dicts: ``rows`` is a list of (label, dict)."""
    cols = [c for c in COLUMNS + ('smiling_gen', 'glasses_gen', 'long_hair_gen')
            if any(c in r for _, r in rows)]
    width = max(len(label) for label, _ in rows)
    lines = [' '.join([f'{"":{width}}'] + [f'{c:>13}' for c in cols])]
    for label, r in rows:
        lines.append(' '.join([f'{label:{width}}'] + [f'{r[c]:13.4f}' if c in r else f'{"-":>13}'
                                                        for c in cols]))
    return '\n'.join(lines)
