"""lib/dispatch/pytorch_linker.py: graphs traced with make_fx and compiled by Inductor directly."""
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
    """torch.compile's functions raise when called: what runs is the make_fx path."""
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


def _fx_function(fn):
    """The FxFunction behind compiled PyTensor function ``fn`` (its JIT linker's thunk)."""
    from lib.dispatch.pytorch_linker import FxFunction

    assert isinstance(fn.vm.jit_fn, FxFunction)
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
    jit = _fx_function(fn)
    assert len(jit.compiled) == 2 and jit.host_value_reason is None


def test_makevector_of_shapes_traces(backend_name, no_dynamo):
    """A vector built from shape values (PyTensor's own MakeVector kernel reads them on the
    host, which fake tensors cannot)."""
    x = T.tensor3("x")
    v = T.stack([x.shape[0], x.shape[2] * 2, T.constant(7, dtype="int64")])
    fn = pytensor.function([x], v, mode=get_mode(backend_name))
    np.testing.assert_array_equal(fn(np.zeros((2, 3, 5), np.float32)), [2, 10, 7])
    assert _fx_function(fn).host_value_reason is None


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


def test_host_value_graph_falls_back_to_torch_compile(backend_name):
    """An Assert on a tensor's value cannot be traced on fake tensors: torch.compile runs it,
    with a warning, and the assertion still holds."""
    x = T.vector("x")
    fn = pytensor.function([x], Assert("x must be positive")(x * 2, T.all(x > 0)),
                           mode=get_mode(backend_name))
    with pytest.warns(UserWarning, match="reads tensor values in Python"):
        np.testing.assert_array_equal(fn(np.ones(3, np.float32)), [2, 2, 2])
    with pytest.raises(AssertionError, match="x must be positive"):
        fn(-np.ones(3, np.float32))
    assert _fx_function(fn).host_value_reason


def test_shape_errors_are_raised_not_swallowed(backend_name, no_dynamo):
    """An error of the graph itself (sizes that do not broadcast) is raised from the trace."""
    x, y = T.vectors("x", "y")
    fn = pytensor.function([x, y], x + y, mode=get_mode(backend_name))
    with pytest.raises((RuntimeError, ValueError), match="size of tensor|broadcast"):
        fn(np.ones(3, np.float32), np.ones(4, np.float32))
    assert _fx_function(fn).host_value_reason is None


