"""Peak memory of a faces training step against its epoch end, part by part.

    python bench/epoch_end_memory.py [--ngf=16 --ndf=16 --nbatch=64 --nval=10000 --n_nnd=20000]

One process, the faces script's own model and compiled functions (``--backend``, C by default):
1. one G and one D update on a batch of ``nbatch``;
2. the epoch end as the script runs it: the nnd scores (``lib.train.nnd_scores``: the samples
   stream through the scores in blocks of ``lib.metrics.block_rows``), the yardstick on
   ``n_eval`` faces (the script's ``yardstick_measures``; 0 = off) and the ``nvis`` sample grid;
3. the nnd scores with the blocks of 4096 samples the original used (``--blocks_4096``) and, as
   the original kept them, all ``n_nnd`` samples at once (``--kept``);
4. with ``--speed_rounds=N``, the time of the nnd scores alone (the samples drawn once and kept),
   streamed against 4096-row blocks in N alternating rounds.
Each phase reports the peak of the memory NumPy and the compiled functions allocate during it,
above what was allocated before it (``tracemalloc``: NumPy registers its buffers there), and the
process's peak resident memory above its resident memory before the phase (``VmHWM``, reset
through ``/proc/self/clear_refs``; glibc keeps freed memory for reuse, so this is what the phase
added to the process). The validation images are random: the scores' values do not matter here.
Prints one JSON object.
"""
import json
import os
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lib import flags, rng  # noqa: E402
from lib.backend import get_mode, resolve_backend  # noqa: E402
from lib.metrics import StreamedNNDScores, nnd_score  # noqa: E402
from lib.theano_utils import floatX  # noqa: E402
from lib.train import gen_samples, gen_sizes, grid_side, nnd_scores  # noqa: E402
from lib.vis import color_grid_vis  # noqa: E402

import faces.train_uncond_dcgan as script  # noqa: E402

ngf = 16          # # of gen filters in the last conv layer
ndf = 16          # # of discrim filters in the first conv layer
nbatch = 64       # # of examples in a training batch
nval = 10000      # # of validation images scored against
n_nnd = 20000     # # of samples scored (the paper's 100000 keeps 4.9 GB of samples in the old way)
n_eval = 1000     # # of faces for the yardstick (0 = off; needs the synthetic held-out faces)
nvis = 196        # # of samples in the grid
blocks_4096 = True  # also measure the nnd scores in the original's blocks of 4096 samples
kept = False      # also measure the original's way (all samples kept, then scored)
speed_rounds = 0  # then time the nnd scores alone, streamed against 4096-row blocks, alternating
backend = 'c'     # the backend of the compiled functions
FLAGS = flags.declared(globals())

SIZES = (1000, 10000, 100000)


def _status(key):
    for line in Path('/proc/self/status').read_text().splitlines():
        if line.startswith(key + ':'):
            return int(line.split()[1]) / 1024.  # MB
    return float('nan')


def measure(phase):
    """Run ``phase()``; returns (its result, traced peak MB, resident peak MB above the start)."""
    try:
        Path('/proc/self/clear_refs').write_text('5')  # reset VmHWM to the current RSS
    except OSError:
        pass
    rss0 = _status('VmRSS')
    tracemalloc.start()
    base, _ = tracemalloc.get_traced_memory()
    tracemalloc.reset_peak()
    t = time.time()
    out = phase()
    seconds = time.time() - t
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return out, dict(traced_peak_mb=round((peak - base) / 2**20, 1),
                     rss_peak_above_start_mb=round(_status('VmHWM') - rss0, 1),
                     seconds=round(seconds, 1))


def nnd_speed(vaX, samples, rounds):
    """The nnd scores of ``samples`` (given, so only the distances are timed) streamed in the
    default blocks and in 4096-row blocks, alternating for ``rounds`` rounds: CPU and wall
    seconds of each, and the streamed/4096 ratios per round."""
    def run(batch_size):
        stream = StreamedNNDScores(vaX, (len(samples),), metric='euclidean', batch_size=batch_size)
        wall, cpu = time.perf_counter(), time.process_time()
        for i in range(0, len(samples), 128):
            stream.add(samples[i:i + 128])
        return (time.process_time() - cpu, time.perf_counter() - wall), stream.scores()

    run(None), run(4096)  # compiled
    out = {'streamed': [], 'blocks_4096': [], 'same_scores': True}
    for _ in range(rounds):
        (c1, w1), s1 = run(None)
        (c2, w2), s2 = run(4096)
        out['same_scores'] &= s1 == s2
        out['streamed'].append(dict(cpu_s=round(c1, 2), wall_s=round(w1, 2)))
        out['blocks_4096'].append(dict(cpu_s=round(c2, 2), wall_s=round(w2, 2)))
    out['cpu_ratio'] = [round(a['cpu_s'] / b['cpu_s'], 3)
                        for a, b in zip(out['streamed'], out['blocks_4096'])]
    out['wall_ratio'] = [round(a['wall_s'] / b['wall_s'], 3)
                         for a, b in zip(out['streamed'], out['blocks_4096'])]
    out['load_average'] = os.getloadavg()
    return out


