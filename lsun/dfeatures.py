"""What the bedroom discriminator's last conv layer responds to (the paper's Fig. 5), by guided
backpropagation.

    python lsun/dfeatures.py --model=lsun/models/uncond_dcgan --data=PATH/bedroom_train_lmdb

For each of the first ``n_features`` feature maps of D's last conv layer (h4, 4x4), the ``top_k``
of ``n_pool`` real bedrooms (the first of ``--data``, an LSUN LMDB or its conversion) where the
map responds most (its largest value over the 4x4 positions); each is shown as the guided
gradient of that one activation with respect to the image (lib/guided.py: the rectifiers of
lsun/train_uncond_dcgan.py's own ``discrim`` pass back only positive gradients, where their input
was positive). Once for the trained D, once for a randomly initialised one (the script's
``init_params``, lib.rng seeded with ``seed``), as the paper. D's batchnorm uses population
statistics of the pool, so each image's gradient is its own.

Measured over the first ``n_measure`` maps, trained against random: how concentrated the
gradients are (share of the squared gradient in the top 5% of pixels), how alike each map's top
images are (mean distance between their 8x8 colour layouts over that of random pool pairs: below 1
= the map picks out something), and the share of positive activations. Writes
dfeatures_trained.png, dfeatures_random.png (rows: maps, columns: top images) and dfeatures.json
under ``out_dir``.
"""
import json
from pathlib import Path

import numpy as np

from lib import flags
from lib.data_image import DataError
from lib.files import atomic_write_text
from lib.guided import concentration, guided_views, mean_pair_distance, strongest, to_display

model = ''              # models folder (its latest epoch) or an <epoch>_gen/discrim_params file
data = ''               # the real bedrooms searched: an LSUN LMDB folder or its HDF5 conversion
n_pool = 1000           # # of real bedrooms searched for the strongest responses
n_features = 6          # # of feature maps shown (the paper: the first 6)
top_k = 8               # # of top images per feature map
n_measure = 32          # # of feature maps measured
seed = 0                # seed of the random discriminator and of the random pairs
nbatch = 128            # # of images per discriminator call
out_dir = 'dfeatures'   # dfeatures_{trained,random}.png and dfeatures.json go here
backend = 'c'           # c | numba | jax | pytorch | python

FLAGS = flags.declared(globals())  # every value above is a --flag


def discrim_file(path):
    """The discriminator parameter file of ``path``: itself, or the one beside a gen parameter
    file or a models folder's latest ``<epoch>_gen_params.npz`` (lsun/boxes.py)."""
    from lsun.boxes import model_file
    p = Path(path)
    if p.is_file() and '_discrim_params' in p.name:
        return p
    g = model_file(path)
    d = g.with_name(g.name.replace('_gen_params', '_discrim_params'))
    if not d.exists():
        raise DataError(f'--model={path}: no {d.name} beside {g.name}')
    return d


def load_discrim(path):
    """The 11 arrays of a bedroom discriminator parameter file."""
    from lib.params import load_params
    try:
        arrays = load_params(path)
    except (OSError, ValueError) as err:
        raise DataError(f'{path}: unreadable discriminator parameters ({err})') from None
    if len(arrays) != 11 or arrays[0].ndim != 4 or arrays[0].shape[1:] != (3, 5, 5):
        raise DataError(f'{path}: not the 11 arrays of the bedroom discriminator (the first '
                        f'(ndf, 3, 5, 5))')
    return arrays


def random_discrim(like, seed):
    """A freshly initialised discriminator of the same width as ``like``: the script's
    ``init_params`` with lib.rng seeded with ``seed`` (reseeded, not restored)."""
    from lib import rng
    import lsun.train_uncond_dcgan as script
    rng.set_seed(seed)
    saved = script.ndf
    script.ndf = like[0].shape[0]   # init_params reads the width from the script
    try:
        _, discrim_params = script.init_params()
    finally:
        script.ndf = saved
    return [p.get_value() for p in discrim_params]


def discriminator(arrays, pool, mode):
    """(X, h4): the script's ``discrim`` over ``arrays``, batchnorm with population statistics of
    ``pool`` (float32 (n, 3, 64, 64)), and its last conv layer's rectified maps."""
    import pytensor.tensor as T
    from lib.guided import rectifier_input, toposort_variables
    from lib.ops import with_population_stats
    from lib.theano_utils import sharedX
    import lsun.train_uncond_dcgan as script
    params = [sharedX(a) for a in arrays]
    X = T.tensor4('X')
    p = with_population_stats(lambda x: script.discrim(x, *params), X,
                              (pool[i:i + nbatch] for i in range(0, len(pool), nbatch)), mode)
    rect = [v for v in toposort_variables([p]) if rectifier_input(v) is not None]
    return X, rect[-1]