def test_a_warm_process_calls_the_compiled_library_without_inductor(backend_name, tmp_path):
    """A second process with the same caches loads the compiled library that the first stored
    (``*.module``) and calls it: no trace, no Inductor (not even imported), the same numbers.
    Without the stored module, it loads the traced graph instead of tracing and hits
    AOTAutograd's and Inductor's FX graph caches (they are bypassed without the ShapeEnv the
    linker provides, and missed if the loaded graph's code differed from the first's), then
    stores the module again; with the library gone from Inductor's cache, it compiles again."""
    script = textwrap.dedent(f"""
        import json, sys
        sys.path.insert(0, {str(ROOT)!r})
        import numpy as np, pytensor, pytensor.tensor as T
        from lib.backend import get_mode
        import lib.dispatch.pytorch_linker as L
        traces = []
        trace = L.trace
        L.trace = lambda fn, inputs: traces.append(1) or trace(fn, inputs)
        x = T.matrix("x")
        fn = pytensor.function([x], [T.tanh(x @ x.T).sum(0), x.sum() * np.float32(3)],
                               mode=get_mode("pytorch"))
        a = np.arange(12, dtype=np.float32).reshape(3, 4) / 10
        out = fn(a)
        assert np.allclose(out[0], np.tanh(a @ a.T).sum(0), rtol=1e-5), out
        assert np.allclose(out[1], a.sum() * 3, rtol=1e-6), out
        imported = "torch._inductor.compile_fx" in sys.modules
        counters = {{}}
        if imported:
            from torch._dynamo.utils import counters
        (compiled,) = fn.vm.jit_fn.compiled.values()
        L.wait_for_warm_up()
        print(json.dumps(dict({{k: dict(v) for k, v in counters.items()}}, traces=len(traces),
                              imported=imported, direct=isinstance(compiled, L.WrapperModule),
                              out=[o.tolist() for o in out])))
    """)
    env = dict(os.environ, TORCHINDUCTOR_CACHE_DIR=str(tmp_path / "inductor"),
               PYTENSOR_FLAGS=f"base_compiledir={tmp_path / 'pytensor'}")

    def run():
        return json.loads(subprocess.run([sys.executable, "-c", script], env=env, check=True,
                                         capture_output=True, text=True).stdout.splitlines()[-1])

    def stored(suffix):
        return list((tmp_path / "pytensor").rglob(f"dcgan_graphs/*.{suffix}"))

    cold = run()
    assert (cold["traces"], cold["direct"]) == (1, True)
    assert cold["inductor"]["fxgraph_cache_miss"] == 1
    assert len(stored("fx")) == len(stored("module")) == 1

    warm = run()
    assert warm == dict(traces=0, imported=False, direct=True, out=cold["out"])

    stored("module")[0].unlink()
    again = run()
    assert (again["traces"], again["direct"], again["out"]) == (0, True, cold["out"])
    assert again["inductor"].get("fxgraph_cache_hit", 0) == 1
    assert again["inductor"].get("fxgraph_cache_miss", 0) == 0
    assert "fxgraph_cache_bypass" not in again["inductor"]
    assert len(stored("module")) == 1

    for library in (tmp_path / "inductor").rglob("*.so"):
        library.unlink()
    rebuilt = run()
    assert (rebuilt["traces"], rebuilt["direct"], rebuilt["out"]) == (0, True, cold["out"])
    assert rebuilt["inductor"]  # compiled again


def test_constants_become_inputs(backend_name):
    """``lift_constants``: each constant tensor once, as an input after the graph's own, in the
    order the graph first reads them; the module keeps no constants and computes the same."""
    import torch

    from lib.dispatch import pytorch_linker as L

    c, d = torch.tensor([1., 2.]), torch.tensor([[3.], [4.]])

    def f(x):
        return (x * c + c, x @ d)

    x = torch.randn(3, 2)
    gm = L.trace(f, [x])
    assert sum(n.op == "get_attr" for n in gm.graph.nodes) == 3  # c is read twice
    expected = gm(x)
    gm, constants = L.lift_constants(gm)
    assert [n.op for n in gm.graph.nodes].count("get_attr") == 0
    assert [n.name for n in gm.graph.nodes if n.op == "placeholder"][1:] == [
        "constant_0", "constant_1"]
    assert len(constants) == 2 and not list(gm.buffers()) and not list(gm.parameters())
    torch.testing.assert_close(constants[0], c, rtol=0, atol=0)
    for got, want in zip(gm(x, *constants), expected):
        torch.testing.assert_close(got, want, rtol=0, atol=0)


def test_only_plain_graphs_call_the_library_directly(backend_name):
    """A graph whose outputs are new tensors is called as a ``WrapperModule``; one that returns
    a view of its input (alone, or among the outputs of a split), or writes in place, keeps
    AOTAutograd's runtime (which rebuilds views and copies mutations back). All give eager
    PyTorch's numbers."""
    import torch

    from lib.dispatch import pytorch_linker as L

    x = torch.arange(6, dtype=torch.float32).reshape(2, 3)

    def plain(x):
        return (torch.tanh(x) * 2, x.sum())

    def view(x):
        return (x.t(), x * 2)

    def in_place(x):
        y = x * 2
        y.add_(1)
        return (y,)

    def split(x):
        return torch.split(x, 1)

    kinds = {}
    for f in (plain, view, in_place, split):
        compiled = L.compile_graph(L.trace(f, [x]), [x])
        kinds[f.__name__] = isinstance(compiled, L.WrapperModule)
        for got, want in zip(compiled(x), f(x)):
            torch.testing.assert_close(got, want, rtol=1e-6, atol=0)
    assert kinds == dict(plain=True, view=False, in_place=False, split=False)


