"""The PyTorch backend on the newest torch that pip installs here, besides the pinned one.

Slow: it makes a virtual environment with that torch (a download of a few GB the first time)
and runs every pytorch-backend test there through tests/on_other_torch.py.
"""
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


@pytest.mark.slow
def test_pytorch_backend_tests_pass_on_the_newest_torch():
    sys.path.insert(0, str(HERE))
    import on_other_torch

    newest = on_other_torch.newest_torch(sys.executable)
    proc = subprocess.run([sys.executable, str(HERE / "on_other_torch.py"), f"--torch={newest}"],
                          capture_output=True, text=True)
    assert f"torch {newest}" in proc.stdout
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
