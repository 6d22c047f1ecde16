"""lib/backend.py: backend names, the default per task, and the first-line description."""
import pytest

from lib import backend


def test_default_for_training_is_pytorch_when_installed(monkeypatch):
    assert backend.resolve_backend("", task="train") == ("pytorch" if backend.available("pytorch")
                                                         else "c")
    monkeypatch.setattr(backend, "available", lambda name: name != "pytorch")
    assert backend.resolve_backend("", task="train") == "c"


def test_default_for_everything_else_is_c():
    assert backend.resolve_backend("") == "c"
    assert backend.resolve_backend("", task="other") == "c"


def test_explicit_name_wins_and_is_case_insensitive():
    assert backend.resolve_backend("NUMBA", task="train") == "numba"
    assert backend.resolve_backend("python") == "python"


def test_unknown_backend_is_a_one_line_error():
    with pytest.raises(SystemExit, match=r"--backend=tpu: expected one of python, c, numba"):
        backend.resolve_backend("tpu")
    with pytest.raises(ValueError, match=r"--backend='tpu'"):
        backend.get_mode("tpu")


@pytest.mark.parametrize("name", ["c", "python"])
def test_describe_mode_names_backend_and_versions(name):
    line = backend.describe_mode(name)
    assert line.startswith(f"{name} (PyTensor 3.")
