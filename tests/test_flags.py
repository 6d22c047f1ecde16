"""lib/flags.py: --name=value overrides of a script's hyperparameter block, and --help."""
import subprocess
import sys
from pathlib import Path

import pytest

from lib import flags

ROOT = Path(__file__).resolve().parents[1]


def _namespace():
    return {"nbatch": 128, "lr": 0.0002, "data": "", "resume": False, "__doc__": "A script.\n"}


def test_overrides_are_coerced_to_the_defaults_types():
    ns = _namespace()
    config = flags.configure(ns, ["nbatch", "lr", "data", "resume"],
                             ["--nbatch=64", "--lr=1e-3", "--data=x.hdf5", "--resume"])
    assert config == {"nbatch": 64, "lr": 1e-3, "data": "x.hdf5", "resume": True}
    assert ns["nbatch"] == 64 and isinstance(ns["nbatch"], int)


@pytest.mark.parametrize("argv, message", [
    (["--nbach=64"], "--nbach: unknown flag (known: nbatch, lr, data, resume)"),
    (["--nbatch=6.5"], "--nbatch=6.5: expected int (default 128)"),
    (["--resume=maybe"], "--resume=maybe: expected a boolean (true/false)"),
    (["--nbatch"], "--nbatch: expected --nbatch=<int>"),
    (["nbatch=64"], "nbatch=64: expected --name=value"),
])
def test_bad_flags_are_one_line_errors(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        flags.configure(_namespace(), ["nbatch", "lr", "data", "resume"], argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: {message}")


def test_a_hyperparameter_block_declares_its_flags():
    """``declared``: the simple values so far, in order, less private, upper-case (constants) and
    derived names."""
    import pathlib
    ns = {"__doc__": "A script.", "HERE": pathlib.Path("."), "WHERE": "see README", "transform": len, "k": 1,
          "l2": 1e-5, "npx": 64, "nx": 64 * 64 * 3, "data": "", "resume": False, "_x": 3}
    names = flags.declared(ns, derived=["nx"])
    assert names == ["k", "l2", "npx", "data", "resume"]
    flags.configure(ns, names, ["--k=2"])
    assert (ns["k"], ns["l2"]) == (2, 1e-5)
    flags.configure(ns, names, ["--l2=0"])  # a second call starts from the block's values
    assert (ns["k"], ns["l2"]) == (1, 0.)


@pytest.mark.parametrize("module", ["faces.train_uncond_dcgan", "lsun.train_uncond_dcgan",
                                    "svhn.train_uncond_dcgan", "imagenet.train_uncond_dcgan",
                                    "mnist.train_cond_dcgan"])
def test_every_train_script_flag_is_in_its_block(module):
    """A train script's flags are its hyperparameter block: each has a ``# ...`` comment on its
    line (what --help shows), and nothing after the block (desc, save_epochs) is one."""
    import importlib
    m = importlib.import_module(module)
    source = Path(m.__file__).read_text()
    block = source[:source.index("FLAGS = ")]
    for name in m.FLAGS:
        assert any(line.startswith(f"{name} ") and "#" in line for line in block.splitlines()), name
    assert "desc" not in m.FLAGS and "nx" not in m.FLAGS and "seed" in m.FLAGS


# The commands' flags as their hand-written lists had them, now found by flags.declared
COMMAND_FLAGS = {
    "imagenet.load_pretrained": "nz ngf ndf model_dir epoch nvis out seed backend",
    "imagenet.cifar10_svm": "ndf nbatch cs ntrain nval ntest max_iter data_dir model_dir epoch out "
                            "seed backend",
    "svhn.svhn_semisup_analysis": "data_dir model_dir epoch n_val_draws n_test_draws n_per_class "
                                  "nval seed backend out",
    "svhn.sample_pretrained": "model_dir epoch n seed out backend",
    "lsun.dfeatures": "model data n_pool n_features top_k n_measure seed nbatch out_dir backend",
    "lsun.dedup": "npx nh p_in p_code threshold nbatch niter lr ntrain data out cache measure "
                  "n_distinct n_copies out_dir seed backend",
    "lsun.boxes": "model out n seed nbatch scale boxes index add label overwrite backend",
    "lsun.forget": "boxes model layer C n_random n_show seed out_dir backend",
    "lsun.convert": "data out npx drop limit nbatch workers overwrite progress",
    "faces.dfeatures": "model epoch n_pool n_features top_k n_measure seed nbatch out_dir backend",
    "faces.turn": "model epoch n_pool yaw_threshold n_walks steps scale rows seed bn n_population "
                  "nbatch out_dir backend",
    "faces.synthetic": "n seed size out workers grid grid_only",
    "faces.arithmetic": "model epoch equations n_pool confident k n_draws n_neighbours radius show "
                        "seed bn n_population nbatch out_dir backend",
    "faces.attrnet": "nf nfeat ntrain nval nbatch niter niter_decay lr seed out check backend",
    "faces.walk": "model epoch n_walks steps rows sharp_factor n_mem n_ref n_show data seed bn "
                  "n_population nbatch out_dir backend",
    "faces.evaluate": "model epochs n_eval data nbatch seed out grid backend",
    "faces.forget": "model epoch layer n_detector n_fit n_eval n_random C box_threshold n_show seed "
                    "bn n_population nbatch out_dir backend",
    "faces.convert": "src out size test_fraction workers upscale overwrite",
    "bench.fd_curve": "runs labels out",
    "bench.lsun_loader": "n nbatch batches rounds work json_out seed",
}


@pytest.mark.parametrize("module", sorted(COMMAND_FLAGS))
def test_every_command_declares_its_flags(module):
    """flags.declared finds exactly the command's flags, each with a comment for --help, and a
    second call to configure starts from the declared values."""
    import importlib
    m = importlib.import_module(module)
    assert list(m.FLAGS) == COMMAND_FLAGS[module].split()
    block = Path(m.__file__).read_text()
    block = block[:block.index("FLAGS = ")]
    for name in m.FLAGS:
        assert any(line.startswith(f"{name} ") and "#" in line for line in block.splitlines()), name
    # the declared values are the block's own (a module that an earlier test configured in this
    # process has other globals now; the defaults must not follow them)
    import ast
    written = {}
    for node in ast.parse(block).body:
        if (isinstance(node, ast.Assign) and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name) and node.targets[0].id in m.FLAGS):
            try:
                written[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:  # an expression: not checked here
                pass
    assert written and {n: m.FLAGS.defaults[n] for n in written} == written


def test_help_lists_flags_defaults_and_comments():
    """A real script's --help: its docstring, every flag with its default and the comment of
    its line in the hyperparameter block; exit status 0, nothing trained."""
    out = subprocess.run([sys.executable, str(ROOT / "faces" / "train_uncond_dcgan.py"), "--help"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "usage: python train_uncond_dcgan.py [--name=value ...]"
    assert lines[1].startswith("Train the paper's unconditional DCGAN on faces")
    nbatch = next(line for line in lines if line.strip().startswith("--nbatch="))
    assert nbatch.split() == ["--nbatch=128", "#", "of", "examples", "in", "batch"]
    assert any(line.strip().startswith("--lr=0.0002") for line in lines)


def test_an_interrupt_inside_a_compiled_call_is_still_an_interrupt(capsys):
    """A signal handler's Interrupted raised while Numba's dispatcher returns surfaces as a
    SystemError caused by it: the command still stops with 128 + the signal and one line, and
    other SystemErrors pass through."""
    import signal

    def interrupted_inside_a_call():
        try:
            raise flags.Interrupted(signal.SIGTERM)
        except KeyboardInterrupt as e:
            raise SystemError("CPUDispatcher(...) returned a result with an exception set") from e

    def broken():
        raise SystemError("something else")

    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:  # flags.command leaves the signals ignored on its way out
        with pytest.raises(SystemExit) as e:
            flags.command(interrupted_inside_a_call)
        assert e.value.code == 143
        assert capsys.readouterr().err.strip() == "stopped (SIGTERM)"
        with pytest.raises(SystemError, match="something else"):
            flags.command(broken)
    finally:
        for s, h in handlers.items():
            signal.signal(s, h)
    assert flags.interruption(ValueError()) is None
