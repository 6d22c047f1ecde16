"""Every training script's run mechanics (lib/train.py's Run and Loop, shared by all five): a run
already in the folder is refused, a refused --resume changes no file, a stop at an epoch's last
update resumes bit for bit, SIGINT / SIGTERM exit 130 / 143 with the acknowledgement, and a
training file that becomes unreadable mid-run stops with one ``error:`` line, keeping the last
checkpoint. tests/test_bad_inputs.py checks faces in depth (every stopping position, kill -9, a
full disk); here each script gets the cheapest smoke check of the same mechanism: its dry run
(two minibatches, one epoch) on tiny fixture data in its real format.
"""
import importlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from test_bad_inputs import _wait_for, expect_error, snapshot

ROOT = Path(__file__).resolve().parents[1]


def _svhn(folder):
    import scipy.io
    r = np.random.RandomState(1)
    for name, n in (("train_32x32.mat", 300), ("test_32x32.mat", 100)):
        scipy.io.savemat(str(folder / name), dict(
            X=r.randint(0, 256, (32, 32, 3, n)).astype(np.uint8),
            y=(np.arange(n) % 10 + 1).reshape(n, 1).astype(np.uint8)))
    return [f"--data_dir={folder}"]


def _imagenet(folder):
    from PIL import Image
    r = np.random.RandomState(0)
    for i in range(24):
        sub = folder / "train" / f"n0{i % 3}"
        sub.mkdir(parents=True, exist_ok=True)
        Image.fromarray(r.randint(0, 256, (40, 44, 3)).astype(np.uint8)).save(sub / f"{i}.png")
    return [f"--data={folder / 'train'}"]


def _lsun(folder):
    from lsun import load
    from lsun.scenes import rooms
    X, _ = rooms(12, seed=5, height=72, width=96)
    items = [(b"%040x" % i, load.encode(x, "png")) for i, x in enumerate(X)]
    return [f"--data={load.write_lmdb(folder / 'bedroom_train_lmdb', items)}"]


# script: (module, desc, its cheapest flags (a dry run, or a run of many tiny epochs), fixture
# data maker or None, a width flag)
SCRIPTS = {
    "faces": ("faces.train_uncond_dcgan", "uncond_dcgan",
              ["--ngf=8", "--ndf=8", "--nbatch=16", "--nvis=16", "--n_eval=0", "--n_synthetic=48",
               "--ntrain=32", "--nval=16", "--n_nnd=16"], None, "--ngf=16"),
    "mnist": ("mnist.train_cond_dcgan", "cond_dcgan",
              ["--ngf=8", "--ndf=8", "--ngfc=32", "--ndfc=32", "--nbatch=16", "--n_samples=100"],
              None, "--ngfc=64"),
    "svhn": ("svhn.train_uncond_dcgan", None, ["--ngf=8", "--ndf=8", "--nvis=16", "--nval=9",
                                               "--nbatch=16", "--ntrain=64", "--n_nnd=16"],
             _svhn, "--ndf=16"),
    "imagenet": ("imagenet.train_uncond_dcgan", None,
                 ["--nz=8", "--ngf=4", "--ndf=4", "--nbatch=4", "--nvis=4", "--nval=4", "--n_nnd=8"],
                 _imagenet, "--ngf=8"),
    "lsun": ("lsun.train_uncond_dcgan", None,
             ["--nz=8", "--ngf=4", "--ndf=4", "--nbatch=4", "--nvis=4", "--nval=4", "--n_nnd=8"],
             _lsun, "--ndf=8"),
}


class Script:
    """One training script, its fixture data and its dry run, called in-process (its flags set
    module globals: restored after each call) or as a process of its own."""

    def __init__(self, name, folder):
        module, desc, flags, make, self.width = SCRIPTS[name]
        self.name, self.module = name, importlib.import_module(module)
        self.desc = desc or self.module.desc
        self.data_dir = folder / "data"
        self.data_dir.mkdir()
        self.flags = ["--backend=c", *flags, *(make(folder) if make else [])]

    def __call__(self, out, *extra, dry_run=True):
        names = list(self.module.FLAGS) + [n for n in ("nx",) if hasattr(self.module, n)]
        saved = {k: getattr(self.module, k) for k in names}
        old = os.environ.get("DCGAN_DATA_DIR")
        os.environ["DCGAN_DATA_DIR"] = str(self.data_dir)
        try:
            return self.module.main([*self.flags, *(["--dry_run"] if dry_run else []),
                                     f"--out_dir={out}", *extra])
        finally:
            for k, v in saved.items():
                setattr(self.module, k, v)
            if old is None:
                os.environ.pop("DCGAN_DATA_DIR")
            else:
                os.environ["DCGAN_DATA_DIR"] = old

    def start(self, out, *extra):
        """The script in a process of its own (not a dry run: many epochs); stderr to a file."""
        env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1",
                   DCGAN_DATA_DIR=str(self.data_dir))
        err = open(out.parent / f"{out.name}.stderr", "w+")
        script = ROOT / (self.module.__name__.replace(".", "/") + ".py")
        proc = subprocess.Popen([sys.executable, str(script), *self.flags, f"--out_dir={out}",
                                 *extra], env=env, stdout=subprocess.PIPE, stderr=err, text=True)
        proc.err_file = err
        return proc

    @property
    def checkpoint(self):
        return f"models/{self.desc}/latest_checkpoint.npz"


