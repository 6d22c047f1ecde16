"""lib/graph_cache.py: a second compile of the same graph loads the rewritten graph from disk."""
import pickle

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from pytensor.compile.maker import FunctionMaker

from lib import graph_cache
from lib.activations import Sigmoid
from lib.costs import binary_crossentropy
from lib.theano_utils import sharedX
from tests.backend_params import backend_params, get_mode

BACKENDS = [p for p in backend_params() if p.values[0] != "python"]


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """An empty cache in ``tmp_path`` that stores every graph, however quick to rewrite."""
    monkeypatch.setattr(graph_cache, "cache_dir", lambda: tmp_path)
    monkeypatch.setattr(graph_cache, "MIN_REWRITE_S", 0.0)
    monkeypatch.delenv("DCGAN_GRAPH_CACHE", raising=False)
    return tmp_path


def _model(lr=0.1):
    """A logistic regression step: cost, and an in-place SGD update of a shared weight."""
    x, y = pt.matrix("x"), pt.vector("y")
    w = sharedX(np.linspace(-1, 1, 4 * 1).reshape(4, 1), name="w")
    p = Sigmoid()(pt.dot(x, w).flatten())
    cost = binary_crossentropy(p, y).mean()
    return [x, y], cost, {w: w - lr * pytensor.grad(cost, w)}, w


def _data():
    r = np.random.RandomState(0)
    return r.standard_normal((8, 4)).astype(np.float32), (r.uniform(size=8) > .5).astype(np.float32)


def _compile(mode, lr=0.1):
    inputs, cost, updates, w = _model(lr)
    return pytensor.function(inputs, cost, updates=updates, mode=mode), w


def _run(fn, w, steps=3):
    X, Y = _data()
    costs = [float(fn(X, Y)) for _ in range(steps)]
    return costs, w.get_value()


@pytest.mark.parametrize("name", BACKENDS)
def test_second_compile_is_a_hit_with_the_same_results(name, cache, monkeypatch):
    first, w1 = _compile(get_mode(name))
    assert first.maker.graph_cache[0] == "miss"
    assert len(list(cache.glob("*.pkl"))) == 1
    expected = _run(first, w1)

    def no_rewrites(*args, **kwargs):
        raise AssertionError("the graph was rewritten again")

    monkeypatch.setattr(FunctionMaker, "prepare_fgraph", staticmethod(no_rewrites))
    second, w2 = _compile(get_mode(name))
    assert second.maker.graph_cache[0] == "hit"
    # the same rewritten graph, wired to this function's own shared variable
    assert ([type(n.op).__name__ for n in second.maker.fgraph.toposort()]
            == [type(n.op).__name__ for n in first.maker.fgraph.toposort()])
    costs, w_after = _run(second, w2)
    assert costs == expected[0]
    np.testing.assert_array_equal(w_after, expected[1])
    assert not np.array_equal(w_after, np.linspace(-1, 1, 4).reshape(4, 1))  # updates landed


def test_the_rewritten_graph_carries_its_key(cache):
    """The key is left on the rewritten graph for the linker's own caches (the PyTorch linker
    keys its traces on it): the file's name, the same on a miss and on a hit, None when off."""
    first, _ = _compile(get_mode("c"))
    second, _ = _compile(get_mode("c"))
    (path,) = cache.glob("*.pkl")
    assert first.maker.fgraph.dcgan_graph_key == second.maker.fgraph.dcgan_graph_key == path.stem
    assert _compile(get_mode("c"), lr=0.2)[0].maker.fgraph.dcgan_graph_key != path.stem


def test_a_different_graph_or_mode_is_a_miss(cache):
    a, _ = _compile(get_mode("c"))
    b, _ = _compile(get_mode("c"), lr=0.2)  # one constant changed
    c, _ = _compile(get_mode("c").excluding("fusion"))  # other rewrites
    assert [f.maker.graph_cache[0] for f in (a, b, c)] == ["miss"] * 3
    assert len(list(cache.glob("*.pkl"))) == 3