def layouts(X):
    """8x8 colour layouts (n, 192) of images (n, 3, 64, 64): means over 8x8 blocks."""
    n, c, h, w = X.shape
    return X.reshape(n, c, 8, h // 8, 8, w // 8).mean((3, 5)).reshape(n, -1)


def measure(X, act, grad, channels, k, rng):
    """Guided views (c, k, 3, 64, 64) and the measures of one discriminator (module doc)."""
    acts = np.concatenate([act(X[i:i + nbatch]) for i in range(0, len(X), nbatch)])
    imgs, rows, cols = strongest(acts, channels, k)
    views = np.stack([grad(X[imgs[j]], np.full(k, c), rows[j], cols[j])
                      for j, c in enumerate(channels)])
    L = layouts(X)
    pool_pairs = np.mean([mean_pair_distance(L[rng.choice(len(X), k, replace=False)])
                          for _ in range(50)])
    alike = np.array([mean_pair_distance(L[i]) for i in imgs]) / pool_pairs
    energy = concentration(views.reshape(-1, *views.shape[2:]))
    return views, dict(gradient_top5pct_energy=float(energy.mean()),
                       top_images_layout_distance_over_random=float(alike.mean()),
                       active_fraction=float(np.mean(acts > 0)),
                       top_images=imgs.tolist())


def main(argv=None):
    config = flags.configure(globals(), FLAGS, argv, positive=['n_pool', 'n_features', 'top_k',
                                                               'n_measure', 'nbatch'],
                             folders=['out_dir'])
    from lib.backend import get_mode, resolve_backend
    from lib.theano_utils import floatX
    from lib.vis import color_grid_vis
    from lsun.load import LSUN, WHERE
    try:
        if not model:
            raise DataError('--model: required (a bedroom run\'s models folder, e.g. '
                            'lsun/models/uncond_dcgan)')
        if not data:
            raise DataError(f'--data: required (the real bedrooms to search). {WHERE}')
        if top_k < 2 or n_pool < top_k:
            raise DataError(f'--top_k={top_k}, --n_pool={n_pool}: expected 2 <= top_k <= n_pool')
        path = discrim_file(model)
        arrays = load_discrim(path)
        d = LSUN(data, npx=64)
        try:
            imgs = d.get(range(min(n_pool, len(d))))
        finally:
            d.close()
        if len(imgs) < top_k:
            raise DataError(f'--data={data}: {len(imgs)} images decode, fewer than --top_k={top_k}')
        mode = get_mode(resolve_backend(backend))
    except (DataError, ValueError, RuntimeError) as e:
        flags.fail(e)
    X = floatX(imgs).transpose(0, 3, 1, 2) / 127.5 - 1.   # the training script's scaling
    C = arrays[-1].shape[0] // 16
    channels = np.arange(min(max(n_features, n_measure), C))
    print(f'model: {path} (ndf={arrays[0].shape[0]}, last conv layer {C} maps) | batchnorm: '
          f'population statistics of {len(X)} bedrooms of {data}', flush=True)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    results, pictures = {}, {}
    for name, params in (('trained', arrays), ('random', random_discrim(arrays, seed))):
        Xv, h4 = discriminator(params, X, mode)
        act, grad, n = guided_views(Xv, h4, mode)
        if n != 4:
            flags.fail(f"--model: found {n} rectifiers above D's last conv layer, expected 4")
        views, m = measure(X, act, grad, channels, top_k, np.random.RandomState(seed))
        results[name] = m
        shown = to_display(views[:n_features])
        pictures[name] = str(out / f'dfeatures_{name}.png')
        color_grid_vis((shown.transpose(0, 2, 3, 1) + 1.) / 2., (min(n_features, len(channels)),
                                                                  top_k), pictures[name])
        print(f'{name} D: gradient energy in top 5% pixels {m["gradient_top5pct_energy"]:.3f}, '
              f'top images layout distance / random {m["top_images_layout_distance_over_random"]:.3f}, '
              f'active fraction {m["active_fraction"]:.3f}', flush=True)
    record = dict(experiment='discriminator features (Fig. 5)', config=config, discrim=str(path),
                  n_pool=len(X), bn='population (D, over the pool)', channels=channels.tolist(),
                  measured=results, pictures=pictures,
                  paper=dict(claim="the trained D's features respond to parts of the scene (beds, "
                                   "windows); a random D's show no semantic structure"))
    atomic_write_text(out / 'dfeatures.json', json.dumps(record, indent=1) + '\n')
    print(f'wrote {out / "dfeatures.json"}, {pictures["trained"]}, {pictures["random"]}')
    return record


if __name__ == '__main__':
    flags.command(main)
