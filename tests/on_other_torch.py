"""Run the PyTorch backend's tests on another torch release than the pinned one.

    python tests/on_other_torch.py                       # the newest torch pip installs here
    python tests/on_other_torch.py --torch=2.14.1 --venv=/tmp/torch-2.14.1

A virtual environment (``--venv``, made once and reused) gets requirements.txt with torch
replaced by ``--torch``; then every test whose id names the pytorch backend runs there, against
this checkout, with PyTensor's and Inductor's caches of its own. The exit code is pytest's.
tests/test_torch_versions.py runs this as a slow test.
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def requirements_without_torch():
    """requirements.txt's pins, less torch's and the editable install of this project."""
    keep = []
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line and not re.match(r"torch\b", line) and not line.startswith("-e"):
            keep.append(line)
    return keep


def newest_torch(python):
    """The newest torch release ``python``'s pip would install here."""
    out = subprocess.run([python, "-m", "pip", "install", "--dry-run", "--no-deps",
                          "--ignore-installed", "--report", "-", "--quiet", "torch"],
                         capture_output=True, text=True, check=True).stdout
    return re.search(r'"name":\s*"torch",\s*"version":\s*"([^"]+)"', out).group(1)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--torch", default="newest", help="a torch version, or 'newest'")
    p.add_argument("--venv", default=None,
                   help="the virtual environment to make or reuse (default: one per version "
                        "in the temporary folder)")
    p.add_argument("pytest_args", nargs="*", help="more pytest arguments")
    args = p.parse_args(argv)
    version = newest_torch(sys.executable) if args.torch == "newest" else args.torch
    if not re.fullmatch(r"[0-9][0-9a-z.+]*", version):
        p.error(f"--torch={args.torch}: expected a version such as 2.14.1, or newest")
    where = Path(args.venv or Path(tempfile.gettempdir()) / f"dcgan-torch-{version}")
    python = where / "bin" / "python"
    if not python.exists():
        print(f"making {where} with torch {version} ...", flush=True)
        venv.create(where, with_pip=True)
        subprocess.run([python, "-m", "pip", "install", "--quiet", f"torch=={version}",
                        *requirements_without_torch()], check=True)
    found = subprocess.run([python, "-c", "import torch; print(torch.__version__)"],
                           capture_output=True, text=True, check=True).stdout.strip()
    print(f"torch {found} in {where}", flush=True)
    caches = where / "caches"
    env_flags = f"base_compiledir={caches / 'pytensor'}"
    cmd = [python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k", "pytorch",
           *args.pytest_args]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTENSOR_FLAGS": env_flags,
           "TORCHINDUCTOR_CACHE_DIR": str(caches / "inductor")}
    return subprocess.run(cmd, cwd=ROOT, env=env).returncode


if __name__ == "__main__":
    sys.exit(main())