# the run folder, refusals and resume are lib.train's, shared; faces has them all in
# tests/test_bad_inputs.py: mnist (its own conditional model and loop) runs here in the default
# suite, the other scripts with -m slow (about 15 s each for their run, more for the checks)
_IN_THE_DEFAULT_SUITE = ("mnist",)


@pytest.fixture(scope="module", params=[
    pytest.param(n, marks=() if n in _IN_THE_DEFAULT_SUITE else pytest.mark.slow)
    for n in SCRIPTS])
def script(request, tmp_path_factory):
    return Script(request.param, tmp_path_factory.mktemp(request.param))


@pytest.fixture(scope="module")
def full_run(script, tmp_path_factory):
    """The script's uninterrupted dry run: 2 updates, 1 epoch."""
    out = tmp_path_factory.mktemp(f"{script.name}_full")
    result = script(out)
    assert result["n_updates"] == 2 and "stopped" not in result
    return out


def _same_run(script, a, b):
    """The same parameter files, log (less its clock) and sample grids."""
    for p in sorted((a / "models" / script.desc).glob("*_params.npz")):
        from lib.params import load_params
        x, y = load_params(p), load_params(b / p.relative_to(a))
        assert all(np.array_equal(u, v) for u, v in zip(x, y)), p
    logs = []
    for d in (a, b):
        lines = [json.loads(line) for line in
                 (d / "logs" / f"{script.desc}.ndjson").read_text().splitlines()]
        logs.append([{k: v for k, v in line.items() if k != "n_seconds"} for line in lines])
    assert logs[0] == logs[1] and logs[0]
    pngs = sorted(p.relative_to(a) for p in a.rglob("*.png"))
    assert pngs and pngs == sorted(p.relative_to(b) for p in b.rglob("*.png"))
    for p in pngs:
        assert (a / p).read_bytes() == (b / p).read_bytes(), p


def test_stop_at_an_epochs_last_update_resumes_exactly(script, full_run, tmp_path):
    """Stopped after update 2, the epoch's last (its epoch end not yet run), then resumed: the
    epoch end runs on resume and the run equals the uninterrupted one bit for bit."""
    first = script(tmp_path, "--max_updates=2")
    assert first["stopped"] and first["n_updates"] == 2
    assert not (tmp_path / "logs" / f"{script.desc}.ndjson").read_text()
    second = script(tmp_path, "--resume")
    assert second["n_updates"] == 2 and "stopped" not in second
    _same_run(script, full_run, tmp_path)


def test_a_run_in_the_folder_is_kept(script, full_run, tmp_path, capsys):
    """Without --resume: refused, naming the folder and the ways on. --resume with another lr,
    nbatch or width: refused, naming the flag. --resume on a damaged checkpoint: refused. Not one
    file of the run changes (bytes and modification times), config.json included."""
    before = snapshot(full_run)
    message = expect_error(capsys, lambda: script(full_run), str(full_run), "--resume",
                           "--out_dir", "--overwrite")
    assert script.desc in message
    for flag in ("--lr=0.001", "--nbatch=2", script.width):
        expect_error(capsys, lambda: script(full_run, "--resume", flag), flag)
    assert snapshot(full_run) == before
    run = tmp_path / "run"
    shutil.copytree(full_run, run)
    ckpt = run / script.checkpoint
    ckpt.write_bytes(ckpt.read_bytes()[:2000])
    before = snapshot(run)
    expect_error(capsys, lambda: script(run, "--resume"), str(ckpt))
    assert snapshot(run) == before


# the signal handling is lib.train.Loop's, shared: faces has both signals in
# tests/test_bad_inputs.py; every script's pair here with -m slow (15 to 45 s each)
@pytest.mark.parametrize("name,sig", [
    pytest.param(name, sig, id=f"{name}-{sig.name}",
                 marks=pytest.mark.slow)
    for name in SCRIPTS for sig in (signal.SIGINT, signal.SIGTERM)])
