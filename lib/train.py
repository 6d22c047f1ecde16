"""The training loop, sample generation, logging, output folders and checkpoints of every script.

The original's train scripts each carried their own copy of this; here a script keeps only its
data, model and costs and calls ``fit``. Checkpoints hold everything needed to resume bit-exactly:
parameters, optimizer state, learning rate, the random generators, the epoch's data order and the
counters. They are written atomically (temporary file + rename), so a kill mid-write leaves the
previous checkpoint intact.
"""
import json
import os
import signal
import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from lib import rng
from lib.theano_utils import floatX

CHECKPOINT = "latest_checkpoint.npz"
_FORMAT = 1


class Run:
    """Output folders of one run: ``logs/``, ``samples/<desc>/`` and ``models/<desc>/``."""

    def __init__(self, desc, out_dir, config=None):
        self.desc = desc
        self.out_dir = Path(out_dir).resolve()
        self.log_dir = self.out_dir / "logs"
        self.samples_dir = self.out_dir / "samples" / desc
        self.model_dir = self.out_dir / "models" / desc
        for d in (self.log_dir, self.samples_dir, self.model_dir):
            d.mkdir(parents=True, exist_ok=True)
        self.log_path = self.log_dir / f"{desc}.ndjson"
        self.checkpoint_path = self.model_dir / CHECKPOINT
        if config is not None:
            _atomic_write_text(self.log_dir / f"{desc}.config.json",
                               json.dumps(config, indent=1, sort_keys=True) + "\n")

    def start_log(self, keep_before_epoch=None):
        """Open the ndjson log: fresh, or (resuming) keeping the lines of finished epochs."""
        kept = []
        if keep_before_epoch is not None and self.log_path.exists():
            for line in self.log_path.read_text().splitlines():
                try:
                    if json.loads(line)["n_epochs"] < keep_before_epoch:
                        kept.append(line + "\n")
                except (ValueError, KeyError):
                    continue
        _atomic_write_text(self.log_path, "".join(kept))

    def log(self, record):
        """Append one ndjson line."""
        with open(self.log_path, "a") as f:
            f.write(json.dumps(record) + "\n")


