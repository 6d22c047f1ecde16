"""Bad inputs and faults, for every entry point: one ``error:`` line, the right exit status, and no
run lost.

Each bad input runs the script's ``main(argv)`` in-process and asserts exit status 2, that stderr
ends in exactly one ``error: ...`` line naming the flag or file given, with no traceback, and,
where a run existed before, that every file of it is unchanged (bytes and modification times).
Faults that need a process of their own (signals, kill -9, a write error, a full disk) run the
faces script as a subprocess. Every training run is the tiny C model of tests/test_faces_train.py
(its modules are compiled once; later runs load them from PyTensor's cache).
"""
import hashlib
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import faces.train_uncond_dcgan as faces_train
import faces.sample_dcgan as faces_sample

ROOT = Path(__file__).resolve().parents[1]
# 2 epochs of 2 minibatches (32 of 48 synthetic faces, 16 for validation): 4 updates
SMALL = ["--ntrain=32", "--nval=16", "--n_nnd=16", "--n_synthetic=48", "--nbatch=16",
         "--nvis=16", "--ngf=8", "--ndf=8", "--backend=c", "--n_eval=0", "--niter=2"]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("data")


@pytest.fixture(autouse=True)
def _data_env(data_dir, monkeypatch):
    monkeypatch.setenv("DCGAN_DATA_DIR", str(data_dir))


def _restoring(module):
    """Call a script's main() in-process; its flags set module globals, restored afterwards."""
    names = list(module.FLAGS) + [n for n in ("nx",) if hasattr(module, n)]

    def call(argv):
        saved = {k: getattr(module, k) for k in names}
        try:
            return module.main(list(argv))
        finally:
            for k, v in saved.items():
                setattr(module, k, v)
    return call


train_main = _restoring(faces_train)


def _train(out, *extra):
    return train_main(SMALL + [f"--out_dir={out}", *extra])


