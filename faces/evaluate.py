"""Measure a faces generator with the yardstick: FD, precision/recall, attribute coverage, nnd.

    python faces/evaluate.py --model=models/faces_dcgan_quick           # latest epoch
    python faces/evaluate.py --model=runs/x/models/uncond_dcgan --epochs=all --out=curve.json

``--model``: a ``<epoch>_gen_params`` file, a checkpoint, or a run's models folder. ``--n_eval``
generated faces (z uniform in [-1, 1] from ``--seed``, batches of ``--nbatch`` normalised with
their own batch statistics, as the training script's samples) are compared with ``--n_eval``
held-out real faces, and two disjoint held-out real sets give the floor (faces/yardstick.py).
The nnd scores are the original's (``1k_va_nnd``..: mean distance in pixel space from each of
the first 1k/10k/... generated faces to its nearest of ``--nval`` real faces), here against the
held-out real faces. Prints a table and writes ``--out`` (JSON).
"""
import json
import re
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from lib import flags
from lib.backend import get_mode, resolve_backend
from lib.data_image import DataError
from lib.files import atomic_write_text
from lib.metrics import nnd_score
from lib.train import CHECKPOINT
from faces import attrnet, yardstick

model = ''          # gen params file, checkpoint, or a run's models/<desc> folder
epochs = ''         # '' = the latest saved epoch; 'all' = every saved epoch; or e.g. 1,5,25
n_eval = 5000       # # of generated faces, and of real faces, per comparison
data = ''           # real faces: '' = held-out synthetic faces; else .hdf5 or image folder
nbatch = 128        # # of faces per generator call (batchnorm over the batch, as in training)
seed = 0            # seed of the generated faces' z
out = 'yardstick.json'  # JSON written here
grid = ''           # '' = none; else a PNG: 8x8 held-out real faces beside 8x8 generated ones
backend = ''        # c | numba | jax | pytorch | python; '' = the default here

FLAGS = flags.declared(globals())  # every value above is a --flag


def model_files(path, which):
    """[(epoch or None, file)] of ``path`` for ``which`` ('' latest, 'all', or '1,5,25')."""
    path = Path(path)
    if not path.exists():
        raise DataError(f'--model={path}: no such file or folder')
    if path.is_file():
        return [(None, path)]
    found = {int(m.group(1)): p for p in path.iterdir()
             if (m := re.fullmatch(r'(\d+)_gen_params\.(?:npz|jl)', p.name))}
    if not found:
        if (path / CHECKPOINT).exists():
            return [(None, path / CHECKPOINT)]
        raise DataError(f'--model={path}: no <epoch>_gen_params.npz file and no checkpoint in it')
    if which == '':
        return [(max(found), found[max(found)])]
    if which == 'all':
        return sorted(found.items())
    try:
        wanted = [int(e) for e in which.split(',')]
    except ValueError:
        raise DataError(f'--epochs={which}: expected all, or comma-separated epoch numbers') from None
    missing = [e for e in wanted if e not in found]
    if missing:
        raise DataError(f'--epochs={which}: no gen params for epoch(s) {missing} in {path} '
                        f'(saved: {sorted(found)})')
    return [(e, found[e]) for e in wanted]


def check_generator(path, arrays):
    """``arrays`` if they are a faces generator of RGB 64x64 images (13 arrays), else DataError."""
    if len(arrays) != 13:
        raise DataError(f'--model={path}: {len(arrays)} generator arrays, expected 13 '
                        f'(gw, gg, gb, ..., gwx of faces/train_uncond_dcgan.py)')
    if arrays[-1].ndim != 4 or arrays[-1].shape[1] != 3:
        raise DataError(f'--model={path}: gwx has shape {arrays[-1].shape}, expected '
                        f'(ngf, 3, 5, 5): the yardstick takes RGB faces')
    return arrays


def run_log(models_dir):
    """The training log's records by epoch (``models/<desc>`` -> ``logs/<desc>.ndjson``), or {}."""
    log = Path(models_dir).parent.parent / 'logs' / f'{Path(models_dir).name}.ndjson'
    records = {}
    if log.is_file():
        for line in log.read_text().splitlines():
            try:
                r = json.loads(line)
                records[int(r['n_epochs']) + 1] = r   # n_epochs counts the epochs before it
            except (ValueError, KeyError, TypeError):
                continue
    return records