def test_a_corrupt_module_file_is_compiled_again(backend_name, tmp_path, graph_cache_in_tmp_path):
    """A stored module that does not load gives a warning and a compile, with the right
    numbers, and is stored again."""
    from lib.dispatch import pytorch_linker as L

    x = T.vector("x")
    a = np.arange(5, dtype=np.float32)

    def compile_and_run():
        fn = pytensor.function([x], T.sqrt(x) + 1, mode=get_mode(backend_name))
        np.testing.assert_allclose(fn(a), np.sqrt(a) + 1, rtol=1e-6)
        return fn

    compile_and_run()
    (path,) = tmp_path.glob("*.module")
    path.write_bytes(b"not a pickle")
    with pytest.warns(UserWarning, match=r"\.module could not be used .*; compiling the graph"):
        compile_and_run()
    assert isinstance(L.WrapperModule.from_bytes(path.read_bytes()), L.WrapperModule)


def test_a_corrupt_trace_file_is_traced_again(backend_name, tmp_path, graph_cache_in_tmp_path,
                                              monkeypatch):
    """A cached trace that does not load gives a warning and a new trace, with the right
    numbers; the graph cache off (DCGAN_GRAPH_CACHE=0) means no trace files at all."""
    from lib.dispatch import pytorch_linker as L

    x = T.vector("x")
    a = np.arange(5, dtype=np.float32)

    def compile_and_run():
        fn = pytensor.function([x], T.exp(x) * 3, mode=get_mode(backend_name))
        np.testing.assert_allclose(fn(a), np.exp(a) * 3, rtol=1e-6)
        return fn

    compile_and_run()
    (path,) = tmp_path.glob("*.fx")
    path.write_bytes(b"not a pickle")
    for module in tmp_path.glob("*.module"):  # a compiled library would be loaded instead
        module.unlink()
    with pytest.warns(UserWarning, match=r"\.fx could not be used .*; tracing the graph"):
        compile_and_run()
    assert L.graph_from_bytes(path.read_bytes()).graph is not None  # stored again

    monkeypatch.setenv("DCGAN_GRAPH_CACHE", "0")
    path.unlink()
    assert _fx_function(compile_and_run()).digest is None
    assert list(tmp_path.glob("*.fx")) == []


def test_a_cached_trace_needs_no_python_code_and_compiles_without_gc(backend_name,
                                                                     graph_cache_in_tmp_path,
                                                                     monkeypatch):
    """PyTensor's conversion of the graph to Python code is made when a function is made, unless
    the graph's trace or compiled module is cached: a second function of the same graph runs
    without it. A graph that cannot be converted raises when its function is made. Tracing and
    compiling run with the cyclic garbage collector paused (lib/collector.py), and it is on
    again after."""
    import gc

    from pytensor.link.pytorch.linker import PytorchLinker
    from pytensor.tensor.slinalg import cholesky

    from lib.dispatch import pytorch_linker as L

    conversions, gc_during_compile = [], []
    convert, compile_graph = PytorchLinker.fgraph_convert, L.compile_graph
    monkeypatch.setattr(PytorchLinker, "fgraph_convert",
                        lambda *a, **k: conversions.append(1) or convert(*a, **k))
    monkeypatch.setattr(L, "compile_graph",
                        lambda *a: gc_during_compile.append(gc.isenabled()) or compile_graph(*a))
    x = T.matrix("x")
    a = np.arange(6, dtype=np.float32).reshape(2, 3) / 4
    made, ran = [], []
    for _ in range(2):
        fn = pytensor.function([x], T.tanh(x).sum(1) * 2, mode=get_mode(backend_name))
        made.append(len(conversions))
        np.testing.assert_allclose(fn(a), np.tanh(a).sum(1) * 2, rtol=1e-6)
        ran.append(len(conversions))
        assert gc.isenabled()
    # the first converted, traced and compiled; the second loaded the compiled module
    assert made == ran == [1, 1]
    assert gc_during_compile == [False]
    with pytest.raises(NotImplementedError, match="No PyTorch conversion .*Cholesky"):
        pytensor.function([x], cholesky(x), mode=get_mode(backend_name))


