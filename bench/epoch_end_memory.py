"""Peak memory of a faces training step against the epoch end's nnd scores, kept and streamed.

    python bench/epoch_end_memory.py [--ngf=16 --ndf=16 --nbatch=64 --nval=10000 --n_nnd=20000]

One process, the faces script's own model and compiled functions (``--backend``, C by default):
1. one G and one D update on a batch of ``nbatch``;
2. the epoch end's nnd scores as lib/train.py computes them now (``StreamedNNDScores``: the
   samples stream through the scores in blocks of 4096);
3. the same scores as the original computed them (all ``n_nnd`` samples kept, then the 1k / 10k
   / 100k prefixes scored), unless ``--old=false``.
Each phase reports the peak of the memory NumPy and the compiled functions allocate during it,
above what was allocated before it (``tracemalloc``: NumPy registers its buffers there), and the
process's peak resident memory above its resident memory before the phase (``VmHWM``, reset
through ``/proc/self/clear_refs``; glibc keeps freed memory for reuse, so this is what the phase
added to the process). The validation images are random: the scores' values do not matter here,
only that both ways give the same ones. Prints one JSON object.
"""
import json
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lib import flags, rng  # noqa: E402
from lib.backend import get_mode  # noqa: E402
from lib.metrics import StreamedNNDScores, nnd_score  # noqa: E402
from lib.theano_utils import floatX  # noqa: E402
from lib.train import gen_samples, gen_sizes  # noqa: E402

import faces.train_uncond_dcgan as script  # noqa: E402

ngf = 16          # # of gen filters in the last conv layer
ndf = 16          # # of discrim filters in the first conv layer
nbatch = 64       # # of examples in a training batch
nval = 10000      # # of validation images scored against
n_nnd = 20000     # # of samples scored (the paper's 100000 keeps 4.9 GB of samples in the old way)
old = True        # also measure the original's way (all samples kept)
backend = 'c'     # the backend of the compiled functions
FLAGS = ['ngf', 'ndf', 'nbatch', 'nval', 'n_nnd', 'old', 'backend']

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


def main(argv=None):
    flags.configure(globals(), FLAGS, argv, positive=['ngf', 'ndf', 'nbatch', 'nval', 'n_nnd'])
    script.ngf, script.ndf = ngf, ndf
    mode = get_mode(backend)
    rng.set_seed(42)
    gen_params, discrim_params = script.init_params()
    _train_g, _train_d, _gen, *_ = script.build(gen_params, discrim_params, mode)
    r = np.random.RandomState(0)
    vaX = floatX(r.uniform(-1., 1., size=(nval, 3, 64, 64)))
    imb = floatX(r.uniform(-1., 1., size=(nbatch, 3, 64, 64)))

    def draw_z(n):
        return (floatX(rng.np_rng.uniform(-1., 1., size=(n, script.nz))),)

    def step():
        _train_g(imb, *draw_z(nbatch))
        _train_d(imb, *draw_z(nbatch))

    step()  # the first calls allocate what later calls reuse
    results = dict(config=dict(ngf=ngf, ndf=ndf, nbatch=nbatch, nval=nval, n_nnd=n_nnd,
                               backend=backend),
                   resident_mb_at_start=round(_status('VmRSS'), 1))
    _, results['training_step'] = measure(step)

    def streamed():
        rng.set_seed(1)
        stream = StreamedNNDScores(vaX, SIZES, metric='euclidean')
        for m in gen_sizes(n_nnd):
            stream.add(np.asarray(_gen(*draw_z(m))))
        return stream.scores()

    def kept():
        rng.set_seed(1)
        gX, _ = gen_samples(n_nnd, draw_z, _gen)
        gX = gX.reshape(len(gX), -1)
        vaX_flat = vaX.reshape(len(vaX), -1)
        return {n: nnd_score(gX[:n], vaX_flat, metric='euclidean') if n <= len(gX) else None
                for n in SIZES}

    scores, results['epoch_end_streamed'] = measure(streamed)
    if old:
        old_scores, results['epoch_end_kept'] = measure(kept)
        results['same_scores'] = old_scores == scores
    results['scores'] = scores
    print(json.dumps(results, indent=1))
    return results


if __name__ == '__main__':
    flags.command(main)