def _atomic_write_text(path, text):
    tmp = Path(str(path) + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def count_params(params):
    """Total number of scalars in a list of shared variables."""
    return int(sum(np.prod(p.get_value(borrow=True).shape) for p in params))


def gen_samples(n, draw, gen_fn, nbatch=128):
    """Generate ``n`` samples in batches of ``nbatch`` like the original's ``gen_samples``.

    ``draw(m)`` returns the generator inputs for ``m`` samples (a tuple); returns the samples and
    the concatenated inputs.
    """
    samples, inputs = [], []
    sizes = [nbatch] * (n // nbatch) + ([n % nbatch] if n % nbatch else [])
    # PORT: the original also called _gen on an empty final batch when nbatch divides n; that
    # draws no random numbers, so skipping it changes nothing but avoids an empty batchnorm.
    for m in sizes:
        args = draw(m)
        samples.append(np.asarray(gen_fn(*args)))
        inputs.append(args)
    stacked = tuple(np.concatenate(a, axis=0) for a in zip(*inputs))
    return np.concatenate(samples, axis=0), stacked


# --------------------------------------------------------------------------------------------
# Checkpoints
# --------------------------------------------------------------------------------------------

def _rng_state():
    name, keys, pos, has_gauss, cached = rng.np_rng.get_state()
    version, internal, gauss_next = rng.py_rng.getstate()
    meta = dict(np_rng=[name, int(pos), int(has_gauss), float(cached)],
                py_rng=[version, gauss_next], seed=rng.seed)
    arrays = {"np_rng_keys": np.asarray(keys, dtype=np.uint32),
              "py_rng_internal": np.asarray(internal, dtype=np.int64)}
    return meta, arrays


def _set_rng_state(meta, arrays):
    rng.set_seed(meta["seed"])
    name, pos, has_gauss, cached = meta["np_rng"]
    rng.np_rng.set_state((name, arrays["np_rng_keys"], pos, has_gauss, cached))
    version, gauss_next = meta["py_rng"]
    rng.py_rng.setstate((version, tuple(int(v) for v in arrays["py_rng_internal"]), gauss_next))


def save_checkpoint(path, groups, counters, perm):
    """Write a checkpoint atomically. ``groups``: name -> list of shared variables."""
    meta, arrays = _rng_state()
    for name, variables in groups.items():
        for i, v in enumerate(variables):
            arrays[f"{name}/{i}"] = np.asarray(v.get_value())
    arrays["perm"] = np.asarray(perm, dtype=np.int64)
    meta.update(format=_FORMAT, counters=counters,
                groups={name: len(v) for name, v in groups.items()})
    arrays["meta"] = np.asarray(json.dumps(meta))
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        np.savez(f, **arrays)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class CheckpointError(ValueError):
    """A missing, corrupt or mismatched checkpoint (message is one line)."""


def load_checkpoint(path, groups):
    """Restore a checkpoint into ``groups`` and the random generators; return (counters, perm)."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: no checkpoint to resume from (run without --resume first)")
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
        meta = json.loads(str(arrays.pop("meta")))
    except Exception as e:  # zip, npy and json errors all mean the same thing here
        raise CheckpointError(f"{path}: unreadable checkpoint ({type(e).__name__}: {e})") from None
    if meta.get("format") != _FORMAT:
        raise CheckpointError(f"{path}: checkpoint format {meta.get('format')}, expected {_FORMAT}")
    for name, variables in groups.items():
        if meta["groups"].get(name) != len(variables):
            raise CheckpointError(f"{path}: '{name}' has {meta['groups'].get(name)} arrays, "
                                  f"the model has {len(variables)}")
        for i, v in enumerate(variables):
            value = arrays[f"{name}/{i}"]
            current = v.get_value(borrow=True)
            if value.shape != current.shape:
                raise CheckpointError(f"{path}: {name} #{i} ({v.name}) has shape {value.shape}, "
                                      f"the model expects {current.shape} (same flags as the run?)")
            v.set_value(value.astype(current.dtype))
    _set_rng_state(meta, arrays)
    return meta["counters"], arrays["perm"]


# --------------------------------------------------------------------------------------------
# The loop
# --------------------------------------------------------------------------------------------

class _StopRequest:
    """Turns SIGINT/SIGTERM into a flag checked between updates."""

    def __init__(self):
        self.signal = None

    def __enter__(self):
        self._old = {s: signal.signal(s, self._handle) for s in (signal.SIGINT, signal.SIGTERM)}
        return self

    def _handle(self, signum, frame):
        if self.signal is not None:  # second Ctrl-C: stop now
            raise KeyboardInterrupt
        self.signal = signum

    def __exit__(self, *exc):
        for s, h in self._old.items():
            signal.signal(s, h)


def fit(run, *, update, fetch, ntrain, nbatch, niter, niter_decay, lr, lrt, groups,
        epoch_end, save_params, save_epochs, resume=False, max_updates=0,
        checkpoint_every=0.):
    """Train for ``niter + niter_decay`` epochs of ``ntrain`` examples in minibatches.

    - ``update(batch, n_updates)`` runs one G or D update (the script alternates them) and
      returns the costs; ``fetch(indices)`` returns the batch (a tuple of arrays) for sorted
      example indices.
    - The epoch order is ``rng.np_rng.permutation(ntrain)``; the last batch may be partial.
    - After each epoch: ``epoch_end(n_epochs, n_updates, n_examples, seconds, cost)`` returns the
      log record (or None to skip the log line); the lr decays linearly to zero over
      ``niter_decay`` epochs after ``niter``; ``save_params(n_epochs)`` writes the parameter files
      at ``save_epochs``; then the checkpoint is written.
    - ``groups`` (name -> shared variables: parameters, optimizer state) go in the checkpoint.
    - ``resume`` continues from ``run.checkpoint_path``; ``max_updates`` > 0 stops (with a
      checkpoint) after that many updates in this process; ``checkpoint_every`` > 0 also saves
      every that many seconds. Ctrl-C or SIGTERM saves a checkpoint and returns.

    Returns the counters dict (with ``stopped`` set if it ended early).
    """
    groups = dict(groups, lrt=[lrt])
    counters = dict(epoch=0, batch=0, n_updates=0, n_examples=0, n_epochs=0, seconds=0.)
    perm = None
    if resume:
        counters, perm = load_checkpoint(run.checkpoint_path, groups)
        tqdm.write(f"resumed from {run.checkpoint_path}: epoch {counters['epoch'] + 1}, "
                   f"update {counters['n_updates']}")
    run.start_log(keep_before_epoch=counters["n_epochs"] if resume else None)
    nepochs = niter + niter_decay
    nb = -(-ntrain // nbatch)
    t0 = time.time() - counters["seconds"]
    last_save = time.time()
    done_here = 0
    cost = None

    def checkpoint():
        counters["seconds"] = time.time() - t0
        save_checkpoint(run.checkpoint_path, groups, counters, perm)

    with _StopRequest() as stop:
        while counters["epoch"] < nepochs:
            if counters["batch"] == 0 or perm is None:
                perm = rng.np_rng.permutation(ntrain)
            bar = tqdm(total=nb, initial=counters["batch"], dynamic_ncols=True,
                       desc=f"epoch {counters['epoch'] + 1}/{nepochs}", file=sys.stderr)
            while counters["batch"] < nb:
                b = counters["batch"]
                # PORT: indices sorted within a batch (HDF5 reads need increasing indices); the
                # batch's content is the same, and batch statistics do not depend on order.
                batch = fetch(np.sort(perm[b * nbatch:(b + 1) * nbatch]))
                cost = update(batch, counters["n_updates"])
                counters["n_updates"] += 1
                counters["n_examples"] += len(batch[0])
                counters["batch"] += 1
                done_here += 1
                bar.update(1)
                if cost is not None:
                    bar.set_postfix(g=f"{float(cost[0]):.3f}", d=f"{float(cost[1]):.3f}",
                                    refresh=False)
                stopping = stop.signal is not None or (max_updates and done_here >= max_updates)
                if stopping:
                    bar.close()
                    checkpoint()
                    why = (signal.Signals(stop.signal).name if stop.signal is not None
                           else f"--max_updates={max_updates}")
                    tqdm.write(f"stopped ({why}) after update {counters['n_updates']}: "
                               f"checkpoint saved to {run.checkpoint_path}; continue with --resume")
                    return dict(counters, stopped=why)
                if checkpoint_every and time.time() - last_save > checkpoint_every:
                    checkpoint()
                    last_save = time.time()
            bar.close()
            record = epoch_end(counters["n_epochs"], counters["n_updates"],
                               counters["n_examples"], time.time() - t0, cost)
            if record is not None:
                run.log(record)
            counters["n_epochs"] += 1
            if counters["n_epochs"] > niter:
                lrt.set_value(floatX(lrt.get_value() - lr / niter_decay))
            if counters["n_epochs"] in save_epochs:
                save_params(counters["n_epochs"])
            counters["epoch"] += 1
            counters["batch"] = 0
            checkpoint()
            last_save = time.time()
    return counters


def fit_gan(run, gen_params, discrim_params, g_updater, d_updater, **fit_kwargs):
    """``fit`` for a GAN: ``<epoch>_{gen,discrim}_params.npz`` at the save epochs, both parameter
    lists and both updaters' state in the checkpoint. ``fit_kwargs``: the rest of ``fit``'s
    arguments. A bad checkpoint prints ``error: ...`` and exits with status 2."""
    from lib.params import save_params

    def save(n_epochs):
        save_params(gen_params, run.model_dir / f'{n_epochs}_gen_params.npz')
        save_params(discrim_params, run.model_dir / f'{n_epochs}_discrim_params.npz')

    print(run.desc.upper())
    groups = dict(gen=gen_params, discrim=discrim_params,
                  g_opt=g_updater.state, d_opt=d_updater.state)
    try:
        return fit(run, groups=groups, save_params=save, **fit_kwargs)
    except CheckpointError as e:
        print(f'error: {e}', file=sys.stderr)
        raise SystemExit(2)


# --------------------------------------------------------------------------------------------
# The unconditional GAN driver (faces, imagenet, svhn)
# --------------------------------------------------------------------------------------------

def grid_side(n):
    """Side of the smallest square grid holding ``n`` images."""
    return int(np.ceil(np.sqrt(n)))


def train_uncond(*, desc, out_dir, config, vaX, fetch, ntrain, transform, inverse_transform,
                 init_params, build, mode, backend_name, draw_z, nvis, k, nbatch, niter,
                 niter_decay, lr, n_nnd, save_epochs, resume, max_updates, checkpoint_every,
                 data_desc, model_desc, grids, close=None, measures=None):
    """The original faces script's main loop, shared by every unconditional DCGAN script.

    The script loads its data (``vaX``: the transformed validation images; ``fetch(indices)``:
    a training batch tuple; ``close()``, if given, runs after training) and passes its model:
    ``init_params()`` -> (gen_params, discrim_params), drawn here after the caller's
    ``rng.set_seed``; ``build(gen_params, discrim_params, mode)`` -> (_train_g, _train_d, _gen,
    g_updater, d_updater, lrt); ``draw_z(n)`` -> (z,) from ``rng.np_rng`` (the sample z, the
    nnd samples' and each update's z). ``grids(nvis, nshow)`` gives the (rows, cols) of the
    real-image grid and of the per-epoch sample grid. The first line printed is
    ``data: <data_desc>, ... | model: ... (<model_desc>) | backend: ... | output: ...``.

    Draw order: init_params; py_rng.sample of the shown validation images; the nvis sample z;
    then fit's (epoch permutations, per-update z, nnd z). Returns ``fit_gan``'s counters.
    """
    from lib.backend import describe_mode
    from lib.metrics import nnd_score
    from lib.vis import color_grid_vis

    run = Run(desc, out_dir, config)

    gen_params, discrim_params = init_params()
    print(f'data: {data_desc}, {ntrain} training images, {len(vaX)} validation | '
          f'model: G {count_params(gen_params):,} params, D {count_params(discrim_params):,} '
          f'({model_desc}) | backend: {describe_mode(backend_name)} | output: {run.out_dir}',
          flush=True)

    print('COMPILING')
    t = time.time()
    _train_g, _train_d, _gen, g_updater, d_updater, lrt = build(gen_params, discrim_params, mode)
    print('%.2f seconds to compile theano functions' % (time.time()-t))

    nshow = min(nvis, len(vaX))
    etl_grid, sample_grid = grids(nvis, nshow)
    vis_idxs = rng.py_rng.sample(range(len(vaX)), nshow)
    color_grid_vis(inverse_transform(vaX[vis_idxs]), etl_grid,
                   str(run.samples_dir.parent / f'{desc}_etl_test.png'))

    sample_zmb, = draw_z(nvis)

    vaX_flat = vaX.reshape(len(vaX), -1)

    def update(batch, n_updates):
        imb = transform(batch[0])
        zmb, = draw_z(len(imb))
        if n_updates % (k+1) == 0:
            return _train_g(imb, zmb)
        return _train_d(imb, zmb)

    def epoch_end(n_epochs, n_updates, n_examples, seconds, cost):
        g_cost = float(cost[0])
        d_cost = float(cost[1])
        gX, _ = gen_samples(n_nnd, draw_z, _gen)
        gX = gX.reshape(len(gX), -1)
        # PORT: scores over more samples than --n_nnd generated are logged as null
        nnd = {f'{n // 1000}k_va_nnd': (nnd_score(gX[:n], vaX_flat, metric='euclidean')
                                        if n <= len(gX) else None)
               for n in (1000, 10000, 100000)}
        log = dict(n_epochs=n_epochs, n_updates=n_updates, n_examples=n_examples,
                   n_seconds=seconds, **nnd, g_cost=g_cost, d_cost=d_cost)
        shown = ' '.join('%.2f' % v if v is not None else '-' for v in nnd.values())
        if measures is not None:
            measured = measures(_gen)
            log.update(measured)
            shown += ''.join(f' {k} {v:.3f}' for k, v in measured.items()
                             if k in ('fd', 'precision', 'recall'))
        tqdm.write('%.0f %s %.4f %.4f' % (n_epochs, shown, g_cost, d_cost))
        samples = np.asarray(_gen(sample_zmb))
        color_grid_vis(inverse_transform(samples), sample_grid,
                       str(run.samples_dir / f'{n_epochs}.png'))
        return log

    try:
        return fit_gan(
            run, gen_params, discrim_params, g_updater, d_updater, update=update, fetch=fetch,
            ntrain=ntrain, nbatch=nbatch, niter=niter, niter_decay=niter_decay, lr=lr, lrt=lrt,
            epoch_end=epoch_end, save_epochs=save_epochs,
            resume=resume, max_updates=max_updates, checkpoint_every=checkpoint_every)
    finally:
        if close is not None:
            close()
