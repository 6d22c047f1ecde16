"""Parametrization of graph tests over every backend of lib.backend (python, c, numba, jax, pytorch).

A backend whose package is missing is skipped locally and fails under CI (``CI`` set).
Compiled functions are cached per backend (``compiled``), so one compilation serves all the keys
a test module checks.
"""
import os

import pytest

from lib import backend


def backend_params():
    """pytest params, one per backend name, id = the name."""
    out = []
    for name in backend.ALL:
        marks = []
        if not backend.available(name) and not os.environ.get("CI"):
            marks.append(pytest.mark.skip(reason=f"{name}: package not installed"))
        out.append(pytest.param(name, id=name, marks=marks))
    return out


def get_mode(name):
    """lib.backend.get_mode(name); a missing package fails here under CI (no silent skip)."""
    if not backend.available(name):
        pytest.fail(f"backend {name}: package not installed (CI is set)")
    return backend.get_mode(name)


def build_cache(build):
    """A memo of ``build(backend_name)``: each backend's function(s) are compiled once per session."""
    cache = {}

    def compiled(name):
        if name not in cache:
            cache[name] = build(name)
        return cache[name]

    return compiled


def float64_variables(fn):
    """The float64 variables of compiled function ``fn``'s graph (there should be none)."""
    return [v for v in fn.maker.fgraph.variables if getattr(v.type, "dtype", None) == "float64"]
