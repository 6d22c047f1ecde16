"""lib/backend.py: backend names, the default per task, and the first-line description."""
import os
import subprocess
import sys

import pytest

from lib import backend


@pytest.fixture
def no_gpu(monkeypatch):
    """The CPU defaults, also on a machine where JAX finds a GPU."""
    monkeypatch.setenv("JAX_PLATFORMS", "cpu")


def test_default_for_training_is_pytorch_when_installed(monkeypatch, no_gpu):
    assert backend.resolve_backend("", task="train") == ("pytorch" if backend.available("pytorch")
                                                         else "c")
    monkeypatch.setattr(backend, "available", lambda name: name != "pytorch")
    assert backend.resolve_backend("", task="train") == "c"


def test_default_for_everything_else_is_c(no_gpu):
    assert backend.resolve_backend("") == "c"
    assert backend.resolve_backend("", task="other") == "c"


def test_explicit_name_wins_and_is_case_insensitive():
    assert backend.resolve_backend("NUMBA", task="train") == "numba"
    assert backend.resolve_backend("python") == "python"


def test_unknown_backend_is_a_one_line_error(capsys):
    with pytest.raises(SystemExit) as exc:
        backend.resolve_backend("tpu")
    assert exc.value.code == 2
    assert capsys.readouterr().err.startswith("error: --backend=tpu: expected one of python, c, numba")
    with pytest.raises(ValueError, match=r"--backend='tpu'"):
        backend.get_mode("tpu")


@pytest.mark.parametrize("name", ["c", "python"])
def test_describe_mode_names_backend_and_versions(name):
    line = backend.describe_mode(name)
    assert line.startswith(f"{name} (PyTensor 3.")


def _fake_gpu_plugin(monkeypatch, tmp_path, platform):
    """A ``jax_plugins`` namespace package on sys.path (as a CUDA build of jaxlib installs one)
    and JAX reporting ``platform`` as its default backend."""
    import jax

    (tmp_path / "jax_plugins").mkdir()
    (tmp_path / "jax_plugins" / "fake_cuda.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(jax, "default_backend", lambda: platform)


@pytest.mark.parametrize("task", ["train", "other"])
def test_default_is_jax_where_jax_finds_a_gpu(monkeypatch, tmp_path, task):
    _require_jax()
    monkeypatch.delenv("JAX_PLATFORMS", raising=False)
    _fake_gpu_plugin(monkeypatch, tmp_path, "gpu")
    assert backend.jax_gpu()
    assert backend.resolve_backend("", task=task) == "jax"
    assert backend.resolve_backend("c", task=task) == "c"  # a flag still wins


def test_no_gpu_default_with_a_plugin_but_a_cpu_device_or_jax_platforms_cpu(monkeypatch, tmp_path):
    _require_jax()
    monkeypatch.delenv("JAX_PLATFORMS", raising=False)
    _fake_gpu_plugin(monkeypatch, tmp_path, "cpu")  # the plugin found no GPU
    assert not backend.jax_gpu()
    assert backend.resolve_backend("", task="other") == "c"
    import jax

    monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
    monkeypatch.setenv("JAX_PLATFORMS", "cpu")
    assert not backend.jax_gpu()


def test_cpu_only_install_decides_without_importing_jax():
    """No GPU plugin installed (this machine): the default is found without importing JAX."""
    _require_jax()
    code = ("import sys; from lib import backend; "
            "print(backend.resolve_backend('', task='train'), 'jax' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={k: v for k, v in os.environ.items() if k != "JAX_PLATFORMS"})
    expected = "pytorch" if backend.available("pytorch") else "c"
    assert out.stdout.split() == [expected, "False"]


def _require_jax():
    if not backend.available("jax"):
        if os.environ.get("CI"):
            pytest.fail("jax: package not installed (CI is set)")
        pytest.skip("jax: package not installed")
