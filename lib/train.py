"""The mechanics of every train script's loop: output folders, checkpoints, resume, signals,
progress and the log.

A script keeps its data, model, costs, updates and epoch end, as the original wrote them, and
runs them inside a ``Loop`` (its ``epochs()`` and ``batches()`` generators). Checkpoints hold
everything needed to resume bit-exactly:
parameters, optimizer state, learning rate, the random generators, the epoch's data order, the
counters, the last update's costs and the run's flags. They are written atomically
(``lib.files``), so a kill mid-write leaves the previous checkpoint intact.

No run is lost: ``open_run`` refuses an output folder that holds a run unless ``--resume`` (which
continues it) or ``--overwrite`` (which replaces it) is given, and checks a checkpoint to resume
from, and the flags it may be resumed with (``RESUMABLE``), before any data is loaded or anything
compiled; a refused resume writes nothing. Ctrl-C or SIGTERM stops at the next update or epoch
end with a checkpoint (exit status 130 or 143); a second one stops at once, keeping the last
checkpoint. A loss that is not finite stops the run without saving (the last checkpoint is kept);
so does a minibatch that cannot be read (``DataError``: a data file broken or changed mid-run).
A resumed run whose data now has another number of training examples is refused (``describe``).
"""
import json
import signal
import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from lib import flags, rng
from lib.data_image import DataError
from lib.files import atomic_write, atomic_write_text

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
# PORT: k >= 1 (the original took k=0: no discriminator update ever, so G learns against its
# random initial D, a run that means nothing)
_POSITIVE = ("nbatch", "npx", "nc", "ny", "nz", "ngf", "ndf", "ngfc", "ndfc", "lr", "ntrain",
             "nval", "nvis", "n_nnd", "n_samples", "n_synthetic", "k")
_NON_NEGATIVE = ("l2", "niter", "niter_decay", "max_updates", "checkpoint_every", "n_eval")


def configure(namespace, names, argv=None, non_negative=()):
    """``flags.configure`` for a training script, with the shared ranges: sizes, counts, k and lr
    > 0; l2, epochs and run options >= 0; b1 in [0, 1); at least one epoch. ``non_negative``:
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
    for name in ("nbatch", "ntrain"):  # G's batchnorm over one example: every sample alike
        if name in config and config[name] < 2:
            flags.fail(f"--{name}={config[name]}: expected at least 2 (batchnorm over a batch of "
                       f"one normalises z away)")
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
        """Check that the folders can be made and written (``flags.output_problem``: it leaves
        none of those it made, so a run refused later, for its data say, leaves no empty
        folders); ``make_folders`` makes them when the run starts."""
        if self.out_dir.exists() and not self.out_dir.is_dir():
            raise RunError(f"{where}: a file, not a folder")
        for d in (self.log_dir, self.samples_dir, self.model_dir):
            problem = flags.output_problem(d, folder=True)
            if problem:
                raise RunError(f"{where}: {problem}")

    def make_folders(self):
        """Make the run's folders (at its start: ``describe``, ``begin``)."""
        for d in (self.log_dir, self.samples_dir, self.model_dir):
            d.mkdir(parents=True, exist_ok=True)

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
        self.make_folders()
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


class _Stopped(Exception):
    """Raised out of a script's loop body once a stop (signal or --max_updates) is checkpointed."""

    def __init__(self, why):
        super().__init__(why)
        self.why = why


