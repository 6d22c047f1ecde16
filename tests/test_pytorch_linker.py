"""lib/dispatch/pytorch_linker.py: graphs exported by torch.export, compiled by AOTInductor, and
the packages kept for the next process."""
import json
import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytensor
import pytensor.tensor as T
import pytest
from pytensor.raise_op import Assert

from backend_params import backend_params, get_mode

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.parametrize(
    "backend_name", [p for p in backend_params() if p.id == "pytorch"])


@pytest.fixture
def no_dynamo(monkeypatch):
    """torch.compile's functions raise when called: what runs is the exported, compiled graph."""
    import torch

    def refuse(fn, *args, **kwargs):
        def call(*a, **k):
            raise AssertionError("torch.compile's function was called")
        return call

    monkeypatch.setattr(torch, "compile", refuse)


@pytest.fixture
def graph_cache_in_tmp_path(tmp_path, monkeypatch):
    """The graph cache on, in ``tmp_path``, storing every graph however fast its rewrite."""
    from lib import graph_cache

    monkeypatch.setattr(graph_cache, "cache_dir", lambda: tmp_path)
    monkeypatch.setattr(graph_cache, "MIN_REWRITE_S", 0.0)
    monkeypatch.delenv("DCGAN_GRAPH_CACHE", raising=False)


def _compiled_graph(fn):
    """The CompiledGraph behind compiled PyTensor function ``fn`` (its JIT linker's thunk)."""
    from lib.dispatch.pytorch_linker import CompiledGraph

    assert isinstance(fn.vm.jit_fn, CompiledGraph)
    return fn.vm.jit_fn


def test_conv_batchnorm_adam_step_matches_python(backend_name, no_dynamo):
    """A deconv -> batchnorm -> relu -> conv -> sigmoid -> BCE step with Adam, against the NumPy
    reference backend: costs and every updated parameter (float32 summation order differs)."""
    from lib import updates
    from lib.costs import bce
    from lib.ops import batchnorm, deconv, dnn_conv
    from lib.theano_utils import sharedX

    r = np.random.RandomState(0)
    values = [r.normal(0, 0.2, (8, 4, 3, 3)), np.ones(4) * 1.1, np.zeros(4) + 0.1,
              r.normal(0, 0.2, (1, 4, 3, 3))]

    def compile_step(mode):
        w1, g, b, w2 = (sharedX(v) for v in values)
        Z = T.tensor4()
        h = T.maximum(batchnorm(deconv(Z, w1, subsample=(2, 2), border_mode=(1, 1)), g=g, b=b),
                      0.)
        p = T.sigmoid(dnn_conv(h, w2, subsample=(2, 2), border_mode=(1, 1)).flatten(2).mean(1))
        cost = bce(p, T.ones(p.shape)).mean()
        params = [w1, g, b, w2]
        step = pytensor.function([Z], cost, updates=updates.Adam(lr=0.01)(params, cost),
                                 mode=mode)
        return step, params

    Zv = r.uniform(-1, 1, (6, 8, 4, 4)).astype(np.float32)
    step, params = compile_step(get_mode(backend_name))
    ref_step, ref_params = compile_step(get_mode("python"))
    for _ in range(2):
        np.testing.assert_allclose(step(Zv), ref_step(Zv), rtol=1e-5)
    for p, q in zip(params, ref_params):
        np.testing.assert_allclose(p.get_value(), q.get_value(), rtol=1e-5, atol=1e-7)


def test_new_shapes_compile_again(backend_name, no_dynamo):
    """One compiled graph per input signature; each gives the right numbers."""
    x = T.matrix("x")
    fn = pytensor.function([x], [(x * x).sum(1), x.shape[0] * x.shape[1]],
                           mode=get_mode(backend_name))
    for shape in [(3, 4), (5, 2), (3, 4)]:
        a = np.arange(np.prod(shape), dtype=np.float32).reshape(shape)
        total, size = fn(a)
        np.testing.assert_array_equal(total, (a * a).sum(1))
        assert size == a.size
    jit = _compiled_graph(fn)
    assert len(jit.compiled) == 2 and jit.eager_reason is None
    assert all(type(p).__name__ == "AOTICompiledModel" for p in jit.compiled.values())


