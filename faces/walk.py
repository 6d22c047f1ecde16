"""Walking in the latent space (the paper's Fig. 4), how smooth the walks are, and the memorisation check.

    python faces/walk.py [--model=DIR] [--seed=0] [--out_dir=section6]

Each walk interpolates linearly between two random z ~ U(-1, 1) in ``steps`` images. Smoothness
is measured in the attribute network's feature space (faces/attrnet.py): the distribution of the
feature change per step, and the fraction of walks with one step over ``sharp_factor`` times
that walk's median step (a "sharp transition", which the paper reads as memorisation).
The memorisation check: ``n_mem`` samples, the mean distance (pixels, as the original's nnd)
to the nearest of ``n_ref`` images the model trained on and of ``n_ref`` held-out images,
and ``n_show`` samples beside their nearest training image.
Writes walk.png (the first ``rows`` walks), walk_nearest.png (pairs: sample, nearest training
image) and walk.json under ``out_dir``.
"""
from pathlib import Path

import numpy as np

from lib import flags
from lib.data_image import exit_on_data_error
from lib.latent import interpolate, step_sizes, walk_measures
from lib.metrics import nearest_neighbours
from faces import section6

model = section6.DEFAULT_MODEL  # gen params file, checkpoint, or models folder
epoch = 0               # epoch of a models folder (0 = its latest)
n_walks = 100           # # of walks measured
steps = 9               # # of images per walk (the paper: 9)
rows = 10               # # of walks in the figure (the paper: 10)
sharp_factor = 3.       # a step over this times the walk's median step is a sharp transition
n_mem = 1000            # # of samples for the memorisation check
n_ref = 5000            # # of training images, and of held-out images, they are compared with
n_show = 8              # # of samples shown beside their nearest training image
data = ''               # training data ('' = the run's config, else the script's synthetic faces)
seed = 0                # seed of the walks' and samples' z
bn = 'population'       # batchnorm statistics: population | batch
n_population = 10000    # # of samples the population statistics are inferred from
nbatch = 128            # # of z per generator call
out_dir = 'section6'    # walk.png, walk_nearest.png and walk.json go here
backend = 'c'           # c | numba | jax | pytorch | python

FLAGS = flags.declared(globals())  # every value above is a --flag


def walks(sample, features, z0, z1, steps_, progress=None):
    """Images (n_walks, steps, ...) and features (n_walks, steps, d) of the walks z0[i] -> z1[i].

    ``sample(z)``: images of z (m, nz); ``features(X)``: (m, d) features of images."""
    z = np.concatenate([interpolate(a, b, steps_) for a, b in zip(z0, z1)])
    X = sample(z, progress)
    F = features(X)
    return X.reshape((len(z0), steps_) + X.shape[1:]), F.reshape(len(z0), steps_, -1)


def memorisation(samples, train, heldout):
    """nnd of ``samples`` against ``train`` and against ``heldout`` (same count), pixel space,
    and each sample's nearest training image."""
    idx, d_train = nearest_neighbours(samples, train)
    _, d_held = nearest_neighbours(samples, heldout)
    return dict(nnd_train=float(d_train.mean()), nnd_heldout=float(d_held.mean()),
                nnd_train_over_heldout=float(d_train.mean() / d_held.mean()),
                closer_to_train_fraction=float(np.mean(d_train < d_held))), idx


def main(argv=None):
    config = flags.configure(globals(), FLAGS, argv, positive=['rows', 'sharp_factor', 'n_show',
                                                            'n_population', 'nbatch', 'n_walks',
                                                            'steps', 'n_mem', 'n_ref'],
                             non_negative=['epoch'], folders=['out_dir'])
    for name, v, lo in (('n_walks', n_walks, 1), ('steps', steps, 3), ('n_mem', n_mem, 1),
                        ('n_ref', n_ref, 1)):
        if v < lo:
            flags.fail(f'--{name}={v}: expected at least {lo}')
    if data and not section6.resolve(data).exists():
        flags.fail(f'--data={data}: no such file or folder')
    mode, files, gen = exit_on_data_error(section6.setup, model, epoch, backend, bn, n_population,
                                          nbatch)
    print(section6.describe(files, gen, bn), flush=True)
    from faces import attrnet
    net = attrnet.load(mode=mode)
    train, heldout, data_desc = exit_on_data_error(section6.data_splits, files['gen'], n_ref, data)
    n = min(len(train), len(heldout))
    train, heldout = train[:n], heldout[:n]
    rs = np.random.RandomState(seed)
    z0, z1 = rs.uniform(-1., 1., (2, n_walks, gen.nz))
    X, F = walks(gen.sample, lambda X: net.predict(X)['features'], z0, z1, steps, 'walks')
    measures = walk_measures(F, sharp_factor)
    s = step_sizes(F)
    # a scale for the steps: the feature distance between two independent samples
    measures['independent_pair_median'] = float(np.median(np.sqrt(((F[:, 0] - F[:, -1]) ** 2).sum(-1))))
    samples = gen.sample(rs.uniform(-1., 1., (n_mem, gen.nz)), 'samples')
    mem, idx = memorisation(samples, train, heldout)
    out = Path(out_dir)
    pictures = dict(
        walks=section6.save_grid(X[:rows].reshape((-1,) + X.shape[2:]), min(rows, n_walks), steps,
                                 out / 'walk.png'),
        nearest=section6.save_grid(np.stack([samples[:n_show], train[idx[:n_show]]], 1).reshape(
            (-1,) + samples.shape[1:]), min(n_show, n_mem), 2, out / 'walk_nearest.png'))
    record = dict(experiment='walk (Fig. 4)', config=config, model=files, bn=bn, data=data_desc,
                  walks=measures, sharp_walks=np.flatnonzero(s.max(1) > sharp_factor * np.median(s, 1)),
                  memorisation=dict(n_samples=n_mem, n_reference=n, **mem), pictures=pictures,
                  paper=dict(walks='smooth transitions, no sharp ones (sharp = memorisation)',
                             memorisation='samples are not copies of training images'))
    section6.write_json(record, out / 'walk.json')
    print(f'walks: step median {measures["step_median"]:.3f} (independent pairs '
          f'{measures["independent_pair_median"]:.3f}), sharp transitions in '
          f'{measures["sharp_fraction"]:.1%} of {n_walks} walks | nnd train {mem["nnd_train"]:.2f} '
          f'held-out {mem["nnd_heldout"]:.2f} | wrote {out / "walk.json"}, {pictures["walks"]}')
    return record


if __name__ == '__main__':
    flags.command(main)
