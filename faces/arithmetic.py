"""Vector arithmetic on faces (the paper's Fig. 7), and how often it works.

    python faces/arithmetic.py [--model=DIR] [--seed=0] [--out_dir=section6]

Exemplars are chosen by the attribute network (faces/attrnet.py) from ``n_pool`` samples, never
by hand: a face is an exemplar of "smiling" when it is predicted smiling with probability at
least ``confident``, of "not smiling" when at most 1 - ``confident``. Each equation moves one
attribute (t) between faces that differ in another (c), as the paper's "smiling woman - neutral
woman + neutral man = smiling man":

    (t, c) - (not t, c) + (not t, not c)  ->  (t, not c)

with the z of ``k`` exemplars averaged per concept. The result and ``n_neighbours - 1``
neighbours (uniform noise of +-``radius`` added to z, as the paper) are generated. Success: the
attribute network finds t and not c on the result. Measured over ``n_draws`` random draws of
exemplars, against single-exemplar arithmetic (k = 1) and the baseline (the third concept's
own averaged z). Writes arithmetic.png (per equation, ``show`` draws: the 3k exemplars, then the
result and its neighbours) and arithmetic.json under ``out_dir``.
"""
from pathlib import Path

import numpy as np

from lib import flags
from lib.data_image import DataError, exit_on_data_error
from lib.latent import analogy, neighbours
from faces import section6

model = section6.DEFAULT_MODEL  # gen params file, checkpoint, or models folder
epoch = 0               # epoch of a models folder (0 = its latest)
equations = 'smiling:long_hair,glasses:long_hair,long_hair:glasses'  # t:c pairs (transfer t)
n_pool = 3000           # # of samples exemplars are chosen from
confident = 0.9         # an exemplar's predicted probability: >= this (has), <= 1 - this (lacks)
k = 3                   # # of exemplars averaged per concept (the paper: 3)
n_draws = 100           # # of random draws of exemplars per equation
n_neighbours = 9        # the result and its noisy neighbours (the paper: 1 + 8)
radius = 0.25           # uniform noise added to z for the neighbours (the paper: 0.25)
show = 2                # # of draws per equation in the figure
seed = 0                # seed of the pool's z, the draws and the noise
bn = 'population'       # batchnorm statistics: population | batch
n_population = 10000    # # of samples the population statistics are inferred from
nbatch = 128            # # of z per generator call
out_dir = 'section6'    # arithmetic.png and arithmetic.json go here
backend = 'c'           # c | numba | jax | pytorch | python

FLAGS = flags.declared(globals())  # every value above is a --flag

BINARY = ('smiling', 'glasses', 'long_hair')


def parse_equations(text):
    """[(t, c)] from 't:c,t:c'; t and c distinct binary attributes of the attribute network."""
    out = []
    for part in text.split(','):
        t, _, c = part.partition(':')
        if t not in BINARY or c not in BINARY or t == c:
            raise DataError(f'--equations={text}: expected t:c pairs of two different attributes '
                            f'of {", ".join(BINARY)}')
        out.append((t, c))
    return out


def concepts(pred, t, c, confident_):
    """Indices of the pool's exemplars of the three concepts (A, B, C) of the equation (t, c)."""
    has = {a: pred[a] >= confident_ for a in (t, c)}
    lacks = {a: pred[a] <= 1. - confident_ for a in (t, c)}
    return (np.flatnonzero(has[t] & has[c]), np.flatnonzero(lacks[t] & has[c]),
            np.flatnonzero(lacks[t] & lacks[c]))


def succeeded(pred, t, c):
    """Whether each image shows the target (t, not c): (n,) bool."""
    return (pred[t] > 0.5) & (pred[c] <= 0.5)