def test_makevector_of_shapes_compiles(backend_name, no_dynamo):
    """A vector built from shape values and constants (PyTensor's own MakeVector kernel reads
    them on the host, which fake tensors cannot; stacked, Inductor cannot lower a view of a
    constant of the exported program): here through lib/dispatch/pytorch_fixes.py's kernel."""
    x = T.tensor3("x")
    v = T.stack([x.shape[0], x.shape[2] * 2, T.constant(7, dtype="int64")])
    fn = pytensor.function([x], v, mode=get_mode(backend_name))
    np.testing.assert_array_equal(fn(np.zeros((2, 3, 5), np.float32)), [2, 10, 7])
    assert _compiled_graph(fn).eager_reason is None


def test_constants_are_part_of_the_compiled_graph(backend_name, no_dynamo):
    """Two graphs that differ only in a constant's values give their own results (Inductor's
    caches are keyed on the constants too)."""
    x = T.vector("x")
    outs = []
    for c in ([1., 2., 3.], [4., 5., 6.]):
        fn = pytensor.function([x], x * T.constant(np.array(c, np.float32)),
                               mode=get_mode(backend_name))
        outs.append(fn(np.ones(3, np.float32)))
    np.testing.assert_array_equal(outs, [[1, 2, 3], [4, 5, 6]])


def test_host_value_graph_runs_eagerly(backend_name, no_dynamo):
    """An Assert on a tensor's value cannot be exported on fake tensors: the graph runs eagerly,
    with a warning, and the assertion still holds."""
    x = T.vector("x")
    fn = pytensor.function([x], Assert("x must be positive")(x * 2, T.all(x > 0)),
                           mode=get_mode(backend_name))
    with pytest.warns(UserWarning, match="reads tensor values in Python"):
        np.testing.assert_array_equal(fn(np.ones(3, np.float32)), [2, 2, 2])
    with pytest.raises(AssertionError, match="x must be positive"):
        fn(-np.ones(3, np.float32))
    assert _compiled_graph(fn).eager_reason


def test_shape_errors_are_raised_not_swallowed(backend_name, no_dynamo):
    """An error of the graph itself (sizes that do not broadcast) is raised as it is, and the
    graph is not taken for one that must run eagerly."""
    x, y = T.vectors("x", "y")
    fn = pytensor.function([x, y], x + y, mode=get_mode(backend_name))
    with pytest.raises((RuntimeError, ValueError), match="size of tensor|broadcast"):
        fn(np.ones(3, np.float32), np.ones(4, np.float32))
    assert _compiled_graph(fn).eager_reason is None


def _warm_process_script():
    return textwrap.dedent(f"""
        import json, sys
        sys.path.insert(0, {str(ROOT)!r})
        import numpy as np, pytensor, pytensor.tensor as T
        import torch
        from lib.backend import get_mode
        exports = []
        export = torch.export.export
        torch.export.export = lambda *a, **k: exports.append(1) or export(*a, **k)
        x = T.matrix("x")
        fn = pytensor.function([x], [T.tanh(x @ x.T).sum(0), x.sum() * np.float32(3)],
                               mode=get_mode("pytorch"))
        a = np.arange(12, dtype=np.float32).reshape(3, 4) / 10
        out = fn(a)
        assert np.allclose(out[0], np.tanh(a @ a.T).sum(0), rtol=1e-5), out
        assert np.allclose(out[1], a.sum() * 3, rtol=1e-6), out
        (package,) = fn.vm.jit_fn.compiled.values()
        print(json.dumps(dict(exports=len(exports), package=type(package).__name__,
                              out=[o.tolist() for o in out])))
    """)


