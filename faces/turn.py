"""The turn vector (the paper's Fig. 8): walking along one direction of z turns the head.

    python faces/turn.py [--model=DIR] [--seed=0] [--out_dir=section6]

The turn vector is the mean z of the ``n_pool`` samples the attribute network (faces/attrnet.py)
predicts looking left (yaw <= -``yaw_threshold``; -1 faces image-left) minus the mean z of those
looking right (yaw >= ``yaw_threshold``). From each of ``n_walks`` random faces z0, the walk is
z0 + s * turn for ``steps`` values of s evenly in [-``scale``, ``scale``]: s grows toward the
left, so the predicted yaw should fall. Per walk: the Spearman correlation of s and the predicted
yaw (-1: the head turns left monotonically), the R^2 of a straight line through them (the
paper: pose is linear in z), and whether the other attributes stay as they were.
Writes turn.png (the first ``rows`` walks) and turn.json under ``out_dir``.
"""
from pathlib import Path

import numpy as np

from lib import flags
from lib.data_image import exit_on_data_error
from lib.latent import direction, spearman
from faces import section6

model = section6.DEFAULT_MODEL  # gen params file, checkpoint, or models folder
epoch = 0               # epoch of a models folder (0 = its latest)
n_pool = 3000           # # of samples the turn vector is averaged from
yaw_threshold = 0.5     # |predicted yaw| at least this counts as looking left / right
n_walks = 100           # # of walks measured
steps = 9               # # of images per walk
scale = 1.0             # the walk's s runs over [-scale, scale] times the turn vector
rows = 10               # # of walks in the figure
seed = 0                # seed of the pool's and the start faces' z
bn = 'population'       # batchnorm statistics: population | batch
n_population = 10000    # # of samples the population statistics are inferred from
nbatch = 128            # # of z per generator call
out_dir = 'section6'    # turn.png and turn.json go here
backend = 'c'           # c | numba | jax | pytorch | python

FLAGS = flags.declared(globals())  # every value above is a --flag

STABLE = ('smiling', 'glasses', 'long_hair', 'hair')


def r_squared(x, y):
    """R^2 of the least-squares line through (x, y); 0 where y is constant."""
    if np.ptp(y) == 0:
        return 0.
    return float(np.corrcoef(x, y)[0, 1] ** 2)


def turn_measures(s, pred, n_walks_, steps_):
    """The measures of walks along a turn vector: ``s`` (steps,), ``pred`` the attribute
    network's predictions of the n_walks * steps images, walk by walk."""
    yaw = pred['yaw'].reshape(n_walks_, steps_)
    rho = np.array([spearman(s, y) for y in yaw])
    r2 = np.array([r_squared(s, y) for y in yaw])
    kept = {}
    for a in STABLE:
        v = pred[a].reshape(n_walks_, steps_)
        v = v if a == 'hair' else v > 0.5
        kept[a] = (v == v[:, :1]).all(axis=1)          # (n_walks,): as at the walk's start
    return dict(spearman_median=float(np.median(rho)), spearman_mean=float(rho.mean()),
                monotone_left_fraction=float(np.mean(rho <= -0.9)),
                r2_median=float(np.median(r2)),
                yaw_first_mean=float(yaw[:, 0].mean()), yaw_last_mean=float(yaw[:, -1].mean()),
                attribute_stable_fraction={a: float(v.mean()) for a, v in kept.items()},
                all_attributes_stable_fraction=float(np.mean(np.all(list(kept.values()), axis=0))),
                spearman_per_walk=rho)


def main(argv=None):
    config = flags.configure(globals(), FLAGS, argv, positive=['scale', 'rows', 'n_population',
                                                            'nbatch', 'n_pool', 'n_walks', 'steps'],
                             non_negative=['epoch'], folders=['out_dir'])
    for name, v, lo in (('n_walks', n_walks, 1), ('steps', steps, 3), ('n_pool', n_pool, 2)):
        if v < lo:
            flags.fail(f'--{name}={v}: expected at least {lo}')
    if not 0. <= yaw_threshold < 1.:
        flags.fail(f'--yaw_threshold={yaw_threshold}: expected a value in [0, 1)')
    mode, files, gen = exit_on_data_error(section6.setup, model, epoch, backend, bn, n_population,
                                          nbatch)
    print(section6.describe(files, gen, bn), flush=True)
    from faces import attrnet
    net = attrnet.load(mode=mode)
    rs = np.random.RandomState(seed)
    z = rs.uniform(-1., 1., (n_pool, gen.nz))
    pool = net.predict(gen.sample(z, 'pool'))
    try:
        turn, n_left, n_right = direction(z, pool['yaw'], -yaw_threshold, yaw_threshold)
    except ValueError:
        flags.fail(f'--yaw_threshold={yaw_threshold}: of {n_pool} samples, '
                   f'{int(np.sum(pool["yaw"] <= -yaw_threshold))} look left and '
                   f'{int(np.sum(pool["yaw"] >= yaw_threshold))} right; both are needed')
    s = np.linspace(-scale, scale, steps)
    z0 = rs.uniform(-1., 1., (n_walks, gen.nz))
    zw = (z0[:, None, :] + s[None, :, None] * turn).reshape(-1, gen.nz)
    X = gen.sample(zw, 'walks')
    pred = net.predict(X)
    measures = turn_measures(s, pred, n_walks, steps)
    out = Path(out_dir)
    pictures = dict(turn=section6.save_grid(X[:rows * steps], min(rows, n_walks), steps, out / 'turn.png'))
    record = dict(experiment='turn vector (Fig. 8)', config=config, model=files, bn=bn,
                  turn=dict(n_left=n_left, n_right=n_right, norm=float(np.linalg.norm(turn))),
                  walks=measures, pictures=pictures,
                  paper=dict(claim='pose is modelled linearly in z: the walk turns the head and '
                                   'keeps the face'))
    section6.write_json(record, out / 'turn.json')
    print(f'turn vector from {n_left} left / {n_right} right faces: Spearman(s, yaw) median '
          f'{measures["spearman_median"]:.2f}, monotone {measures["monotone_left_fraction"]:.0%} | '
          f'all attributes kept in {measures["all_attributes_stable_fraction"]:.0%} of walks | '
          f'wrote {out / "turn.json"}, {pictures["turn"]}')
    return record


if __name__ == '__main__':
    flags.command(main)
