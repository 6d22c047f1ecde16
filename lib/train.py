"""The training loop, sample generation, logging, output folders and checkpoints of every script.

The original's train scripts each carried their own copy of this; here a script keeps only its
data, model and costs and calls ``fit``. Checkpoints hold everything needed to resume bit-exactly:
parameters, optimizer state, learning rate, the random generators, the epoch's data order, the
counters, the last update's costs and the run's flags. They are written atomically
(``lib.files``), so a kill mid-write leaves the previous checkpoint intact.

No run is lost: ``open_run`` refuses an output folder that holds a run unless ``--resume`` (which
continues it) or ``--overwrite`` (which replaces it) is given, and checks a checkpoint to resume
from, and the flags it may be resumed with (``RESUMABLE``), before any data is loaded or anything
compiled; a refused resume writes nothing. Ctrl-C or SIGTERM stops at the next update or epoch
end with a checkpoint (exit status 130 or 143); a second one stops at once, keeping the last
checkpoint. A loss that is not finite stops the run without saving (the last checkpoint is kept).
"""
import json
import os
import signal
import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from lib import flags, rng
from lib.files import atomic_write, atomic_write_text
from lib.theano_utils import floatX

CHECKPOINT = "latest_checkpoint.npz"
_FORMAT = 1

# Flags a run may be resumed with at a new value: they change how long it trains, the lr decay
# over the epochs still to come, the backend and what is measured or shown, not its data, model,
# optimizer or random stream. The new value is applied and announced on one line; a change of any
# other flag is refused (the run's own values are in its checkpoint).
RESUMABLE = ("niter", "niter_decay", "backend", "nvis", "n_eval")
# Flags that say how to run, not what: never compared.
_RUN_OPTIONS = ("out_dir", "resume", "overwrite", "max_updates", "checkpoint_every")


# The ranges of the flags the training scripts share (those a script has are checked).
_POSITIVE = ("nbatch", "npx", "nc", "ny", "nz", "ngf", "ndf", "ngfc", "ndfc", "lr", "ntrain",
             "nval", "nvis", "n_nnd", "n_samples", "n_synthetic")
_NON_NEGATIVE = ("k", "l2", "niter", "niter_decay", "max_updates", "checkpoint_every", "n_eval")


def configure(namespace, names, argv=None, non_negative=()):
    """``flags.configure`` for a training script, with the shared ranges: sizes, counts and lr
    > 0; k, l2, epochs and run options >= 0; b1 in [0, 1); at least one epoch. ``non_negative``:
    the script's flags for which 0 means something (moved from > 0). A script checks its own
    shapes after this."""
    values = flags.overridable(namespace, names)
    config = flags.configure(
        namespace, names, argv, fractions=[n for n in ("b1",) if n in values],
        positive=[n for n in _POSITIVE if n in values and n not in non_negative],
        non_negative=[n for n in _NON_NEGATIVE + tuple(non_negative) if n in values])
    if config["niter"] + config["niter_decay"] < 1:
        flags.fail(f"--niter={config['niter']} --niter_decay={config['niter_decay']}: nothing "
                   f"to train (at least one epoch)")
    return config


class RunError(ValueError):
    """An output folder or checkpoint that cannot be used as asked (message is one line)."""


class CheckpointError(RunError):
    """A missing, corrupt or mismatched checkpoint (message is one line)."""


class Diverged(RuntimeError):
    """A loss that is not finite (message is one line)."""