def test_a_signal_mid_run_saves_and_exits_128_plus_it(name, sig, tmp_path):
    """A signal once training runs: acknowledged at once, a checkpoint, exit 130 / 143, no
    traceback; the checkpoint resumes."""
    script = Script(name, tmp_path)
    out = tmp_path / "run"
    proc = script.start(out, "--niter=1000")
    try:
        _wait_for(proc, script.desc.upper())
        time.sleep(0.5)
        proc.send_signal(sig)
        stdout, _ = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    proc.err_file.seek(0)
    err = proc.err_file.read()
    assert proc.returncode == 128 + sig, (proc.returncode, err[-2000:])
    assert "Traceback" not in err
    assert f"{sig.name}: stopping after this update" in err
    assert f"stopped ({sig.name}) after update" in stdout
    from lib.train import read_checkpoint
    meta, _ = read_checkpoint(out / script.checkpoint)
    done = meta["counters"]["n_updates"]
    result = script(out, "--resume", "--niter=1000", "--max_updates=1", dry_run=False)
    assert result["stopped"] and result["n_updates"] == done + 1


# --------------------------------------------------------------------------------------------
# A training file that breaks mid-run
# --------------------------------------------------------------------------------------------

def _data_file(script, folder):
    """The file a script reads its minibatches from: faces' synthetic cache, imagenet's
    conversion of its folder of images, lsun's LMDB data.mdb."""
    found = sorted(script.data_dir.rglob("*.hdf5")) or sorted(folder.rglob("data.mdb"))
    assert len(found) == 1, found
    return found[0]


# mnist and svhn read their whole training set at the start: no reads mid-run to break
# imagenet reads its conversion as faces reads its file (lib/data_hdf5.py): with -m slow
@pytest.mark.parametrize("name,fault", [
    ("faces", "truncated"), ("faces", "read_error"), ("lsun", "truncated"),
    pytest.param("imagenet", "truncated", marks=pytest.mark.slow)])
def test_a_data_file_that_breaks_mid_run(name, fault, tmp_path, monkeypatch, capsys):
    """After the first epoch's checkpoint, the training file is truncated to half its size (HDF5
    would read the missing rows as zeros, silently; LMDB's mapping would kill the process with
    SIGBUS), or every later read fails with EIO. The next minibatch stops the run with one
    ``error:`` line naming the file and the checkpoint kept, exit 2, no traceback; the checkpoint
    is the first epoch's, whole, and once the file is repaired --resume ends where the
    uninterrupted run ends, bit for bit."""
    import h5py
    import lib.data_hdf5
    from lib import train
    script = Script(name, tmp_path)
    monkeypatch.setattr(lib.data_hdf5, "IN_MEMORY_MAX_BYTES", 0)  # batches read from the file
    script(tmp_path / "reference", "--niter=2", dry_run=False)
    data = _data_file(script, tmp_path)
    intact = data.read_bytes()
    run = tmp_path / "run"
    saved = []
    real_checkpoint, real_getitem = train.Loop._checkpoint, h5py.Dataset.__getitem__

    def checkpoint_then_break(loop):
        real_checkpoint(loop)
        if not saved:
            saved.append((run / script.checkpoint).read_bytes())
            if fault == "truncated":
                os.truncate(data, len(intact) // 2)
            else:
                def eio(*args):
                    raise OSError(5, "Input/output error")
                monkeypatch.setattr(h5py.Dataset, "__getitem__", eio)
    monkeypatch.setattr(train.Loop, "_checkpoint", checkpoint_then_break)
    capsys.readouterr()
    message = expect_error(capsys, lambda: script(run, "--niter=2", dry_run=False), str(data),
                           "is kept", str(run / script.checkpoint))
    assert ("changed while being read" if name != "lsun" else "truncated while being read"
            ) in message if fault == "truncated" else "Input/output error" in message
    assert (run / script.checkpoint).read_bytes() == saved[0]
    assert train.read_checkpoint(run / script.checkpoint)[0]["counters"]["n_epochs"] == 1
    monkeypatch.setattr(train.Loop, "_checkpoint", real_checkpoint)
    monkeypatch.setattr(h5py.Dataset, "__getitem__", real_getitem)
    data.write_bytes(intact)
    result = script(run, "--resume", "--niter=2", dry_run=False)
    assert result["n_epochs"] == 2 and "stopped" not in result
    _same_run(script, tmp_path / "reference", run)


# --------------------------------------------------------------------------------------------
# JAX
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", [n if n == "mnist" else pytest.param(n, marks=pytest.mark.slow)
                                  for n in SCRIPTS])
def test_dry_run_on_jax_without_64_bit_requests(name, tmp_path):
    """Each script's dry run on JAX (x64 off): it runs (mnist's concatenation of y's maps once
    failed: an Alloc and a Split at sizes traced from shapes), with no 64-bit dtype request
    ("Explicitly requested dtype int64 ... will be truncated") and no split at traced positions."""
    pytest.importorskip("jax")
    import warnings
    script = Script(name, tmp_path)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="Explicitly requested dtype")
        warnings.filterwarnings("error", message="Split node does not have constant")
        result = script(tmp_path / "run", "--backend=jax")
    assert result["n_updates"] == 2 and np.isfinite(result["cost"]).all()