def generate(sample, nz, n, nbatch_, seed_):
    """``n`` faces from ``sample`` (the compiled gen) for z ~ U(-1, 1) of ``seed_``."""
    from lib.theano_utils import floatX
    z = floatX(np.random.RandomState(seed_).uniform(-1., 1., size=(n, nz)))
    return np.concatenate([np.asarray(sample(z[i:i + nbatch_])) for i in range(0, n, nbatch_)])


def nnd_scores(gX, real):
    """The original's nnd scores of generated faces against real ones (pixel space, [-1, 1])."""
    gX, real = gX.reshape(len(gX), -1), real.reshape(len(real), -1)
    return {f'{n // 1000}k_va_nnd': nnd_score(gX[:n], real, metric='euclidean')
            for n in (1000, 10000, 100000) if n <= len(gX)}


def side_by_side(real, fake, path, side=8, gap=8):
    """Write ``side`` x ``side`` real faces, a white gap, then as many generated faces (PNG)."""
    from lib.vis import color_grid_vis, imsave
    n = side * side
    to_img = lambda X: (X[:n].transpose(0, 2, 3, 1) + 1.) / 2.    # noqa: E731
    a, b = color_grid_vis(to_img(real), (side, side)), color_grid_vis(to_img(fake), (side, side))
    canvas = np.ones((a.shape[0], a.shape[1] * 2 + gap, 3), np.float32)
    canvas[:, :a.shape[1]], canvas[:, a.shape[1] + gap:] = a, b
    imsave(path, canvas)


def main(argv=None):
    from faces import sample_dcgan
    from faces.sample_dcgan import build_sampler, find_gen_params
    config = flags.configure(globals(), FLAGS, argv, files=['out', 'grid'])
    try:
        if grid and Image.registered_extensions().get(Path(grid).suffix.lower()) is None:
            raise DataError(f'--grid={grid}: expected an image file name (.png, .jpg, ...)')
        if n_eval < yardstick.K + 1:
            raise DataError(f'--n_eval={n_eval}: expected at least {yardstick.K + 1}')
        if nbatch < 2:
            raise DataError(f'--nbatch={nbatch}: expected at least 2 (batchnorm over the batch)')
        if not model:
            raise DataError('--model: required (a gen params file, checkpoint or models folder)')
        files = model_files(model, epochs)
        # every model is read and checked before the yardstick is built: a bad file fails fast
        models = [(epoch, path, check_generator(path, find_gen_params(path))) for epoch, path in files]
        mode = get_mode(resolve_backend(backend))
        ys = yardstick.make(n_eval, data, net=attrnet.load(mode=mode))
        if not ys.labelled:
            print(f'{data}: no attribute labels, so only the label-free measures (fd, precision, '
                  f'recall) are computed', flush=True)
        logs = run_log(model) if Path(model).is_dir() else {}
        results = []
        for epoch, path, arrays in models:
            sample_dcgan.bn = 'batch'
            gX = generate(build_sampler(arrays, mode), arrays[0].shape[0], n_eval, nbatch, seed)
            r = dict(epoch=epoch, file=str(path), **ys.measure(gX), **nnd_scores(gX, ys.images))
            if epoch in logs:  # the log line of the epoch whose end wrote the file
                r.update(n_seconds=logs[epoch].get('n_seconds'), n_updates=logs[epoch].get('n_updates'))
            results.append(r)
            if grid and (epoch, path) == (models[-1][0], models[-1][1]):
                side_by_side(ys.images, gX, grid)
            print(f'epoch {epoch}: fd {r["fd"]:.3f} precision {r["precision"]:.3f} '
                  f'recall {r["recall"]:.3f}', flush=True)
    except (DataError, ValueError) as e:
        print(f'error: {e}', file=sys.stderr)
        raise SystemExit(2)
    rows = [(f'epoch {r["epoch"]}' if r['epoch'] is not None else Path(r['file']).name, r)
            for r in results]
    rows.append(('real vs real', ys.floor))
    print(yardstick.format_table(rows))
    record = dict(config=config, n_eval=n_eval, labelled=ys.labelled, floor=ys.floor,
                  bn='batch', results=results)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, json.dumps(record, indent=1) + '\n')
    print(f'wrote {out}')


if __name__ == '__main__':
    flags.command(main)