class Run:
    """Output folders of one run: ``logs/``, ``samples/<desc>/`` and ``models/<desc>/``.

    Opening one checks, before any work: that the folders can be made and written; that a
    fresh run (neither ``resume`` nor ``overwrite``) does not replace a run already there; for
    ``resume``, that the checkpoint is readable and the flags in ``config`` agree with the run's
    except those in ``resumable`` (announced). ``where`` names the folder in messages (the flag
    the user typed). Nothing is written in the folders until ``begin``.
    """

    def __init__(self, desc, out_dir, config=None, *, resume=False, overwrite=False,
                 resumable=RESUMABLE, where=None):
        self.desc = desc
        self.out_dir = Path(out_dir).resolve()
        self.config = config
        self.resume = resume
        self.overwrite = overwrite
        self.log_dir = self.out_dir / "logs"
        self.samples_dir = self.out_dir / "samples" / desc
        self.model_dir = self.out_dir / "models" / desc
        self.log_path = self.log_dir / f"{desc}.ndjson"
        self.config_path = self.log_dir / f"{desc}.config.json"
        self.checkpoint_path = self.model_dir / CHECKPOINT
        self.saved = None  # (meta, arrays) of the checkpoint to resume from
        where = where or str(self.out_dir)
        if resume and overwrite:
            raise RunError("--resume and --overwrite: choose one (continue the run, or replace it)")
        self._make_folders(where)
        found = self._outputs()
        if not resume and not overwrite and found:
            raise RunError(f"{where} already holds a {desc} run ({', '.join(found[:3])}): "
                           f"continue it with --resume, or choose another --out_dir "
                           f"(or --overwrite to replace it)")
        if resume:
            self.saved = read_checkpoint(self.checkpoint_path)
            self._check_resumed_flags(resumable)

    def _make_folders(self, where):
        if self.out_dir.exists() and not self.out_dir.is_dir():
            raise RunError(f"{where}: a file, not a folder")
        for d in (self.log_dir, self.samples_dir, self.model_dir):
            try:
                d.mkdir(parents=True, exist_ok=True)
                probe = d / f".write_test.{os.getpid()}"
                os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
                probe.unlink()
            except OSError as e:
                raise RunError(f"{where}: cannot write {e.filename or d}: "
                               f"{e.strerror or e}") from None

    def _outputs(self):
        """Names of this run's files in the folder (relative to out_dir)."""
        found = [p for p in (self.checkpoint_path, self.log_path) if p.exists()
                 and p.stat().st_size > 0]
        found += sorted(self.model_dir.glob("*_params.*")) + sorted(self.samples_dir.glob("*.png"))
        return [str(p.relative_to(self.out_dir)) for p in found]

    def _check_resumed_flags(self, resumable):
        meta, _ = self.saved
        saved = meta.get("config")
        if saved is None and self.config_path.exists():  # a checkpoint from before they were kept
            try:
                saved = json.loads(self.config_path.read_text())
            except ValueError:
                saved = None
        if saved is None or self.config is None:
            return
        differ = [n for n in self.config if n in saved and saved[n] != self.config[n]
                  and n not in _RUN_OPTIONS]
        refused = [n for n in differ if n not in resumable]
        shown = ", ".join(f"--{n}={self.config[n]} (the run has {saved[n]!r})"
                          for n in (refused or differ))
        if refused:
            raise RunError(f"--resume: {shown}: a run resumes with its own data, model and "
                           f"optimizer settings; drop these flags, or start a new run in "
                           f"another --out_dir")
        if differ:
            print(f"resuming with {shown}", flush=True)

    def begin(self, keep_before_epoch=None):
        """Start writing: the resolved config beside the log, and the ndjson log (fresh, or when
        resuming, keeping the lines of finished epochs). ``--overwrite`` first removes the
        replaced run's checkpoint, parameter files and sample grids."""
        if self.overwrite:
            for p in ([self.checkpoint_path] + list(self.model_dir.glob("*_params.*"))
                      + list(self.samples_dir.glob("*.png"))):
                p.unlink(missing_ok=True)
        if self.config is not None:
            atomic_write_text(self.config_path, json.dumps(self.config, indent=1, sort_keys=True)
                              + "\n")
        kept = []
        if keep_before_epoch is not None and self.log_path.exists():
            for line in self.log_path.read_text().splitlines():
                try:
                    if json.loads(line)["n_epochs"] < keep_before_epoch:
                        kept.append(line + "\n")
                except (ValueError, KeyError, TypeError):
                    continue
        atomic_write_text(self.log_path, "".join(kept))

    def log(self, record):
        """Append one ndjson line."""
        with open(self.log_path, "a") as f:
            f.write(json.dumps(record) + "\n")


