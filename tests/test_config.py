"""lib/config.py: the data folder comes from an argument, then $DCGAN_DATA_DIR, then <repo>/data."""
from pathlib import Path

from lib import config

REPO = Path(__file__).resolve().parents[1]


def test_default_is_the_repo_data_folder(monkeypatch):
    monkeypatch.delenv("DCGAN_DATA_DIR", raising=False)
    assert config.data_dir() == REPO / "data"


def test_environment_variable(monkeypatch, tmp_path):
    monkeypatch.setenv("DCGAN_DATA_DIR", str(tmp_path))
    assert config.data_dir() == tmp_path


def test_explicit_path_wins(monkeypatch, tmp_path):
    monkeypatch.setenv("DCGAN_DATA_DIR", "/elsewhere")
    assert config.data_dir(tmp_path / "faces") == tmp_path / "faces"


def test_never_a_home_path(monkeypatch):
    monkeypatch.delenv("DCGAN_DATA_DIR", raising=False)
    assert "indico" not in str(config.data_dir())