class Loop:
    """The mechanics of a script's own training loop: epoch order, progress bar, checkpoints,
    resume, signals and the counters the log records. The script keeps its updates and its
    epoch end, as the original wrote them::

        with train.Loop(run, groups, ntrain=ntrain, nbatch=nbatch,
                        nepochs=niter+niter_decay) as loop:
            for epoch in loop.epochs():
                for imb, in loop.batches(fetch):
                    ...
                    loop.cost = _train_g(imb, zmb)   # every update sets the costs it returns
                loop.log(**scores)                    # the epoch end: scores, samples, lr, ...
        return loop.result

    - ``groups``: name -> shared variables (parameters, optimizer state, the learning rate): all
      go in the checkpoint. ``fetch(indices)`` returns a batch (a tuple of arrays) for sorted
      example indices; the epoch order is ``rng.np_rng.permutation(ntrain)``, the last batch may
      be partial.
    - ``epochs()`` yields the epoch number (the original's ``n_epochs`` before its epoch end);
      when the body (the script's epoch end) is done, the checkpoint is written.
    - The run's flags (``run.config``) say how to run: ``resume`` continues from
      ``run.checkpoint_path``, at any update; ``max_updates`` > 0 stops with a checkpoint after
      that many updates in this process; ``checkpoint_every`` > 0 also saves every that many
      seconds. Ctrl-C or SIGTERM stops at the next update or epoch end
      with a checkpoint and exit status 130 / 143; a second one stops at once.
    - A cost or parameter that is not finite stops the run without saving. A bad checkpoint, a
      loss that is not finite or a failed write prints ``error: ...`` and exits with status 2.

    ``n_updates``, ``n_examples``, ``seconds`` and ``cost`` (the last update's costs) are the
    counters; ``result`` (after the block) is them as a dict, with ``stopped`` (and ``signal``)
    when a stop ended it early.
    """

    def __init__(self, run, groups, *, ntrain, nbatch, nepochs):
        options = run.config or {}
        self.run = run
        self.groups = dict(groups)
        self.ntrain, self.nbatch, self.nepochs = ntrain, nbatch, nepochs
        self.resume = bool(options.get('resume', False))
        self.max_updates = options.get('max_updates', 0)
        self.checkpoint_every = options.get('checkpoint_every', 0.)
        self.counters = dict(epoch=0, batch=0, n_updates=0, n_examples=0, n_epochs=0,
                             seconds=0., cost=None)
        self.perm = None
        self.result = None
        self._stop = _StopRequest()
        self._saved_update = None
        self._done_here = 0
        self._new_cost = None

    n_updates = property(lambda self: self.counters['n_updates'])
    n_examples = property(lambda self: self.counters['n_examples'])
    seconds = property(lambda self: time.time() - self._t0)

    @property
    def cost(self):
        """The last update's costs (a list of floats; None before the first update)."""
        return self.counters['cost']

    @cost.setter
    def cost(self, values):
        self._new_cost = values

    def log(self, line=None, **scores):
        """Write the epoch's ndjson record: the counters (``n_epochs`` the epoch, ``n_updates``,
        ``n_examples``, ``n_seconds``), ``scores``, then the last update's ``g_cost`` and
        ``d_cost``; print ``line``, by default ``log_line`` of the record. Returns the record."""
        c = self.counters
        record = dict(n_epochs=c['epoch'], n_updates=c['n_updates'], n_examples=c['n_examples'],
                      n_seconds=self.seconds, **scores, g_cost=c['cost'][0], d_cost=c['cost'][1])
        print(line or log_line(record), flush=True)
        self.run.log(record)
        return record

    def __enter__(self):
        run = self.run
        self._stop.__enter__()
        try:
            if self.resume:
                saved = run.saved if run.saved is not None else read_checkpoint(run.checkpoint_path)
                self.counters, self.perm = restore_checkpoint(run.checkpoint_path, saved,
                                                              self.groups)
                self.counters.setdefault('cost', None)
                run.saved = None
                self._saved_update = self.counters['n_updates']
                tqdm.write(f"resumed from {run.checkpoint_path}: epoch "
                           f"{self.counters['epoch'] + 1}, update {self.counters['n_updates']}")
            run.begin(keep_before_epoch=self.counters['n_epochs'] if self.resume else None)
        except BaseException as e:
            if not self.__exit__(type(e), e, e.__traceback__):
                raise
        self._t0 = time.time() - self.counters['seconds']
        self._last_save = time.time()
        return self

    def epochs(self):
        """Yield each epoch still to run; checkpoint after the body (the epoch end)."""
        c = self.counters
        while c['epoch'] < self.nepochs:
            yield c['epoch']
            c['n_epochs'] += 1
            c['epoch'] += 1
            c['batch'] = 0
            self._checkpoint()
            if self._stop.signal is not None:
                raise _Stopped(signal.Signals(self._stop.signal).name)

    def batches(self, fetch):
        """Yield the epoch's batches, ``fetch(sorted indices)``, from where it stands."""
        c = self.counters
        nb = -(-self.ntrain // self.nbatch)
        if c['batch'] == 0 or self.perm is None:
            self.perm = rng.np_rng.permutation(self.ntrain)
        bar = tqdm(total=nb, initial=c['batch'], dynamic_ncols=True,
                   desc=f"epoch {c['epoch'] + 1}/{self.nepochs}", file=sys.stderr)
        try:
            while c['batch'] < nb:
                b = c['batch']
                # PORT: indices sorted within a batch (HDF5 reads need increasing indices); the
                # batch's content is the same, and batch statistics do not depend on order.
                batch = fetch(np.sort(self.perm[b * self.nbatch:(b + 1) * self.nbatch]))
                self._new_cost = None
                yield batch
                cost = self._new_cost
                c['n_updates'] += 1
                if cost is not None:
                    if not _finite(cost):
                        raise Diverged(f"update {c['n_updates']}: the loss is not finite "
                                       f"(costs {[float(v) for v in cost]})")
                    c['cost'] = [float(v) for v in cost]
                    bar.set_postfix(g=f"{c['cost'][0]:.3f}", d=f"{c['cost'][1]:.3f}",
                                    refresh=False)
                c['n_examples'] += len(batch[0])
                c['batch'] += 1
                self._done_here += 1
                bar.update(1)
                if self._stop.signal is not None or (self.max_updates
                                                     and self._done_here >= self.max_updates):
                    bar.close()
                    self._checkpoint()
                    raise _Stopped(signal.Signals(self._stop.signal).name
                                   if self._stop.signal is not None
                                   else f"--max_updates={self.max_updates}")
                if self.checkpoint_every and time.time() - self._last_save > self.checkpoint_every:
                    self._checkpoint()
                    if self._stop.signal is not None:  # came during that write: it is the stop's
                        bar.close()
                        raise _Stopped(signal.Signals(self._stop.signal).name)
        finally:
            bar.close()

    def _checkpoint(self):
        c = self.counters
        c['seconds'] = time.time() - self._t0
        if not _finite(v.get_value(borrow=True) for vs in self.groups.values() for v in vs):
            raise Diverged(f"update {c['n_updates']}: parameters are not finite")
        self._stop.saving = True
        try:
            save_checkpoint(self.run.checkpoint_path, self.groups, c, self.perm, self.run.config)
        finally:
            self._stop.saving = False
        self._saved_update = c['n_updates']
        self._last_save = time.time()

    def __exit__(self, kind, e, tb):
        self._stop.__exit__(kind, e, tb)
        run, saved = self.run, self._saved_update
        if e is None:
            self.result = dict(self.counters)
            return False
        if isinstance(e, _Stopped):
            tqdm.write(f"stopped ({e.why}) after update {self.n_updates}: checkpoint saved to "
                       f"{run.checkpoint_path}; continue with --resume")
            self.result = dict(self.counters, stopped=e.why, signal=self._stop.signal)
            if self._stop.signal is not None:  # after its checkpoint: 130 / 143
                raise SystemExit(128 + self._stop.signal) from None
            return True
        if isinstance(e, Diverged):
            kept = (f"the last checkpoint ({run.checkpoint_path}, update {saved}) is kept"
                    if saved is not None else "no checkpoint was saved")
            flags.fail(f"{e}; stopped without saving: {kept}")
        if isinstance(e, CheckpointError):
            flags.fail(e)
        if isinstance(e, DataError):  # a batch that cannot be read: the data file changed or broke
            kept = (f"the last checkpoint ({run.checkpoint_path}, update {saved}) is kept: "
                    f"--resume continues from it once the data is readable"
                    if saved is not None else "no checkpoint was saved")
            flags.fail(f"{e}; {kept}")
        if isinstance(e, OSError):  # a full disk, a folder made read-only mid-run
            flags.fail(f"{e.filename or run.out_dir}: {e.strerror or e}")
        interrupt = flags.interruption(e)
        if interrupt is not None:
            signum = getattr(interrupt, 'signum', signal.SIGINT)
            kept = (f"--resume continues from update {saved} ({run.checkpoint_path})"
                    if saved is not None else "no checkpoint was saved")
            print(f"\nstopped at once ({signal.Signals(signum).name} twice): {kept}",
                  file=sys.stderr)
            raise SystemExit(128 + signum) from None
        return False


# --------------------------------------------------------------------------------------------
# What the scripts share around their loops
# --------------------------------------------------------------------------------------------

def describe(run, data, ntrain, nval, gen_params, discrim_params, model, backend_name,
             speed=True):
    """Apply the process-wide speed settings (``speed``: the script's ``--speed_settings``,
    lib/speed.py) and print the run's first line: ``data: ... | model: ... | backend: ... |
    output: ... | speed settings: ...``; the run's folders are made here.

    A resumed run is first checked against its data: the epoch order in its checkpoint covers
    ``ntrain`` examples, else the data changed since the run started (more or fewer images in
    its folder or file) and the run is refused (``error:``, exit 2), before anything is written."""
    if run.saved is not None:
        before = len(run.saved[1]["perm"])
        if before != ntrain:
            flags.fail(f"--resume: {data} now has {ntrain} training examples, the run trained on "
                       f"{before}: its data changed since it started; resume it with its own "
                       f"data, or start a new --out_dir")
    run.make_folders()
    from lib import speed as speed_settings
    from lib.backend import describe_mode
    settings = speed_settings.apply(speed, backend_name)
    print(f'data: {data}, {ntrain} training images, {nval} validation | model: G '
          f'{count_params(gen_params):,} params, D {count_params(discrim_params):,} ({model}) | '
          f'backend: {describe_mode(backend_name)} | output: {run.out_dir} | {settings}',
          flush=True)


def grid_side(n):
    """Side of the smallest square grid holding ``n`` images."""
    return int(np.ceil(np.sqrt(n)))


def nnd_scores(vaX, n, gen_batch, nbatch=128, sizes=(1000, 10000, 100000)):
    """The original's per-epoch nnd scores: ``{'1k_va_nnd': ..., '10k_va_nnd': ...,
    '100k_va_nnd': ...}`` of ``n`` samples (``gen_batch(m)`` generates m of them) against the
    validation images ``vaX``; a size past ``n`` is None.

    The samples stream through the scores (``StreamedNNDScores``): one block is held, not all.
    """
    from lib.metrics import StreamedNNDScores
    # PORT: the original kept all n samples (100k images: 4.9 GB at 64 px) and scored prefixes
    # of them; the streamed scores are the same numbers.
    # a size past n is None whatever the distances: none are computed for it
    scored = [k for k in sizes if k <= n]
    stream = StreamedNNDScores(vaX, scored, metric='euclidean') if scored else None
    for m in gen_sizes(n, nbatch):
        samples = np.asarray(gen_batch(m))  # generated all the same: they draw from the rng
        if stream is not None:
            stream.add(samples)
    scores = stream.scores() if stream is not None else {}
    return {f'{k // 1000}k_va_nnd': scores.get(k) for k in sizes}


def log_line(log):
    """The original's printed epoch line from a log record: the epoch, the nnd scores ('-' past
    the samples), this project's fd, precision and recall where logged, g_cost and d_cost."""
    shown = ['%.0f' % log['n_epochs']]
    shown += ['%.2f' % v if v is not None else '-' for k, v in log.items() if k.endswith('_va_nnd')]
    shown += [f'{k} {log[k]:.3f}' for k in ('fd', 'precision', 'recall') if k in log]
    return ' '.join(shown + ['%.4f' % log['g_cost'], '%.4f' % log['d_cost']])