def main(argv=None):
    flags.configure(globals(), FLAGS, argv, positive=['ngf', 'ndf', 'nbatch', 'nval', 'n_nnd',
                                                      'nvis'],
                    non_negative=['n_eval', 'speed_rounds'])
    if nbatch < 2:
        flags.fail(f"--nbatch={nbatch}: expected at least 2 (batchnorm over a batch of one)")
    script.ngf, script.ndf, script.nbatch, script.n_eval = ngf, ndf, nbatch, n_eval
    mode = get_mode(resolve_backend(backend))
    rng.set_seed(42)
    gen_params, discrim_params = script.init_params()
    _train_g, _train_d, _gen, *_ = script.build(gen_params, discrim_params, mode)
    measures = script.yardstick_measures(mode)
    r = np.random.RandomState(0)
    vaX = floatX(r.uniform(-1., 1., size=(nval, 3, 64, 64)))
    imb = floatX(r.uniform(-1., 1., size=(nbatch, 3, 64, 64)))
    sample_zmb = floatX(r.uniform(-1., 1., size=(nvis, script.nz)))
    grid = Path(tempfile.mkdtemp()) / 'grid.png'

    def draw_z(n):
        return (floatX(rng.np_rng.uniform(-1., 1., size=(n, script.nz))),)

    def step():
        _train_g(imb, *draw_z(nbatch))
        _train_d(imb, *draw_z(nbatch))

    def nnd():
        rng.set_seed(1)
        return nnd_scores(vaX, n_nnd, lambda m: _gen(*draw_z(m)))

    def yardstick():
        return measures(_gen) if measures is not None else None

    def samples():
        color_grid_vis(script.inverse_transform(np.asarray(_gen(sample_zmb))),
                       (grid_side(nvis),) * 2, str(grid))

    def whole_epoch_end():
        return nnd(), yardstick(), samples()

    def nnd_4096():
        rng.set_seed(1)
        stream = StreamedNNDScores(vaX, SIZES, metric='euclidean', batch_size=4096)
        for m in gen_sizes(n_nnd):
            stream.add(np.asarray(_gen(*draw_z(m))))
        return stream.scores()

    def nnd_kept():
        rng.set_seed(1)
        gX, _ = gen_samples(n_nnd, draw_z, _gen)
        gX = gX.reshape(len(gX), -1)
        vaX_flat = vaX.reshape(len(vaX), -1)
        return {n: nnd_score(gX[:n], vaX_flat, metric='euclidean') if n <= len(gX) else None
                for n in SIZES}

    step()  # the first calls allocate what later calls reuse
    yardstick()
    samples()
    results = dict(config={n: globals()[n] for n in FLAGS}, nz=script.nz,
                   resident_mb_at_start=round(_status('VmRSS'), 1))
    _, results['training_step'] = measure(step)
    (scores, _, _), results['epoch_end'] = measure(whole_epoch_end)
    _, results['epoch_end_nnd'] = measure(nnd)
    if measures is not None:
        _, results['epoch_end_yardstick'] = measure(yardstick)
    _, results['epoch_end_sample_grid'] = measure(samples)
    if blocks_4096:
        _, results['nnd_blocks_4096'] = measure(nnd_4096)
    if kept:
        _, results['nnd_kept'] = measure(nnd_kept)
    results['scores'] = scores
    if speed_rounds:
        results['nnd_speed'] = nnd_speed(vaX, gen_samples(n_nnd, draw_z, _gen)[0], speed_rounds)
    results['epoch_end_below_step'] = (results['epoch_end']['traced_peak_mb']
                                       < results['training_step']['traced_peak_mb'])
    print(json.dumps(results, indent=1))
    return results


if __name__ == '__main__':
    flags.command(main)