def test_stored_graphs_load_as_the_same_code_every_time(backend_name):
    """A traced graph with constants (one used twice), a custom op and list arguments: stored
    and loaded, twice, it has the traced graph's code each time (``GraphModule``'s own pickle
    renames the constants on every load) and computes the same numbers."""
    import torch

    from lib.dispatch import pytorch as ours
    from lib.dispatch import pytorch_linker as L

    c = torch.tensor([[1., 2.], [3., 4.]])

    def f(x, w):
        y = ours.flip_hw(w)[0, 0] * c + c
        return (torch.sum(y * x, dim=[0, 1]), torch.cat([x, y], 1))

    x, w = torch.randn(2, 2), torch.randn(1, 1, 2, 2)
    gm = L.trace(f, [x, w])
    assert any(n.op == "get_attr" for n in gm.graph.nodes)
    data = L.graph_to_bytes(gm)
    first, second = L.graph_from_bytes(data), L.graph_from_bytes(pickle.loads(pickle.dumps(data)))
    assert first.code == second.code == gm.code
    for a, b in zip(first(x, w), f(x, w)):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_warm_up_probes_in_a_thread_and_compiles_in_a_child(backend_name, tmp_path):
    """Making the backend starts, once per process, a thread that probes the CPU's vector ISA,
    and, once per Inductor cache, a child process that compiles a tiny graph (for the header
    Inductor precompiles) and leaves a marker; a process that finds the marker starts none."""
    script = textwrap.dedent(f"""
        import json, sys
        sys.path.insert(0, {str(ROOT)!r})
        from lib.backend import get_mode
        from lib.dispatch import pytorch_linker as L
        from torch._inductor import cpu_vec_isa
        get_mode("pytorch")
        thread, child = L._warm_up_thread, L._warm_up_child
        get_mode("pytorch")
        L.FxPytorchLinker()
        once = L._warm_up_thread is thread and L._warm_up_child is child
        L.wait_for_warm_up()
        rc = None if child is None else child.wait(timeout=600)
        print(json.dumps(dict(daemon=thread.daemon, alive=thread.is_alive(), once=once, rc=rc,
                              child=child is not None, marker=L._warm_up_marker().exists(),
                              isa=cpu_vec_isa.valid_vec_isa_list.cache_info().currsize)))
    """)
    (tmp_path / "tmp").mkdir()
    env = dict(os.environ, TORCHINDUCTOR_CACHE_DIR=str(tmp_path / "inductor"),
               TMPDIR=str(tmp_path / "tmp"))  # where Inductor keeps the headers it precompiles
    runs = [json.loads(subprocess.run([sys.executable, "-c", script], env=env, check=True,
                                      capture_output=True, text=True).stdout.splitlines()[-1])
            for _ in range(2)]
    assert runs[0] == dict(daemon=True, alive=False, once=True, rc=0, child=True, marker=True,
                           isa=1)
    assert runs[1] == dict(runs[0], rc=None, child=False)
    # the wrapper's header and the kernels' header, precompiled; the tiny module not compiled
    assert len(list((tmp_path / "tmp").rglob("precompiled_headers/*.h.[gp]ch"))) == 2
    assert list((tmp_path / "inductor").rglob("*.main.cpp"))
    assert not list((tmp_path / "inductor").rglob("*.main.o"))


class _Unit:
    """A stand-in for Inductor's ``CppBuilder``: ``build`` runs ``work``, then writes the
    target file."""

    def __init__(self, path, work=lambda: None):
        self.path, self.work, self.built = path, work, 0

    def get_target_file_path(self):
        return str(self.path)

    def build(self):
        self.work()
        self.built += 1
        self.path.write_text("built")