def test_a_warm_process_loads_the_package_without_exporting(backend_name, tmp_path):
    """A second process with the same caches loads the package the first stored (``*.pt2`` in
    the graph cache) and calls it: no export, no compile, the same numbers. With the package
    gone, it exports and compiles again; with a corrupt package, it says so in one warning and
    compiles again."""
    env = dict(os.environ, TORCHINDUCTOR_CACHE_DIR=str(tmp_path / "inductor"),
               PYTENSOR_FLAGS=f"base_compiledir={tmp_path / 'pytensor'}", DCGAN_GRAPH_CACHE="1")

    def run():
        proc = subprocess.run([sys.executable, "-c", _warm_process_script()], env=env,
                              check=True, capture_output=True, text=True)
        return json.loads(proc.stdout.splitlines()[-1]), proc.stderr

    def stored():
        return list((tmp_path / "pytensor").rglob("dcgan_graphs/*.pt2"))

    cold, _ = run()
    assert (cold["exports"], cold["package"]) == (1, "AOTICompiledModel")
    assert len(stored()) == 1

    warm, _ = run()
    assert warm == dict(cold, exports=0)

    stored()[0].write_bytes(b"not a package")
    again, err = run()
    assert again == cold
    assert "cannot be loaded" in err and "compiling the graph again" in err
    assert len(stored()) == 1 and stored()[0].stat().st_size > 1000


def test_compile_options(backend_name):
    """Inductor's channels-last layout optimisation is off for a graph that computes a conv's
    weight gradient (the training updates: faster without it) and on for a forward-only graph
    (sampling: faster with it); the other options are the linker's for both."""
    import torch
    import torch.nn.functional as F

    from lib.dispatch import pytorch_linker as L

    x, w = torch.randn(2, 3, 8, 8), torch.randn(4, 3, 3, 3)

    def forward(x, w):
        return (F.conv2d(x, w, padding=1),)

    def weight_gradient(x, w):
        y = F.conv2d(x, w, padding=1)
        return (torch.ops.aten.convolution_backward(
            y, x, w, None, [1, 1], [1, 1], [1, 1], False, [0, 0], 1, [False, True, False])[1],)

    assert L.options_for(L.export(forward, [x, w])) == L.OPTIONS
    assert L.options_for(L.export(weight_gradient, [x, w])) == dict(
        L.OPTIONS, layout_optimization=False)


def test_a_graph_without_a_cache_key_is_compiled_into_a_scratch_folder(backend_name, tmp_path,
                                                                      monkeypatch, no_dynamo):
    """With the graph cache off there is no digest to name a package by: it is compiled into a
    temporary folder of the function's own, and nothing is stored in the graph cache (a folder
    of this test's own: other test processes write to the shared one meanwhile)."""
    from lib import graph_cache

    monkeypatch.setenv("DCGAN_GRAPH_CACHE", "0")
    monkeypatch.setattr(graph_cache, "cache_dir", lambda: tmp_path / "graphs")
    x = T.vector("x")
    fn = pytensor.function([x], T.exp(x) - 1, mode=get_mode(backend_name))
    np.testing.assert_allclose(fn(np.arange(3, dtype=np.float32)), np.expm1(np.arange(3)),
                               rtol=1e-6)
    jit = _compiled_graph(fn)
    assert jit.digest is None and len(jit.compiled) == 1
    assert not list(tmp_path.rglob("*.pt2"))


def test_no_private_torch_name_but_the_documented_aoti_functions(backend_name):
    """The linker and the kernels name no underscore-private part of torch except AOTInductor's
    two documented entry points
    (https://docs.pytorch.org/docs/stable/torch.compiler_aot_inductor.html)."""
    import ast

    allowed = {"torch._inductor.aoti_compile_and_package", "torch._inductor.aoti_load_package"}

    def private(dotted):
        return any(part.startswith("_") and not part.endswith("__")
                   for part in dotted.split("."))

    def dotted(node):
        parts = []
        while isinstance(node, ast.Attribute):
            parts.append(node.attr)
            node = node.value
        return ".".join([node.id, *reversed(parts)]) if isinstance(node, ast.Name) else ""

    for name in ("pytorch_linker.py", "pytorch.py", "pytorch_fixes.py"):
        tree = ast.parse((ROOT / "lib" / "dispatch" / name).read_text())
        names = []
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("torch"):
                names += [f"{node.module}.{alias.name}" for alias in node.names]
            elif isinstance(node, ast.Import):
                names += [alias.name for alias in node.names if alias.name.startswith("torch")]
            elif isinstance(node, ast.Attribute) and dotted(node).startswith("torch."):
                names.append(dotted(node))
        bad = sorted({n for n in names if private(n) and n not in allowed})
        assert not bad, f"{name}: {bad}"