def test_key_ignores_what_earlier_compiles_leave_on_shared_graph_parts(cache):
    """Two functions share a subgraph, as the faces G and D updates do. The rewrites of one
    leave marks on shared constants and tags (locked arrays, cached values); the other's key
    must not change with them, or a run whose first function was a hit would miss the second."""
    x = pt.matrix("x")
    w = sharedX(np.ones((4, 3)), name="w")
    h = Sigmoid()(pt.dot(x, w) * 2.0 + 1e-8)
    one = binary_crossentropy(h, pt.ones_like(h)).mean()
    two = binary_crossentropy(h, pt.zeros_like(h)).mean() + (h ** 2).sum()
    assert pytensor.function([x], two, mode=get_mode("c")).maker.graph_cache[0] == "miss"
    assert pytensor.function([x], one, mode=get_mode("c")).maker.graph_cache[0] == "miss"
    assert pytensor.function([x], two, mode=get_mode("c")).maker.graph_cache[0] == "hit"


def test_a_corrupt_file_is_rewritten_with_a_warning(cache):
    first, w1 = _compile(get_mode("c"))
    expected = _run(first, w1)
    (path,) = cache.glob("*.pkl")
    path.write_bytes(b"not a pickle")
    with pytest.warns(UserWarning, match="could not be used"):
        second, w2 = _compile(get_mode("c"))
    assert second.maker.graph_cache[0] == "miss"
    costs, w_after = _run(second, w2)
    assert costs == expected[0]
    np.testing.assert_array_equal(w_after, expected[1])


def test_turned_off_by_the_environment(cache, monkeypatch):
    monkeypatch.setenv("DCGAN_GRAPH_CACHE", "0")
    fn, w = _compile(get_mode("c"))
    assert not hasattr(fn.maker, "graph_cache")
    assert fn.maker.fgraph.dcgan_graph_key is None
    assert list(cache.glob("*.pkl")) == []
    assert np.isfinite(_run(fn, w)[0]).all()


def test_least_recently_used_files_are_removed(cache, monkeypatch):
    monkeypatch.setattr(graph_cache, "MAX_FILES", 2)
    for lr in (0.1, 0.2, 0.3):
        _compile(get_mode("c"), lr=lr)
    assert len(list(cache.glob("*.pkl"))) == 2


@pytest.mark.parametrize("name", BACKENDS)
def test_a_conv_model_step_is_a_hit(name, cache):
    """A deconv + conv step with a gradient (the PyTorch backend's graph holds HostShape Ops,
    whose compiled shape program is rebuilt on unpickling)."""
    from lib.ops import conv2d, deconv

    def compiled():
        x = pt.tensor4("x")
        w = sharedX(np.linspace(-.5, .5, 2 * 3 * 5 * 5).reshape(2, 3, 5, 5), name="w")
        h = deconv(x, w, subsample=(2, 2), border_mode=(2, 2))  # (n, 3, 2H, 2W)
        cost = (conv2d(h, w, subsample=(2, 2), border_mode=(2, 2)) ** 2).mean()  # (n, 2, H, W)
        return pytensor.function([x], cost, updates={w: w - 0.1 * pytensor.grad(cost, w)},
                                 mode=get_mode(name)), w

    X = np.random.RandomState(1).standard_normal((2, 2, 4, 4)).astype(np.float32)
    first, w1 = compiled()
    expected = [float(first(X)) for _ in range(2)], w1.get_value()
    second, w2 = compiled()
    assert [first.maker.graph_cache[0], second.maker.graph_cache[0]] == ["miss", "hit"]
    assert [float(second(X)) for _ in range(2)] == expected[0]
    np.testing.assert_array_equal(w2.get_value(), expected[1])


def test_a_graph_that_cannot_be_stored_warns_once(cache, monkeypatch):
    def unpicklable(*args, **kwargs):
        raise pickle.PicklingError("no")

    monkeypatch.setattr(graph_cache, "_store", unpicklable)
    monkeypatch.setattr(graph_cache, "_warned", set())
    with pytest.warns(UserWarning, match="could not store") as record:
        _compile(get_mode("c"))
        _compile(get_mode("c"), lr=0.2)
    assert sum("could not store" in str(w.message) for w in record) == 1
