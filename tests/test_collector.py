"""lib/collector.py: the garbage collector paused while compiling, imported objects frozen."""
import gc

import pytensor
import pytensor.tensor as T
import pytest
from pytensor.compile.maker import FunctionMaker

from lib import backend, collector


@pytest.fixture
def gc_enabled():
    was = gc.isenabled()
    gc.enable()
    yield
    (gc.enable if was else gc.disable)()


def test_paused_turns_collection_off_inside_and_back_on_after(gc_enabled):
    with collector.paused():
        assert not gc.isenabled()
        with collector.paused():  # nested: still off, and not turned on by the inner block
            pass
        assert not gc.isenabled()
    assert gc.isenabled()
    with pytest.raises(KeyError), collector.paused():
        raise KeyError("compile failed")
    assert gc.isenabled()


def test_paused_leaves_a_disabled_collector_disabled(gc_enabled):
    gc.disable()
    with collector.paused():
        pass
    assert not gc.isenabled()


def test_registering_a_backend_freezes_nothing(gc_enabled, monkeypatch):
    monkeypatch.setattr(backend, "_registered", set())
    before = gc.get_freeze_count()
    backend.register("python")
    assert gc.get_freeze_count() == before


def test_functions_are_rewritten_and_linked_with_the_collector_paused(gc_enabled, monkeypatch):
    seen = {}
    rewrite, create = FunctionMaker.prepare_fgraph, FunctionMaker.create

    def prepare_fgraph(*args, **kwargs):
        seen["rewrite"] = gc.isenabled()
        return rewrite(*args, **kwargs)

    def link(self, *args, **kwargs):
        seen["link"] = gc.isenabled()
        return create(self, *args, **kwargs)

    monkeypatch.setattr(FunctionMaker, "prepare_fgraph", staticmethod(prepare_fgraph))
    monkeypatch.setattr(FunctionMaker, "create", link)
    monkeypatch.setenv("DCGAN_GRAPH_CACHE", "0")  # rewritten every time
    x = T.vector("x")
    fn = pytensor.function([x], T.exp(x) + 1, mode=backend.get_mode("python"))
    assert fn([0.0]).tolist() == [2.0]
    assert seen == {"rewrite": False, "link": False}
    assert gc.isenabled()


def test_numba_compiles_at_the_first_call_with_the_collector_paused(gc_enabled):
    """The Numba backend's compiled function: its first call (Numba's compile) runs with the
    collector off, later calls with it on; the results are the function's."""
    from lib.dispatch.numba_linker import FirstCallPaused, PausedNumbaLinker

    states = []

    def fn(a, b):
        states.append(gc.isenabled())
        return a + b

    f = FirstCallPaused(fn)
    assert [f(1, 2), f(3, 4), f(5, 6)] == [3, 7, 11]
    assert states == [False, True, True]
    assert gc.isenabled()

    x = T.vector("x")
    g = pytensor.function([x], T.exp(x) * 2, mode=backend.get_mode("numba"))
    assert isinstance(g.maker.linker, PausedNumbaLinker)
    assert isinstance(g.vm.jit_fn, FirstCallPaused)
    assert g([0.0, 1.0]).tolist() == pytest.approx([2.0, 2 * 2.718281828459045])