def run_equation(z, pools, t, c, k_, n_draws_, rng, sample, predict, n_neighbours_=9, radius_=0.25):
    """Success rates of the equation (t, c) over ``n_draws_`` draws of exemplars from ``pools``.

    ``z``: the pool's z (n, nz); ``pools``: (A, B, C) index arrays; ``sample(z)``: images;
    ``predict(X)``: dict of attribute probabilities. Per draw, ``k_`` exemplars per concept (and
    the first of them for single-exemplar arithmetic); returns (measures, images of the first
    draws: (n_draws, n_neighbours, ...), exemplar indices (n_draws, 3, k_)).
    """
    picks = np.stack([np.stack([rng.choice(p, k_, replace=False) for p in pools])
                      for _ in range(n_draws_)])                         # (draws, 3, k)
    zk = [analogy(*(z[i] for i in d)) for d in picks]
    z1 = [analogy(*(z[i[:1]] for i in d)) for d in picks]
    zc = [z[d[2]].mean(0) for d in picks]
    zs = np.concatenate([neighbours(v, n_neighbours_, radius_, rng) for v in zk]
                        + [np.stack(z1), np.stack(zc)])
    X = sample(zs)
    ok = succeeded(predict(X), t, c)
    nn = n_draws_ * n_neighbours_
    ok_k = ok[:nn].reshape(n_draws_, n_neighbours_)
    pred = predict(X[:nn:n_neighbours_])
    measures = dict(
        success=float(ok_k[:, 0].mean()),
        success_neighbours=float(ok_k.mean()),
        transferred=float(np.mean(pred[t] > 0.5)),
        context_changed=float(np.mean(pred[c] <= 0.5)),
        success_single_exemplar=float(ok[nn:nn + n_draws_].mean()),
        success_baseline_third_concept=float(ok[nn + n_draws_:].mean()))
    return measures, X[:nn].reshape((n_draws_, n_neighbours_) + X.shape[1:]), picks


def main(argv=None):
    config = flags.configure(globals(), FLAGS, argv, positive=['show', 'n_population', 'nbatch',
                                                            'n_pool', 'n_draws', 'k',
                                                            'n_neighbours'],
                             non_negative=['epoch', 'radius'], folders=['out_dir'])
    eqs = exit_on_data_error(parse_equations, equations)
    for name, v, lo in (('k', k, 1), ('n_draws', n_draws, 1), ('n_neighbours', n_neighbours, 1),
                        ('n_pool', n_pool, 3)):
        if v < lo:
            flags.fail(f'--{name}={v}: expected at least {lo}')
    if not 0.5 < confident < 1.:
        flags.fail(f'--confident={confident}: expected a probability in (0.5, 1)')
    mode, files, gen = exit_on_data_error(section6.setup, model, epoch, backend, bn, n_population,
                                          nbatch)
    print(section6.describe(files, gen, bn), flush=True)
    from faces import attrnet
    net = attrnet.load(mode=mode)
    rs = np.random.RandomState(seed)
    z = rs.uniform(-1., 1., (n_pool, gen.nz))
    pool = gen.sample(z, 'pool')
    pred = net.predict(pool)
    results, rows = {}, []
    for t, c in eqs:
        text = f'({t}, {c}) - (no {t}, {c}) + (no {t}, no {c}) -> ({t}, no {c})'
        pools = concepts(pred, t, c, confident)
        sizes = dict(zip(('A', 'B', 'C'), map(len, pools)))
        if min(sizes.values()) < k:
            results[f'{t}:{c}'] = dict(equation=text, pool_sizes=sizes,
                                       skipped=f'fewer than k={k} confident exemplars of a concept')
            print(f'{t}:{c}: skipped, pool sizes {sizes} (k={k})', flush=True)
            continue
        m, X, picks = run_equation(z, pools, t, c, k, n_draws, rs,
                                   lambda zz: gen.sample(zz, f'{t}:{c}'), net.predict,
                                   n_neighbours, radius)
        results[f'{t}:{c}'] = dict(equation=text, pool_sizes=sizes, **m)
        print(f'{t}:{c}: success {m["success"]:.2f} (neighbours {m["success_neighbours"]:.2f}), '
              f'single exemplar {m["success_single_exemplar"]:.2f}, baseline '
              f'{m["success_baseline_third_concept"]:.2f} | pools {sizes}', flush=True)
        for d in range(min(show, n_draws)):
            rows.append(np.concatenate([pool[picks[d].ravel()], X[d]]))
    out = Path(out_dir)
    pictures = {}
    if rows:
        pictures['arithmetic'] = section6.save_grid(np.concatenate(rows), len(rows), len(rows[0]),
                                                    out / 'arithmetic.png')
    record = dict(experiment='vector arithmetic (Fig. 7)', config=config, model=files, bn=bn,
                  pool=dict(n=n_pool, **{f'{a}_fraction': float(np.mean(pred[a] > 0.5)) for a in BINARY}),
                  equations=results, pictures=pictures,
                  paper=dict(claim='averaged exemplar z (k=3) transfer the attribute stably; single '
                                   'exemplars are unstable'))
    section6.write_json(record, out / 'arithmetic.json')
    print(f'wrote {out / "arithmetic.json"}' + (f', {pictures["arithmetic"]}' if rows else ''))
    return record


if __name__ == '__main__':
    flags.command(main)
