"""Access to ../shared/golden (outputs of the ORIGINAL code's math under Theano) and its tolerances.

The golden directory is ``$DCGAN_GOLDEN_DIR`` or ``<repo>/../shared/golden``. When it is missing
the golden tests skip locally, but fail under CI (``CI`` set): in CI they must run.
"""
import json
import math
import os
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("DCGAN_SHARED_DIR", REPO.parent / "shared"))
GOLDEN_DIR = Path(os.environ.get("DCGAN_GOLDEN_DIR", SHARED / "golden"))
MODELS_DIR = Path(os.environ.get("DCGAN_SHARED_MODELS", SHARED / "models"))


def require(path):
    """Return ``path`` if it exists; skip (locally) or fail (CI) if it does not."""
    path = Path(path)
    if not path.exists():
        msg = f"shared test data missing: {path} (set DCGAN_GOLDEN_DIR / DCGAN_SHARED_MODELS)"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    return path


@lru_cache(maxsize=None)
def load(name):
    """The golden file ``name`` (e.g. 'ops') as a dict of arrays plus its parsed ``meta``."""
    with np.load(require(GOLDEN_DIR / f"{name}.npz")) as f:
        data = {k: f[k] for k in f.files if k != "meta"}
        meta = json.loads(str(f["meta"]))
    return data, meta


def tolerance(name, key):
    """The golden README's suggested tolerance for ``key`` of file ``name``."""
    _, meta = load(name)
    return meta["suggested_tolerances"][key]


def assert_close(name, key, actual):
    """Assert ``actual`` matches golden ``key`` within the file's suggested tolerance.

    Elementwise ``|port - golden| <= atol + rtol*|golden|``; for the post-Adam parameters a
    fraction ``max_outlier_fraction`` of entries (ceil) may instead be off by ``outlier_atol``:
    on the first Adam step entries whose gradient is ~1e-8 (comparable to Adam's eps) move by an
    implementation-sensitive amount (golden README, point 8).
    """
    data, _ = load(name)
    expected = data[key]
    tol = tolerance(name, key)
    actual = np.asarray(actual)
    assert actual.shape == expected.shape, f"{key}: shape {actual.shape} != golden {expected.shape}"
    err = np.abs(actual.astype(np.float64) - expected.astype(np.float64))
    bound = tol["atol"] + tol["rtol"] * np.abs(expected.astype(np.float64))
    bad = err > bound
    allowed = math.ceil(tol["max_outlier_fraction"] * expected.size)
    if allowed:
        outliers = bad & (err <= tol["outlier_atol"])
        hard = bad & ~outliers
        assert not hard.any() and outliers.sum() <= allowed, (
            f"{key}: {hard.sum()} entries beyond {tol['outlier_atol']}, {outliers.sum()} outliers "
            f"(allowed {allowed}); max err {err.max():.3g}")
    else:
        assert not bad.any(), (
            f"{key}: {bad.sum()}/{bad.size} entries out of tolerance (rtol {tol['rtol']}, "
            f"atol {tol['atol']}); max abs err {err.max():.3g}")