def open_run(desc, out_dir, config, *, resume=False, overwrite=False, default_dir=None,
             resumable=RESUMABLE):
    """``Run`` for a script's flags, or ``error: ...`` (one line) and exit status 2.

    ``out_dir``: the --out_dir flag ('' = ``default_dir``, the script's folder).
    """
    where = f"--out_dir={out_dir}" if out_dir else str(default_dir)
    try:
        return Run(desc, out_dir or default_dir, config, resume=resume, overwrite=overwrite,
                   resumable=resumable, where=where)
    except RunError as e:
        flags.fail(e)


def count_params(params):
    """Total number of scalars in a list of shared variables."""
    return int(sum(np.prod(p.get_value(borrow=True).shape) for p in params))


def gen_sizes(n, nbatch=128):
    """The batch sizes in which ``gen_samples`` generates ``n`` samples."""
    # PORT: the original also called _gen on an empty final batch when nbatch divides n; that
    # draws no random numbers, so skipping it changes nothing but avoids an empty batchnorm.
    return [nbatch] * (n // nbatch) + ([n % nbatch] if n % nbatch else [])


def gen_samples(n, draw, gen_fn, nbatch=128):
    """Generate ``n`` samples in batches of ``nbatch`` like the original's ``gen_samples``.

    ``draw(m)`` returns the generator inputs for ``m`` samples (a tuple); returns the samples and
    the concatenated inputs.
    """
    samples, inputs = [], []
    for m in gen_sizes(n, nbatch):
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


def save_checkpoint(path, groups, counters, perm, config=None):
    """Write a checkpoint atomically. ``groups``: name -> list of shared variables; ``config``:
    the run's flags (compared on resume)."""
    meta, arrays = _rng_state()
    for name, variables in groups.items():
        for i, v in enumerate(variables):
            arrays[f"{name}/{i}"] = np.asarray(v.get_value())
    arrays["perm"] = np.asarray(perm, dtype=np.int64)
    meta.update(format=_FORMAT, counters=counters, config=config,
                groups={name: len(v) for name, v in groups.items()})
    arrays["meta"] = np.asarray(json.dumps(meta))
    atomic_write(path, lambda f: np.savez(f, **arrays))


def read_checkpoint(path):
    """The (meta, arrays) of a checkpoint file, every array read (so a damaged file fails here)."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: no checkpoint to resume from (run without --resume first)")
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
        meta = json.loads(str(arrays.pop("meta")))
        if not isinstance(meta, dict):
            raise ValueError("meta is not a JSON object")
    except Exception as e:  # zip, npy and json errors all mean the same thing here
        raise CheckpointError(f"{path}: unreadable checkpoint ({type(e).__name__}: {e})") from None
    if meta.get("format") != _FORMAT:
        raise CheckpointError(f"{path}: checkpoint format {meta.get('format')}, expected {_FORMAT}")
    return meta, arrays


def restore_checkpoint(path, saved, groups):
    """Put a read checkpoint (``read_checkpoint``'s (meta, arrays)) into ``groups`` and the
    random generators; return (counters, perm). Nothing is changed if a shape disagrees."""
    meta, arrays = saved
    values = []
    for name, variables in groups.items():
        if meta["groups"].get(name) != len(variables):
            raise CheckpointError(f"{path}: '{name}' has {meta['groups'].get(name)} arrays, "
                                  f"the model has {len(variables)}")
        for i, v in enumerate(variables):
            value = arrays.get(f"{name}/{i}")
            current = v.get_value(borrow=True)
            if value is None or value.shape != current.shape:
                raise CheckpointError(f"{path}: {name} #{i} ({v.name}) has shape "
                                      f"{None if value is None else value.shape}, the model "
                                      f"expects {current.shape} (same flags as the run?)")
            values.append((v, value.astype(current.dtype)))
    for v, value in values:
        v.set_value(value)
    _set_rng_state(meta, arrays)
    return meta["counters"], arrays["perm"]


def load_checkpoint(path, groups):
    """Restore a checkpoint file into ``groups`` and the random generators; return (counters,
    perm)."""
    return restore_checkpoint(path, read_checkpoint(path), groups)


def _finite(values):
    return all(np.isfinite(np.asarray(v)).all() for v in values)


# --------------------------------------------------------------------------------------------
# The loop
# --------------------------------------------------------------------------------------------

class _StopRequest:
    """Turns SIGINT/SIGTERM into a flag checked between updates and after each epoch end.

    The first signal prints a line at once; a second one stops at once (raises
    ``flags.Interrupted``) unless a checkpoint is being written, which is then finished first.
    """

    def __init__(self):
        self.signal = None
        self.saving = False

    def __enter__(self):
        self._old = {s: signal.signal(s, self._handle) for s in (signal.SIGINT, signal.SIGTERM)}
        return self

    def _handle(self, signum, frame):
        name = signal.Signals(signum).name
        if self.signal is None:
            self.signal = signum
            sys.stderr.write(f"\n{name}: stopping after this update (or epoch end) and saving a "
                             f"checkpoint; {name} again stops at once, keeping the last one\n")
        elif self.saving:
            sys.stderr.write(f"\n{name}: the checkpoint is being written; stopping when it is\n")
        else:
            raise flags.Interrupted(signum)
        sys.stderr.flush()

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
      log record (or None to skip the log line); ``cost``: the last update's costs. The lr decays
      linearly to zero over ``niter_decay`` epochs after ``niter``; ``save_params(n_epochs)``
      writes the parameter files at ``save_epochs``; then the checkpoint is written.
    - ``groups`` (name -> shared variables: parameters, optimizer state) go in the checkpoint.
    - ``resume`` continues from ``run.checkpoint_path`` (at any update, an epoch's last
      included); ``max_updates`` > 0 stops (with a checkpoint) after that many updates in this
      process; ``checkpoint_every`` > 0 also saves every that many seconds. Ctrl-C or SIGTERM
      saves a checkpoint and returns; a second one raises ``flags.Interrupted``.
    - A cost that is not finite raises ``Diverged`` before anything more is saved.

    Returns the counters dict (with ``stopped`` set, and ``signal`` for a signal, if it ended
    early).
    """
    groups = dict(groups, lrt=[lrt])
    counters = dict(epoch=0, batch=0, n_updates=0, n_examples=0, n_epochs=0, seconds=0.,
                    cost=None)
    perm = None
    if resume:
        saved = run.saved if run.saved is not None else read_checkpoint(run.checkpoint_path)
        counters, perm = restore_checkpoint(run.checkpoint_path, saved, groups)
        counters.setdefault("cost", None)
        run.saved = None
        tqdm.write(f"resumed from {run.checkpoint_path}: epoch {counters['epoch'] + 1}, "
                   f"update {counters['n_updates']}")
    run.begin(keep_before_epoch=counters["n_epochs"] if resume else None)
    nepochs = niter + niter_decay
    nb = -(-ntrain // nbatch)
    t0 = time.time() - counters["seconds"]
    last_save = time.time()
    saved_update = counters["n_updates"] if resume else None
    done_here = 0
    cost = counters["cost"]

    def checkpoint():
        nonlocal saved_update
        counters["seconds"] = time.time() - t0
        if not _finite(v.get_value(borrow=True) for vs in groups.values() for v in vs):
            raise Diverged(f"update {counters['n_updates']}: parameters are not finite")
        stop.saving = True
        try:
            save_checkpoint(run.checkpoint_path, groups, counters, perm, run.config)
        finally:
            stop.saving = False
        saved_update = counters["n_updates"]

    def stopped(why):
        tqdm.write(f"stopped ({why}) after update {counters['n_updates']}: checkpoint saved to "
                   f"{run.checkpoint_path}; continue with --resume")
        return dict(counters, stopped=why, signal=stop.signal)

    with _StopRequest() as stop:
        try:
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
                    if cost is not None:
                        if not _finite(cost):
                            bar.close()
                            raise Diverged(f"update {counters['n_updates']}: the loss is not "
                                           f"finite (costs {[float(c) for c in cost]})")
                        counters["cost"] = [float(c) for c in cost]
                    counters["n_examples"] += len(batch[0])
                    counters["batch"] += 1
                    done_here += 1
                    bar.update(1)
                    if cost is not None:
                        bar.set_postfix(g=f"{float(cost[0]):.3f}", d=f"{float(cost[1]):.3f}",
                                        refresh=False)
                    if stop.signal is not None or (max_updates and done_here >= max_updates):
                        bar.close()
                        checkpoint()
                        return stopped(signal.Signals(stop.signal).name if stop.signal is not None
                                       else f"--max_updates={max_updates}")
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
                if stop.signal is not None:
                    return stopped(signal.Signals(stop.signal).name)
        except Diverged as e:
            kept = (f"the last checkpoint ({run.checkpoint_path}, update {saved_update}) is kept"
                    if saved_update is not None else "no checkpoint was saved")
            raise Diverged(f"{e}; stopped without saving: {kept}") from None
        except KeyboardInterrupt as e:
            signum = getattr(e, "signum", signal.SIGINT)
            kept = (f"--resume continues from update {saved_update} ({run.checkpoint_path})"
                    if saved_update is not None else "no checkpoint was saved")
            print(f"\nstopped at once ({signal.Signals(signum).name} twice): {kept}",
                  file=sys.stderr)
            raise SystemExit(128 + signum) from None
    return counters


def fit_gan(run, gen_params, discrim_params, g_updater, d_updater, **fit_kwargs):
    """``fit`` for a GAN: ``<epoch>_{gen,discrim}_params.npz`` at the save epochs, both parameter
    lists and both updaters' state in the checkpoint. ``fit_kwargs``: the rest of ``fit``'s
    arguments. A bad checkpoint, a loss that is not finite or a failed write prints ``error: ...``
    and exits with status 2; a run stopped by SIGINT or SIGTERM exits with 130 or 143 after
    its checkpoint."""
    from lib.params import save_params

    def save(n_epochs):
        save_params(gen_params, run.model_dir / f'{n_epochs}_gen_params.npz')
        save_params(discrim_params, run.model_dir / f'{n_epochs}_discrim_params.npz')

    print(run.desc.upper())
    groups = dict(gen=gen_params, discrim=discrim_params,
                  g_opt=g_updater.state, d_opt=d_updater.state)
    try:
        result = fit(run, groups=groups, save_params=save, **fit_kwargs)
    except (CheckpointError, Diverged) as e:
        flags.fail(e)
    except OSError as e:  # a full disk, a folder made read-only mid-run: the last checkpoint stays
        flags.fail(f"{e.filename or run.out_dir}: {e.strerror or e}")
    if result.get("signal") is not None:  # a signal stopped it, after saving: 130 / 143
        raise SystemExit(128 + result["signal"])
    return result


# --------------------------------------------------------------------------------------------
# The unconditional GAN driver (faces, imagenet, svhn)
# --------------------------------------------------------------------------------------------

def grid_side(n):
    """Side of the smallest square grid holding ``n`` images."""
    return int(np.ceil(np.sqrt(n)))


def train_uncond(*, run, vaX, fetch, ntrain, transform, inverse_transform,
                 init_params, build, mode, backend_name, draw_z, nvis, k, nbatch, niter,
                 niter_decay, lr, n_nnd, save_epochs, resume, max_updates, checkpoint_every,
                 data_desc, model_desc, grids, close=None, measures=None):
    """The original faces script's main loop, shared by every unconditional DCGAN script.

    ``run``: the script's ``open_run``. The script loads its data (``vaX``: the transformed
    validation images; ``fetch(indices)``: a training batch tuple; ``close()``, if given, runs
    after training) and passes its model:
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
    from lib.metrics import StreamedNNDScores
    from lib.vis import color_grid_vis

    desc = run.desc

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


    def update(batch, n_updates):
        imb = transform(batch[0])
        zmb, = draw_z(len(imb))
        if n_updates % (k+1) == 0:
            return _train_g(imb, zmb)
        return _train_d(imb, zmb)

    def epoch_end(n_epochs, n_updates, n_examples, seconds, cost):
        g_cost = float(cost[0])
        d_cost = float(cost[1])
        # PORT: the original kept all n_nnd samples (100k images: 4.9 GB at 64 px) and scored
        # prefixes of them; here they stream through the same scores in blocks (lib.metrics).
        # Scores over more samples than --n_nnd generated are logged as null.
        stream = StreamedNNDScores(vaX, (1000, 10000, 100000), metric='euclidean')
        for m in gen_sizes(n_nnd):
            zmb, = draw_z(m)
            stream.add(np.asarray(_gen(zmb)))
        nnd = {f'{n // 1000}k_va_nnd': v for n, v in stream.scores().items()}
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