def snapshot(folder):
    """{relative path: (sha1, mtime_ns)} of every file under ``folder``."""
    return {str(p.relative_to(folder)): (hashlib.sha1(p.read_bytes()).hexdigest(),
                                         p.stat().st_mtime_ns)
            for p in sorted(Path(folder).rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def full_run(tmp_path_factory, data_dir):
    """An uninterrupted run (4 updates, 2 epochs): the run that bad inputs must leave alone, and
    the reference for the resumed runs."""
    os.environ["DCGAN_DATA_DIR"] = str(data_dir)
    out = tmp_path_factory.mktemp("full")
    result = _train(out)
    assert result["n_updates"] == 4
    return out


def expect_error(capsys, call, *named):
    """Run ``call()``; assert exit 2 and one last ``error:`` line naming each of ``named``."""
    with pytest.raises(SystemExit) as exc:
        call()
    captured = capsys.readouterr()
    err = captured.err.replace("\r", "\n").strip().splitlines()
    assert exc.value.code == 2, (exc.value.code, err)
    assert err and err[-1].startswith("error: "), err
    assert [line for line in err if line.startswith("error: ")] == err[-1:], err
    assert not any("Traceback" in line for line in err + captured.out.splitlines()), err
    for text in named:
        assert text in err[-1], (text, err[-1])
    return err[-1]


# --------------------------------------------------------------------------------------------
# Training flags: refused before any work, the pre-existing run unchanged
# --------------------------------------------------------------------------------------------

FACES_BAD_FLAGS = [
    # (argv, text the error must contain)
    (["--nbatch=-3"], "--nbatch=-3"),
    (["--nbatch=inf"], "--nbatch=inf"),
    (["--nbatch=0"], "--nbatch=0"),
    (["--nbatch=1e400"], "--nbatch=1e400"),
    (["--nbatch=1"], "--nbatch=1"),  # batchnorm over one example: G ignores z
    (["--ntrain=1"], "--ntrain=1"),
    (["--lr=nan"], "--lr=nan"),
    (["--lr=0"], "--lr=0"),
    (["--l2=inf"], "--l2=inf"),
    (["--l2=-1"], "--l2=-1"),
    (["--b1=1"], "--b1=1"),
    (["--b1=-0.1"], "--b1=-0.1"),
    (["--npx=32"], "--npx=32"),
    (["--npx=63"], "--npx=63"),
    (["--nc=1"], "--nc=1"),
    (["--ntrain=0"], "--ntrain=0"),
    (["--nval=0"], "--nval=0"),
    (["--nvis=0"], "--nvis=0"),
    (["--n_nnd=0"], "--n_nnd=0"),
    (["--ngf=0"], "--ngf=0"),
    (["--ndf=-8"], "--ndf=-8"),
    (["--nz=0"], "--nz=0"),
    (["--niter=0"], "--niter=0"),
    (["--niter=-1"], "--niter=-1"),
    (["--k=-1"], "--k=-1"),
    (["--k=0"], "--k=0"),  # no discriminator update ever
    (["--n_synthetic=0"], "--n_synthetic=0"),
    (["--seed=-1"], "--seed=-1"),
    (["--seed=4294967296"], "--seed=4294967296"),
    (["--max_updates=-1"], "--max_updates=-1"),
    (["--checkpoint_every=-1"], "--checkpoint_every=-1"),
    (["--checkpoint_every=nan"], "--checkpoint_every=nan"),
    (["--n_eval=-1"], "--n_eval=-1"),
    (["--n_eval=2"], "--n_eval=2"),
    (["--backend=tpu"], "--backend=tpu"),
    (["--ngfx=3"], "--ngfx"),
    (["--ngf=many"], "--ngf=many"),
    (["--ngf=8.5"], "--ngf=8.5"),
    (["--resume=maybe"], "--resume=maybe"),
    (["--overwrite="], "--overwrite="),  # an empty $VAR is not a yes
    (["nbatch=16"], "nbatch=16"),
    ([], "--resume"),  # a run is there: refused, naming the ways on
    (["--overwrite", "--resume"], "--overwrite"),
    (["--resume", "--lr=0.001"], "--lr=0.001"),
    (["--resume", "--nbatch=8"], "--nbatch=8"),
    (["--resume", "--ngf=16"], "--ngf=16"),
    (["--resume", "--seed=7"], "--seed=7"),
    (["--resume", "--n_nnd=8"], "--n_nnd=8"),
]


@pytest.mark.parametrize("argv,named", FACES_BAD_FLAGS,
                         ids=[" ".join(a) or "existing_run" for a, _ in FACES_BAD_FLAGS])
def test_faces_training_flags(full_run, capsys, argv, named):
    before = snapshot(full_run)
    message = expect_error(capsys, lambda: _train(full_run, *argv), named)
    if not argv:
        assert str(full_run) in message and "--out_dir" in message and "--overwrite" in message
    assert snapshot(full_run) == before


@pytest.mark.parametrize("case", ["missing_data", "nval_too_large", "out_dir_is_a_file",
                                  "out_dir_under_a_file", "resume_without_checkpoint"])
def test_faces_training_paths(tmp_path, capsys, case):
    """Errors about the data or the output folder name the path; nothing is written."""
    out = tmp_path / "out"
    if case == "missing_data":
        argv, named = [f"--data={tmp_path / 'nope.hdf5'}"], "nope.hdf5"
    elif case == "nval_too_large":
        argv, named = ["--nval=1000"], "--nval=1000"
    elif case == "out_dir_is_a_file":
        out.write_text("not a folder")
        argv, named = [], "--out_dir="
    elif case == "out_dir_under_a_file":
        (tmp_path / "file").write_text("not a folder")
        out = tmp_path / "file" / "out"
        argv, named = [], str(tmp_path / "file")
    else:
        argv, named = ["--resume"], "no checkpoint"
    expect_error(capsys, lambda: _train(out, *argv), named)
    assert not [p for p in tmp_path.rglob("*") if p.is_file() and p.name != "file"
                and p != out]
    if case in ("missing_data", "nval_too_large"):  # refused after the folder checks: no folders
        assert not out.exists()


def test_corrupt_checkpoint_is_refused_and_kept(full_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(full_run, run)
    ckpt = run / "models/uncond_dcgan/latest_checkpoint.npz"
    ckpt.write_bytes(ckpt.read_bytes()[:1000])
    before = snapshot(run)
    expect_error(capsys, lambda: _train(run, "--resume"), str(ckpt), "unreadable checkpoint")
    assert snapshot(run) == before


@pytest.mark.parametrize("module,argv,named", [
    ("mnist.train_cond_dcgan", ["--nbatch=0"], "--nbatch=0"),
    ("mnist.train_cond_dcgan", ["--lr=inf"], "--lr=inf"),
    ("mnist.train_cond_dcgan", ["--niter=0", "--niter_decay=0"], "--niter=0"),
    ("mnist.train_cond_dcgan", ["--npx=32"], "--npx=32"),
    ("mnist.train_cond_dcgan", ["--n_samples=0"], "--n_samples=0"),
    ("mnist.train_cond_dcgan", ["--ngfc=0"], "--ngfc=0"),
    ("mnist.train_cond_dcgan", ["--k=0"], "--k=0"),
    ("mnist.train_cond_dcgan", ["--resume", "--overwrite"], "--resume"),
    ("svhn.train_uncond_dcgan", ["--npx=64"], "--npx=64"),
    ("svhn.train_uncond_dcgan", ["--nbatch=inf"], "--nbatch=inf"),
    ("svhn.train_uncond_dcgan", ["--b1=2"], "--b1=2"),
    ("svhn.train_uncond_dcgan", ["--nval=0"], "--nval=0"),
    ("svhn.train_uncond_dcgan", ["--nbatch=1"], "--nbatch=1"),
    ("lsun.train_uncond_dcgan", ["--ntrain=1"], "--ntrain=1"),
    ("lsun.train_uncond_dcgan", ["--data=x", "--npx=48"], "--npx=48"),
    ("imagenet.train_uncond_dcgan", ["--nvis=1"], "--nvis=1"),
    ("imagenet.train_uncond_dcgan", ["--nz=0"], "--nz=0"),
    ("imagenet.train_uncond_dcgan", ["--seed=-5"], "--seed=-5"),
    ("imagenet.train_uncond_dcgan", ["--l2=nan"], "--l2=nan"),
    ("svhn.sample_pretrained", ["--n=0"], "--n=0"),
    ("svhn.sample_pretrained", ["--epoch=-1"], "--epoch=-1"),
    ("svhn.sample_pretrained", ["--n=1"], "--n=1"),
    ("lsun.boxes", ["--nbatch=1"], "--nbatch=1"),
    ("lsun.boxes", ["--model=x", "--out=b.json", "--backend=tpu"], "--backend=tpu"),
    ("lsun.boxes", ["--model=x", "--out=b.json", "--label="], "--label="),
    ("lsun.boxes", ["--n=5", "--nbatch=4"], "--n=5 --nbatch=4"),
    ("svhn.svhn_semisup_analysis", ["--n_per_class=0"], "--n_per_class=0"),
    ("svhn.svhn_semisup_analysis", ["--seed=-1"], "--seed=-1"),
    ("imagenet.load_pretrained", ["--nvis=1"], "--nvis=1"),
    ("imagenet.load_pretrained", ["--nz=-1"], "--nz=-1"),
    ("imagenet.load_pretrained", ["--out=grid.txt"], "--out=grid.txt"),
    ("imagenet.cifar10_svm", ["--nbatch=1"], "--nbatch=1"),
    ("imagenet.cifar10_svm", ["--ntrain=0"], "--ntrain=0"),
    ("imagenet.cifar10_svm", ["--max_iter=0"], "--max_iter=0"),
    ("faces.convert", [], "--src"),
    ("faces.convert", ["--src=imgs"], "--out"),
    ("faces.convert", ["--size=abc"], "--size=abc"),
    ("faces.convert", ["--size=0", "--src=imgs", "--out=x.hdf5"], "--size=0"),
    ("faces.convert", ["--test_fraction=1.5"], "--test_fraction=1.5"),
    ("faces.convert", ["--workers=-1"], "--workers=-1"),
    ("faces.convert", ["--src", "imgs"], "expected --src=<str>"),
    ("faces.convert", ["--bogus=1"], "--bogus"),
    ("faces.convert", ["--src=no_such_folder", "--out=x.hdf5"], "no_such_folder"),
    ("faces.synthetic", ["--n=0"], "--n=0"),
    ("faces.synthetic", ["--n=ten"], "--n=ten"),
    ("faces.synthetic", ["--size=4"], "--size=4"),
    ("faces.synthetic", ["--seed=-1"], "--seed=-1"),
    ("faces.synthetic", ["--workers=0"], "--workers=0"),
    ("faces.synthetic", ["--grid_only", "--grid=faces.txt"], "--grid=faces.txt"),
    ("faces.synthetic", ["--size=100000000000"], "--size=100000000000"),
    ("faces.synthetic", ["--n=1e20"], "--n=1e20"),
    # the section-6 experiments: ranges before the model is read
    ("faces.arithmetic", ["--radius=-1"], "--radius=-1"),
    ("faces.arithmetic", ["--show=0"], "--show=0"),
    ("faces.arithmetic", ["--n_population=0"], "--n_population=0"),
    ("faces.arithmetic", ["--n_population=1"], "--n_population=1"),
    ("faces.arithmetic", ["--epoch=-1"], "--epoch=-1"),
    ("faces.turn", ["--scale=0"], "--scale=0"),
    ("faces.turn", ["--rows=0"], "--rows=0"),
    ("faces.walk", ["--sharp_factor=-1"], "--sharp_factor=-1"),
    ("faces.walk", ["--n_show=0"], "--n_show=0"),
    ("faces.walk", ["--data=no_such_faces.hdf5"], "--data=no_such_faces.hdf5"),
    ("faces.dfeatures", ["--n_features=0"], "--n_features=0"),
    ("faces.dfeatures", ["--nbatch=0"], "--nbatch=0"),
    ("faces.forget", ["--C=0"], "--C=0"),
    ("faces.forget", ["--box_threshold=1"], "--box_threshold=1"),
    ("faces.forget", ["--nbatch=1e20"], "--nbatch=1e20"),
    ("faces.walk", ["--n_mem=1e20"], "--n_mem=1e20"),
    ("faces.turn", ["--n_pool=1e20"], "--n_pool=1e20"),
    ("faces.dfeatures", ["--top_k=1e20"], "--top_k=1e20"),
    ("faces.attrnet", ["--nf=0"], "--nf=0"),
    ("faces.attrnet", ["--ntrain=0"], "--ntrain=0"),
    ("faces.attrnet", ["--lr=0"], "--lr=0"),
    ("faces.attrnet", ["--niter=0", "--niter_decay=0"], "--niter=0"),
    ("faces.attrnet", ["--niter=-1"], "--niter=-1"),
    ("svhn.sample_pretrained", ["--n=1e20"], "--n=1e20"),
    ("imagenet.load_pretrained", ["--nvis=1e20"], "--nvis=1e20"),
    ("bench.lsun_loader", ["--n=1e20"], "--n=1e20"),
], ids=lambda v: v if isinstance(v, str) else " ".join(v))
def test_other_entry_points(tmp_path, capsys, module, argv, named):
    import importlib
    mod = importlib.import_module(module)
    extra = [f"--out_dir={tmp_path}"] if "out_dir" in mod.FLAGS else []
    expect_error(capsys, lambda: _restoring(mod)(argv + extra), named)
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]


# Output paths that cannot be written: refused before any work, naming the flag; {file} is a
# file, {dir} a folder, {ro} a path where nothing can be made (/proc, even for root)
OUTPUTS = [
    ("faces.arithmetic", ["--out_dir={file}"], "--out_dir="),
    ("faces.arithmetic", ["--out_dir={file}/sub"], "is a file"),
    ("faces.turn", ["--out_dir={ro}"], "--out_dir={ro}"),
    ("faces.walk", ["--out_dir={ro}"], "--out_dir={ro}"),
    ("faces.dfeatures", ["--out_dir={file}"], "--out_dir="),
    ("faces.forget", ["--out_dir={ro}"], "--out_dir={ro}"),
    ("faces.evaluate", ["--model=x", "--out={dir}"], "--out={dir}"),
    ("faces.evaluate", ["--model=x", "--out={ro}/e.json"], "--out={ro}/e.json"),
    ("faces.evaluate", ["--model=x", "--grid={ro}/g.png"], "--grid={ro}/g.png"),
    ("faces.evaluate", ["--model=x", "--grid={dir}/g.txt"], "--grid="),
    ("faces.attrnet", ["--out={dir}"], "--out={dir}"),
    ("faces.attrnet", ["--out={ro}/a.npz"], "--out={ro}/a.npz"),
    ("faces.synthetic", ["--n=4", "--out={dir}"], "--out={dir}"),
    ("faces.synthetic", ["--n=4", "--out={ro}/s.hdf5"], "--out={ro}/s.hdf5"),
    ("faces.synthetic", ["--n=4", "--out={file}/s.hdf5"], "is a file"),
    ("faces.synthetic", ["--n=4", "--grid_only", "--grid={ro}/g.png"], "--grid={ro}/g.png"),
    ("faces.convert", ["--src={dir}", "--out={ro}/c.hdf5"], "--out={ro}/c.hdf5"),
    ("svhn.sample_pretrained", ["--out={ro}/s.png"], "--out={ro}/s.png"),
    ("svhn.svhn_semisup_analysis", ["--out={dir}"], "--out={dir}"),
    ("imagenet.load_pretrained", ["--out={ro}/s.png"], "--out={ro}/s.png"),
    ("imagenet.cifar10_svm", ["--out={ro}/c.json"], "--out={ro}/c.json"),
    ("lsun.boxes", ["--model=x", "--out={ro}/b.json"], "--out={ro}/b.json"),
    ("lsun.boxes", ["--model=x", "--out={dir}/boxes"], "expected a file name with an extension"),
    ("lsun.dedup", ["--measure", "--out_dir={file}"], "--out_dir="),
    ("lsun.dedup", ["--data={dir}", "--cache={ro}/c.npy"], "--cache={ro}/c.npy"),
    ("lsun.dfeatures", ["--out_dir={ro}"], "--out_dir={ro}"),
    ("lsun.forget", ["--out_dir={file}"], "--out_dir="),
    ("lsun.convert", ["--data={dir}", "--out={ro}/l.hdf5"], "--out={ro}/l.hdf5"),
    ("bench.fd_curve", ["--runs=a.json", "--out={ro}/f.png"], "--out={ro}/f.png"),
    ("bench.lsun_loader", ["--work={file}"], "--work="),
    ("bench.lsun_loader", ["--json_out={ro}/l.json"], "--json_out={ro}/l.json"),
]


@pytest.mark.parametrize("module,argv,named", OUTPUTS,
                         ids=[f"{m} {' '.join(a)}" for m, a, _ in OUTPUTS])
def test_unwritable_outputs(tmp_path, capsys, module, argv, named):
    import importlib
    mod = importlib.import_module(module)
    (tmp_path / "file").write_text("not a folder")
    where = dict(file=tmp_path / "file", dir=tmp_path, ro="/proc/dcgan_test")
    before = snapshot(tmp_path)
    expect_error(capsys, lambda: _restoring(mod)([a.format(**where) for a in argv]),
                 named.format(**where))
    assert snapshot(tmp_path) == before and sorted(tmp_path.iterdir()) == [tmp_path / "file"]


# The argparse benchmarks (lib.flags.ArgumentParser and its type= checks)
BENCH_BAD = [
    ("conv_c", ["--batch=0"], "--batch: '0'"),
    ("conv_c", ["--reps=-1"], "--reps: '-1'"),
    ("conv_c", ["--numpy_reps=-1"], "--numpy_reps: '-1'"),
    ("conv_c", ["--dtype=int8"], "--dtype"),
    ("conv_c", ["--bogus"], "--bogus"),
    ("conv_kernels", ["--reps=0"], "--reps: '0'"),
    ("conv_kernels", ["--seed=-1"], "--seed: '-1'"),
    ("conv_kernels", ["--backends=foo"], "--backends=foo"),
    ("profile_step", ["--calls=0"], "--calls: '0'"),
    ("profile_step", ["--rows=0"], "--rows: '0'"),
    ("pytorch_linkers", ["--rounds=0"], "--rounds: '0'"),
    ("pytorch_linkers", ["--timeout=nan"], "--timeout: 'nan'"),
    ("pytorch_linkers", ["--json=/proc/dcgan_test.json"], "--json: '/proc/dcgan_test.json'"),
    ("train_step", ["--timeout=-5"], "--timeout: '-5'"),
    ("train_step", ["--repeats=0"], "--repeats: '0'"),
    ("train_step", ["--json=/proc/dcgan_test.json"], "--json: '/proc/dcgan_test.json'"),
    ("epoch_end_memory", ["--n_eval=-1"], "--n_eval=-1"),
    ("epoch_end_memory", ["--backend=tpu"], "--backend=tpu"),
    ("epoch_end_memory", ["--nbatch=1"], "--nbatch=1"),
]


@pytest.mark.parametrize("module,argv,named", BENCH_BAD,
                         ids=[f"{m} {' '.join(a)}" for m, a, _ in BENCH_BAD])
def test_bench_flags(monkeypatch, capsys, module, argv, named):
    import importlib
    mod = importlib.import_module(f"bench.{module}")
    monkeypatch.setattr(sys, "argv", [f"{module}.py", *argv])  # conv_c and conv_kernels read it
    expect_error(capsys, lambda: mod.main() if module.startswith("conv_") else mod.main(argv),
                 named)


@pytest.mark.parametrize("module", ["faces.walk", "faces.dfeatures"])
def test_section6_refuses_a_junk_checkpoint(tmp_path, capsys, module):
    """Not a zip file (BadZipFile, a traceback before): one line naming the file."""
    import importlib
    ckpt = tmp_path / "latest_checkpoint.npz"
    ckpt.write_bytes(b"PK\x03\x04 not a checkpoint")
    expect_error(capsys, lambda: _restoring(importlib.import_module(module))(
        [f"--model={ckpt}", "--backend=c", f"--out_dir={tmp_path / 'out'}"]), str(ckpt))
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("where", ["file", "read_only"])
def test_data_dir_that_cannot_take_data(tmp_path, monkeypatch, capsys, where):
    """$DCGAN_DATA_DIR a file, or where nothing can be made: one line, no traceback."""
    import faces.synthetic as synthetic
    if where == "file":
        (tmp_path / "file").write_text("x")
        monkeypatch.setenv("DCGAN_DATA_DIR", str(tmp_path / "file"))
        named = f"DCGAN_DATA_DIR={tmp_path / 'file'}: a file"
    else:
        monkeypatch.setenv("DCGAN_DATA_DIR", "/proc/dcgan_test")
        named = "/proc/dcgan_test/synthetic_faces_4_0_64px.hdf5: cannot write it"
    expect_error(capsys, lambda: _restoring(synthetic)(["--n=4"]), named)


def test_boxes_add_nothing_is_refused_and_the_file_kept(tmp_path, capsys):
    """lsun/boxes.py --boxes with an empty --add: refused (it rewrote the file, adding nothing)."""
    import lsun.boxes as boxes
    path = tmp_path / "b.json"
    path.write_text(json.dumps(dict(format=boxes.FORMAT, model="m", seed=0, nbatch=4, n=4,
                                    size=64, label="window", images=[])))
    before = snapshot(tmp_path)
    expect_error(capsys, lambda: _restoring(boxes)([f"--boxes={path}", "--index=0", "--add="]),
                 "--add=")
    assert snapshot(tmp_path) == before


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the divergence itself
def test_attrnet_divergence_writes_nothing(tmp_path, capsys):
    """A learning rate that sends the cost to nan: one line, no NaN weights written."""
    import faces.attrnet as attrnet
    out = tmp_path / "attrnet.npz"
    expect_error(capsys, lambda: _restoring(attrnet)(
        ["--lr=1e30", "--nf=2", "--nfeat=4", "--ntrain=16", "--nbatch=8", "--nval=4", "--niter=2",
         "--niter_decay=0", "--backend=c", f"--out={out}"]), "--lr=", "diverged", str(out))
    assert not list(tmp_path.iterdir())


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the divergence itself
def test_dedup_divergence_writes_no_measure(tmp_path, capsys):
    import lsun.dedup as dedup
    expect_error(capsys, lambda: _restoring(dedup)(
        ["--measure", "--n_distinct=40", "--n_copies=10", "--niter=3", "--nbatch=16", "--lr=1e30",
         "--backend=c", f"--out_dir={tmp_path}"]), "--lr=", "diverged")
    assert not (tmp_path / "dedup_measure.json").exists()


@pytest.mark.parametrize("content", ["junk", "[]", "{}", '{"results": [], "floor": {"fd": 1}}',
                                     '{"results": [{"n_seconds": 5, "fd": 0}], "floor": {"fd": 1}}',
                                     None], ids=["junk", "list", "empty", "no_results", "fd_0",
                                                 "folder"])
def test_fd_curve_bad_run_file(tmp_path, capsys, content):
    """bench/fd_curve.py: a --runs file that is not an evaluate.py JSON names the file."""
    from bench import fd_curve
    run = tmp_path / "run.json"
    if content is None:
        run.mkdir()
    else:
        run.write_text(content)
    expect_error(capsys, lambda: _restoring(fd_curve)([f"--runs={run}",
                                                      f"--out={tmp_path / 'fd.png'}"]), str(run))
    assert not (tmp_path / "fd.png").exists()


def test_fd_curve_plots_a_good_file(tmp_path):
    from bench import fd_curve
    run = tmp_path / "run.json"
    run.write_text(json.dumps(dict(results=[dict(n_seconds=60, fd=5.), dict(n_seconds=120, fd=2.)],
                                   floor=dict(fd=0.5))))
    _restoring(fd_curve)([f"--runs={run}", f"--out={tmp_path / 'fd.png'}"])
    assert (tmp_path / "fd.png").stat().st_size > 0


def test_out_of_memory_is_one_line():
    """A count the machine cannot hold (a MemoryError) is one line through flags.command."""
    code = ("import numpy as np; from lib import flags; "
            "flags.command(lambda: np.zeros((1 << 40, 1 << 20), np.uint8))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    err = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(err) == 1 and err[0].startswith("error: out of memory"), err


def test_attrnet_check_refuses_a_junk_file(tmp_path, capsys):
    import faces.attrnet as attrnet
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a parameter file")
    expect_error(capsys, lambda: _restoring(attrnet)(["--check", f"--out={junk}", "--nval=4",
                                                      "--backend=c"]), str(junk))


# --------------------------------------------------------------------------------------------
# The sampler
# --------------------------------------------------------------------------------------------

sample_main = _restoring(faces_sample)


@pytest.fixture
def arch():
    """The sampler sets the training script's nz/ngf/nc from the file: restore them."""
    saved = {k: getattr(faces_train, k) for k in ("nz", "ngf", "nc")}
    yield
    for k, v in saved.items():
        setattr(faces_train, k, v)


@pytest.mark.parametrize("case", [
    "n=0", "nbatch=0", "n_population=0", "seed_negative", "seed_text", "bn", "no_model",
    "missing_model", "object_npz", "junk_file", "pickle_jl", "truncated_checkpoint",
    "out_is_folder", "out_extension", "out_no_folder", "single_out_is_file", "out_read_only",
    "single_out_read_only", "n_population=1", "n_huge"])
def test_sampler(full_run, tmp_path, capsys, arch, case):
    models = full_run / "models/uncond_dcgan"
    model, argv = models, []
    if case in ("n=0", "nbatch=0", "n_population=0", "n_population=1"):
        argv, named = [f"--{case}"], f"--{case}"
    elif case == "seed_negative":
        argv, named = ["--seeds=3,-1"], "--seeds=3,-1"
    elif case == "seed_text":
        argv, named = ["--seeds=a"], "--seeds=a"
    elif case == "bn":
        argv, named = ["--bn=running"], "--bn=running"
    elif case == "no_model":
        model, named = "", "--model"
    elif case == "missing_model":
        model, named = tmp_path / "nope.npz", "nope.npz"
    elif case == "object_npz":
        model = tmp_path / "obj.npz"
        np.savez(model, np.array([{"a": 1}], dtype=object))
        named = "obj.npz"
    elif case == "junk_file":
        model = tmp_path / "junk_gen_params.npz"
        model.write_bytes(b"not a parameter file")
        named = "junk_gen_params.npz"
    elif case == "pickle_jl":
        import pickle
        model = tmp_path / "25_gen_params.jl"
        model.write_bytes(pickle.dumps(os.system, protocol=2))
        named = "25_gen_params.jl"
    elif case == "truncated_checkpoint":
        model = tmp_path / "latest_checkpoint.npz"
        model.write_bytes((models / "latest_checkpoint.npz").read_bytes()[:5000])
        named = "latest_checkpoint.npz"
    elif case == "out_is_folder":
        argv, named = [f"--out={tmp_path}"], f"--out={tmp_path}"
    elif case == "out_extension":
        argv, named = [f"--out={tmp_path / 'grid.txt'}"], "grid.txt"
    elif case == "out_no_folder":
        argv, named = [f"--out={tmp_path / 'no' / 'grid.png'}"], "grid.png"
    elif case == "out_read_only":  # refused before sampling (/proc: even root cannot write)
        argv, named = ["--out=/proc/grid.png"], "--out=/proc/grid.png"
    elif case == "single_out_read_only":
        argv, named = ["--single=true", "--out=/proc/dcgan_samples"], "--out=/proc/dcgan_samples"
    elif case == "n_huge":
        argv, named = ["--n=1e20"], "--n=1e20"
    else:
        (tmp_path / "file").write_text("x")
        argv, named = ["--single=true", f"--out={tmp_path / 'file'}"], "--out="
    before = snapshot(full_run)
    expect_error(capsys, lambda: sample_main([f"--model={model}", "--backend=c", *argv]), named)
    assert snapshot(full_run) == before


def test_single_image_depends_on_its_seed(full_run, tmp_path, capsys, arch):
    """--single=true with the default --bn=batch: population statistics, said on one line, so
    seeds 5 and 9 differ (batch statistics over one image would make them identical)."""
    from PIL import Image
    models = full_run / "models/uncond_dcgan"
    images = []
    for s in (5, 9):
        sample_main([f"--model={models}", f"--seeds={s}", "--single=true", "--backend=c",
                     f"--out={tmp_path}", "--n_population=32", "--nbatch=16"])
        assert "--bn=population" in capsys.readouterr().out
        images.append(np.asarray(Image.open(tmp_path / f"seed_{s}.png"), dtype=np.int16))
    assert np.abs(images[0] - images[1]).max() > 0


# --------------------------------------------------------------------------------------------
# Resuming: at every position within an epoch, bit for bit; with a longer --niter
# --------------------------------------------------------------------------------------------

def _same_outputs(a, b):
    from lib.params import load_params
    for e in (1, 2):
        for which in ("gen", "discrim"):
            x = load_params(a / f"models/uncond_dcgan/{e}_{which}_params.npz")
            y = load_params(b / f"models/uncond_dcgan/{e}_{which}_params.npz")
            assert all(np.array_equal(u, v) for u, v in zip(x, y)), (e, which)
    logs = []
    for d in (a, b):
        lines = [json.loads(line) for line in (d / "logs/uncond_dcgan.ndjson").read_text()
                 .splitlines()]
        for line in lines:
            line.pop("n_seconds")
        logs.append(lines)
    assert logs[0] == logs[1]
    for e in (0, 1):
        png = f"samples/uncond_dcgan/{e}.png"
        assert (a / png).read_bytes() == (b / png).read_bytes()


@pytest.mark.parametrize("stop", [1, 2, 3], ids=["mid_epoch_1", "last_of_epoch_1",
                                                 "first_of_epoch_2"])
def test_resume_at_every_position(full_run, tmp_path, stop):
    """Stopped after update 1, 2 (an epoch's last: the epoch end runs on resume) or 3, then
    resumed: the same parameters, log and samples as the uninterrupted run. (Update 4 is the
    run's end; a stop at an epoch end's checkpoint is the signal test's.)"""
    first = _train(tmp_path, f"--max_updates={stop}")
    assert first["stopped"] and first["n_updates"] == stop
    second = _train(tmp_path, "--resume")
    assert second["n_updates"] == 4 and "stopped" not in second
    _same_outputs(full_run, tmp_path)


def test_resume_on_changed_data_is_refused(tmp_path, capsys):
    """The run's data file lost images after a stop (32 training images, then 24): --resume is
    refused before any work, naming the file and both counts, and not one file of the run
    changes (its epoch order would index images that are gone, or skip some)."""
    from lib.data_hdf5 import H5Writer

    def faces_file(path, n):
        with H5Writer(path, n, 64) as w:
            w.write(np.random.RandomState(n).randint(0, 256, (n, 64, 64, 3)).astype(np.uint8))
            w.finish(ntest=4)
    data = tmp_path / "faces.hdf5"
    faces_file(data, 40)
    run = tmp_path / "run"
    assert _train(run, f"--data={data}", "--max_updates=1")["stopped"]
    faces_file(data, 28)
    before = snapshot(run)
    expect_error(capsys, lambda: _train(run, f"--data={data}", "--resume"), "--resume", str(data),
                 "now has 24", "trained on 32")
    assert snapshot(run) == before


def test_resume_with_more_epochs_is_announced(full_run, tmp_path, capsys):
    shutil.copytree(full_run, tmp_path / "run")
    result = _train(tmp_path / "run", "--resume", "--niter=3")
    assert result["n_epochs"] == 3 and result["n_updates"] == 6
    assert "resuming with --niter=3 (the run has 2)" in capsys.readouterr().out


def test_overwrite_replaces_the_run(full_run, tmp_path):
    shutil.copytree(full_run, tmp_path / "run")
    result = _train(tmp_path / "run", "--overwrite", "--niter=1")
    assert result["n_epochs"] == 1
    assert not (tmp_path / "run/models/uncond_dcgan/2_gen_params.npz").exists()
    assert len((tmp_path / "run/logs/uncond_dcgan.ndjson").read_text().splitlines()) == 1


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the divergence itself
def test_nan_loss_stops_keeping_the_last_checkpoint(tmp_path, capsys):
    """lr 1e38 sends the parameters to ~1e38 after the first update, and the next costs to
    inf/nan: one line naming the update, exit 2, and the checkpoint of the last finite update
    (saved after every update here) is not replaced."""
    message = expect_error(capsys, lambda: _train(tmp_path, "--lr=1e38",
                                                  "--checkpoint_every=1e-9"), "not finite")
    assert "update" in message and "is kept" in message
    from lib.train import read_checkpoint
    meta, arrays = read_checkpoint(tmp_path / "models/uncond_dcgan/latest_checkpoint.npz")
    assert all(np.isfinite(a).all() for k, a in arrays.items() if "/" in k)
    assert f"update {meta['counters']['n_updates']}) is kept" in message


# --------------------------------------------------------------------------------------------
# Faults in a process of its own: signals, kill -9, a write error
# --------------------------------------------------------------------------------------------

def _start(out, *extra, preexec_fn=None):
    """The faces script in a process of its own; stderr (progress bars) goes to a file."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    err = open(out.parent / f"{out.name}.stderr", "w+")
    proc = subprocess.Popen([sys.executable, str(ROOT / "faces/train_uncond_dcgan.py"), *SMALL,
                             f"--out_dir={out}", *extra], env=env, stdout=subprocess.PIPE,
                            stderr=err, text=True, preexec_fn=preexec_fn)
    proc.err_file = err
    return proc


def _wait_for(proc, start, timeout=300):
    """Read stdout until a line starts with ``start``; returns the lines read."""
    seen = []
    deadline = time.time() + timeout
    while time.time() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        seen.append(line)
        if line.startswith(start):
            return seen
    proc.kill()
    raise AssertionError(f"no line starting {start!r}: {seen}")


def _wait_for_err(proc, text, timeout=300):
    """Wait until the script's stderr (its progress bars) contains ``text``."""
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        proc.err_file.seek(0)
        if text in proc.err_file.read():
            return
        time.sleep(0.02)
    proc.kill()
    raise AssertionError(f"{text!r} never on stderr")


def _finish(proc):
    out, _ = proc.communicate(timeout=300)
    proc.err_file.seek(0)
    return proc.returncode, out, proc.err_file.read()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_during_compile(tmp_path, sig):
    out = tmp_path / "run"
    proc = _start(out, "--niter=50")
    _wait_for(proc, "COMPILING")
    proc.send_signal(sig)
    code, stdout, err = _finish(proc)
    assert code == 128 + sig, (code, err)
    assert "Traceback" not in err
    if "UNCOND_DCGAN" not in stdout:  # it was still compiling (else: training's own stop)
        assert f"stopped ({sig.name})" in err
        assert not (out / "models/uncond_dcgan/latest_checkpoint.npz").exists()


# The mid-epoch signal is sent when the epoch's bar first shows (0/2): tqdm may never draw 1/2
# when the two tiny updates take less than its refresh interval.
@pytest.mark.parametrize("sig,at", [(signal.SIGINT, "0/2 ["), (signal.SIGTERM, "0 ")],
                         ids=["SIGINT_mid_epoch", "SIGTERM_epoch_end"])
def test_signal_saves_and_resumes_exactly(tmp_path, sig, at):
    """A signal after the first update or at the first epoch end: acknowledged at once, a
    checkpoint, exit 128 + signal; --resume then ends where the uninterrupted run ends, bit for
    bit."""
    out = tmp_path / "run"
    proc = _start(out, "--n_nnd=2000")  # a longer epoch end: 2000 samples scored
    if at == "0 ":
        _wait_for(proc, at)
    else:
        _wait_for_err(proc, at)
    proc.send_signal(sig)
    code, stdout, err = _finish(proc)
    assert code == 128 + sig, (code, err)
    assert "Traceback" not in err
    assert f"{sig.name}: stopping after this update" in err
    assert f"stopped ({sig.name}) after update" in stdout
    result = _train(out, "--resume", "--n_nnd=2000")
    assert result["n_updates"] == 4
    _train(tmp_path / "reference", "--n_nnd=2000")
    _same_outputs(tmp_path / "reference", out)


def test_second_sigint_stops_at_once_without_a_traceback(tmp_path):
    """Two Ctrl-C during the second epoch end (20,000 samples scored: seconds): the first is
    acknowledged, the second stops at once, exit 130, keeping the first epoch's checkpoint."""
    out = tmp_path / "run"
    proc = _start(out, "--niter=3", "--n_nnd=20000")
    _wait_for_err(proc, "epoch 2/3: 100%")
    proc.send_signal(signal.SIGINT)
    time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    code, stdout, err = _finish(proc)
    assert code == 130, (code, err)
    assert "Traceback" not in err
    assert "SIGINT: stopping after this update" in err
    assert "stopped at once (SIGINT twice): --resume continues from update 2" in err, err
    from lib.train import read_checkpoint
    read_checkpoint(out / "models/uncond_dcgan/latest_checkpoint.npz")  # whole and readable
    assert _train(out, "--resume", "--niter=3", "--n_nnd=20000", "--max_updates=1")["stopped"]


def test_two_sigints_during_a_checkpoint_write(full_run, tmp_path, monkeypatch, capsys):
    """Ctrl-C twice while a checkpoint is written (sent by the writer itself, so always mid-write;
    a checkpoint after every update): the first is acknowledged, the second says the write
    finishes first; the run then stops with that checkpoint (update 1), exit 130, no traceback,
    and --resume ends where the uninterrupted run ends, bit for bit."""
    from lib import train
    real, calls = train.save_checkpoint, []

    def interrupted_twice(*args, **kwargs):
        if not calls:
            os.kill(os.getpid(), signal.SIGINT)
            os.kill(os.getpid(), signal.SIGINT)
        calls.append(1)
        return real(*args, **kwargs)
    monkeypatch.setattr(train, "save_checkpoint", interrupted_twice)
    with pytest.raises(SystemExit) as exc:
        _train(tmp_path, "--checkpoint_every=1e-9")
    captured = capsys.readouterr()
    assert exc.value.code == 130
    assert "Traceback" not in captured.err + captured.out
    assert "SIGINT: stopping after this update" in captured.err
    assert "SIGINT: the checkpoint is being written; stopping when it is" in captured.err
    assert "stopped (SIGINT) after update 1" in captured.out
    assert len(calls) == 1
    meta, _ = train.read_checkpoint(tmp_path / "models/uncond_dcgan/latest_checkpoint.npz")
    assert meta["counters"]["n_updates"] == 1
    monkeypatch.setattr(train, "save_checkpoint", real)
    assert _train(tmp_path, "--resume", "--checkpoint_every=1e-9")["n_updates"] == 4
    _same_outputs(full_run, tmp_path)


def test_kill_9_during_a_checkpoint_write_keeps_the_previous_checkpoint(tmp_path):
    """kill -9 in the middle of a checkpoint write, deterministically: a checkpoint after every
    update; when the atomic writer's temporary file is there, the trainer is stopped (SIGSTOP),
    and if the file is still there (the write not yet renamed) it is killed with SIGKILL. The
    checkpoint on disk is then the previous one, whole, and --resume continues from it."""
    out = tmp_path / "run"
    proc = _start(out, "--niter=500", "--checkpoint_every=1e-9")
    _wait_for(proc, "UNCOND_DCGAN")  # compiled (which may wait for another process's compile lock)
    folder = out / "models/uncond_dcgan"
    ckpt = folder / "latest_checkpoint.npz"
    pattern = f"latest_checkpoint.npz.{proc.pid}.*.tmp"
    deadline = time.time() + 120
    try:
        while True:
            assert time.time() < deadline and proc.poll() is None, "no checkpoint write caught"
            if ckpt.exists() and list(folder.glob(pattern)):
                os.kill(proc.pid, signal.SIGSTOP)
                if list(folder.glob(pattern)):   # still mid-write: the rename has not happened
                    break
                os.kill(proc.pid, signal.SIGCONT)
            time.sleep(0.0005)
        before = ckpt.read_bytes()
        proc.kill()
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert len(list(folder.glob(pattern))) == 1    # the interrupted write's, left behind
    assert ckpt.read_bytes() == before
    from lib.train import read_checkpoint
    meta, _ = read_checkpoint(ckpt)                # whole and readable
    done = meta["counters"]["n_updates"]
    result = _train(out, "--resume", "--niter=500", "--max_updates=2", "--checkpoint_every=1e-9")
    assert result["stopped"] and result["n_updates"] == done + 2


def _file_size_limit(n_bytes):
    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (n_bytes, n_bytes))
    return limit


def test_write_error_keeps_the_last_checkpoint(tmp_path):
    """A disk that cannot take the next checkpoint (a file-size limit: the write fails as on a
    full disk): one line naming the file, exit 2, the previous checkpoint intact."""
    out = tmp_path / "run"
    first = _train(out, "--max_updates=1")
    assert first["stopped"]
    ckpt = out / "models/uncond_dcgan/latest_checkpoint.npz"
    before = ckpt.read_bytes()
    proc = _start(out, "--resume", preexec_fn=_file_size_limit(len(before) // 2))
    code, stdout, err = _finish(proc)
    assert code == 2, (code, err)
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: ") and "latest_checkpoint.npz" in last, err
    assert "Traceback" not in err
    assert ckpt.read_bytes() == before
    assert not list(ckpt.parent.glob("*.tmp"))


def _small_disk_available(folder):
    """Whether this machine lets an unprivileged user mount a small tmpfs in a mount namespace."""
    if not shutil.which("unshare"):
        return False
    folder.mkdir(exist_ok=True)
    done = subprocess.run(["unshare", "-rm", "sh", "-c", 'mount -t tmpfs -o size=64k tmpfs "$0"',
                           str(folder)], capture_output=True, timeout=60)
    return done.returncode == 0


def test_full_disk_keeps_the_last_checkpoint(full_run, tmp_path):
    """A disk that fills during a checkpoint write: the run is copied onto a tmpfs (in a mount
    namespace of its own) with room for a third epoch's samples and parameter files but not for
    a second checkpoint beside the first, and resumed there for that epoch: one line naming the
    checkpoint and ENOSPC, exit 2, no temporary file left, the previous checkpoint intact."""
    if not _small_disk_available(tmp_path / "probe"):
        pytest.skip("no unprivileged tmpfs mounts here (unshare -rm); see the file-size-limit test")
    run, ckpt = full_run, "models/uncond_dcgan/latest_checkpoint.npz"
    pages = sum(-(-p.stat().st_size // 4096) for p in run.rglob("*") if p.is_file())
    disk, back = tmp_path / "disk", tmp_path / "back"
    disk.mkdir()
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    # mount, copy the run in, resume it there, copy what is left back out (the tmpfs goes with
    # the namespace)
    script = ('size=$1 disk=$2 run=$3 back=$4; shift 4; '
              'mount -t tmpfs -o size="$size" tmpfs "$disk" && cp -a "$run"/. "$disk"/ && "$@"; '
              'code=$?; cp -a "$disk"/. "$back"/; exit $code')
    spare = (run / ckpt).stat().st_size // 2  # room for the epoch's samples and params files
    cmd = ["unshare", "-rm", "sh", "-c", script, "sh", str(pages * 4096 + spare), str(disk),
           str(run), str(back), sys.executable, str(ROOT / "faces/train_uncond_dcgan.py"),
           *SMALL, f"--out_dir={disk}", "--resume", "--niter=3"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    err = done.stderr.replace("\r", "\n").strip().splitlines()
    assert done.returncode == 2, (done.returncode, err[-5:])
    assert err[-1] == f"error: {disk / ckpt}: No space left on device", err[-5:]
    assert not any("Traceback" in line for line in err)
    assert (back / ckpt).read_bytes() == (run / ckpt).read_bytes()
    assert not list(back.rglob("*.tmp"))


# --------------------------------------------------------------------------------------------
# Smaller things
# --------------------------------------------------------------------------------------------

def test_outputs_get_the_users_permissions(tmp_path):
    from lib.params import save_params
    from lib.vis import imsave
    old = os.umask(0o022)
    try:
        save_params([np.zeros(3, np.float32)], tmp_path / "p.npz")
        imsave(tmp_path / "g.png", np.zeros((4, 4)))
    finally:
        os.umask(old)
    for name in ("p.npz", "g.png"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o644


def test_help_shows_the_first_paragraph(capsys):
    import mnist.train_cond_dcgan as mnist_train
    with pytest.raises(SystemExit) as exc:
        mnist_train.main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1].startswith("Train the paper's class-conditional DCGAN")
    assert out[2] == "mnist/train_cond_dcgan.py on PyTensor."


def test_c_backend_does_not_warn_about_blas():
    """PyTensor's five-line warning that no BLAS was found is not true of this project."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    done = subprocess.run([sys.executable, "-c", "from lib import backend; backend.get_mode('c')"],
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "BLAS" not in done.stderr


def test_jax_graphs_request_no_float64():
    """Float32 sums and products on JAX without 64-bit types: no float64 request (the warning
    "Explicitly requested dtype float64 ... will be truncated"), the same values. Then the whole
    faces model (a training step of G and of D, the generator, at tiny widths): no 64-bit request
    of any kind, e.g. the int64 shape vectors (MakeVector) cast to float32 for a mean's count."""
    pytest.importorskip("jax")
    import warnings
    import pytensor
    import pytensor.tensor as T
    from lib import rng
    from lib.backend import get_mode
    x = T.matrix()
    f = pytensor.function([x], [T.mean(x), T.sum(x, axis=0), T.prod(x)], mode=get_mode("jax"))
    a = np.random.RandomState(0).rand(5, 4).astype("float32")
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="Explicitly requested dtype")
        mean, total, prod = f(a)
    np.testing.assert_allclose(mean, a.mean(), rtol=1e-6)
    np.testing.assert_allclose(total, a.sum(0), rtol=1e-6)
    np.testing.assert_allclose(prod, a.prod(), rtol=1e-5)

    saved = {k: getattr(faces_train, k) for k in ("ngf", "ndf")}
    try:
        faces_train.ngf = faces_train.ndf = 4
        rng.set_seed(0)
        _train_g, _train_d, _gen, *_ = faces_train.build(*faces_train.init_params(),
                                                         get_mode("jax"))
    finally:
        for k, v in saved.items():
            setattr(faces_train, k, v)
    r = np.random.RandomState(0)
    X = r.uniform(-1, 1, (4, 3, 64, 64)).astype("float32")
    Z = r.uniform(-1, 1, (4, faces_train.nz)).astype("float32")
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="Explicitly requested dtype")
        costs = [_train_g(X, Z), _train_d(X, Z)]
        samples = np.asarray(_gen(Z))
    assert all(np.isfinite(c).all() for c in costs) and samples.shape == (4, 3, 64, 64)