def test_compile_units_are_built_at_once_then_linked(backend_name, tmp_path):
    """The wrapper's and the kernels' compile units are built side by side (each waits at a
    barrier for the other: built one after the other, they would time out), then linked; the
    linker installs this as Inductor's module compiler."""
    import threading

    from lib.dispatch import pytorch_linker as L
    from torch._inductor import codecache

    barrier = threading.Barrier(2, timeout=20)
    main, kernels = _Unit(tmp_path / "a.main.o", barrier.wait), _Unit(tmp_path / "a.opt.o",
                                                                       barrier.wait)
    link = _Unit(tmp_path / "a.so", lambda: [main.path.read_text(), kernels.path.read_text()])
    L._compile_units(str(tmp_path / "a.lock"), (main, kernels, link))
    assert (main.built, kernels.built, link.built) == (1, 1, 1)
    L._compile_units(str(tmp_path / "a.lock"), (main, kernels, link))  # all there: nothing
    assert (main.built, kernels.built, link.built) == (1, 1, 1)

    L._use_compile_units()
    assert codecache._worker_compile_cpp is L._compile_units


def test_compile_units_skip_what_exists_and_raise_compiler_errors(backend_name, tmp_path):
    from lib.dispatch import pytorch_linker as L

    one = _Unit(tmp_path / "header.gch")
    L._compile_units(str(tmp_path / "h.lock"), (one,))
    assert one.built == 1

    main, kernels = _Unit(tmp_path / "b.main.o"), _Unit(tmp_path / "b.opt.o")
    kernels.path.write_text("built earlier")
    link = _Unit(tmp_path / "b.so")
    L._compile_units(str(tmp_path / "b.lock"), (main, kernels, link))
    assert (main.built, kernels.built, link.built) == (1, 0, 1)

    def error():
        raise RuntimeError("g++: error: x.cpp: 1: expected ';'")

    broken, fine, link = (_Unit(tmp_path / "c.main.o", error), _Unit(tmp_path / "c.opt.o"),
                          _Unit(tmp_path / "c.so"))
    with pytest.raises(RuntimeError, match="expected ';'"):
        L._compile_units(str(tmp_path / "c.lock"), (broken, fine, link))
    assert link.built == 0


def test_warm_up_errors_are_left_to_the_real_compile(backend_name, monkeypatch):
    from lib.dispatch import pytorch_linker as L
    from torch._inductor import cpu_vec_isa

    def broken():
        raise RuntimeError("no compiler")

    monkeypatch.setattr(cpu_vec_isa, "pick_vec_isa", broken)
    L._probe_vec_isa()  # returns quietly


def test_graphs_with_conv_gradients_compile_without_layout_optimisation(backend_name):
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

    assert L.inductor_config(L.trace(forward, [x, w])) == L.INDUCTOR_CONFIG
    assert L.inductor_config(L.trace(weight_gradient, [x, w])) == dict(
        L.INDUCTOR_CONFIG, layout_optimization=False)


def test_the_library_spy_sees_its_own_thread_only(backend_name, tmp_path):
    """``_wrapper_modules`` records the library behind each output code loaded in its own
    thread (another thread's compile is not this graph's), and puts Inductor's loader back."""
    import threading

    import numpy._core._multiarray_umath as extension
    from torch._inductor.codecache import PyCodeCache

    from lib.dispatch import pytorch_linker as L

    code = tmp_path / "output_code.py"  # stands for Inductor's output code: entry in a library
    code.write_text("import numpy._core._multiarray_umath as m\ninductor_entry = m.add_docstring\n")
    own = PyCodeCache.__dict__["load_by_key_path"]
    with L._wrapper_modules() as loaded:
        other = threading.Thread(target=PyCodeCache.load_by_key_path, args=("dcgan_test_other", str(code)))
        other.start()
        other.join()
        assert loaded == []
        PyCodeCache.load_by_key_path("dcgan_test_ours", str(code))
    assert loaded == [(extension.__file__, extension.__name__.rsplit(".", 1)[0])]
    assert PyCodeCache.__dict__["load_by_key_path"] is own
