"""The project's random state, seeded once (``set_seed``) and read at use time.

Use ``from lib import rng`` and then ``rng.np_rng``: a name imported with
``from lib.rng import np_rng`` goes stale when ``set_seed`` replaces the generators.

``get_state()`` / ``set_state(state)`` capture and restore all three generators (Python,
NumPy and the symbolic ``t_rng``) as plain JSON-compatible data, so training resumes bit-exactly.
"""
from random import Random

import numpy as np
import pytensor
import pytensor.tensor.random as ptr
from numpy.random import RandomState

import lib  # noqa: F401  (sets floatX)


class TensorRNG:
    """Symbolic random draws for PyTensor graphs, in the interface of Theano's MRG_RandomStreams.

    Every draw gets its own shared ``numpy.random.Generator`` variable, spawned in creation
    order from ``SeedSequence(seed)``. A function using draws must advance their generators:
    compile it with ``updates=[...] + rng.t_rng.updates()``, or every call repeats the same draws.
    """

    # PORT: Theano's MRG_RandomStreams is gone and PyTensor 3 deprecates RandomStream and setting
    # a shared variable's default_update (which Theano's streams relied on); this is the same
    # per-draw shared generator on pt.random.shared_rng / rng.method(), with explicit updates.

    def __init__(self, seed):
        self.seed = seed
        self._seed_seq = np.random.SeedSequence(seed)
        self.rngs = []  # the shared generator variables, in the order the draws were made
        self._next = []  # their next states

    def draw(self, method, *args, **kwargs):
        """A draw ``method`` ('normal', 'binomial', ...) of ``pt.random``, on a fresh generator."""
        (child,) = self._seed_seq.spawn(1)
        shared = ptr.shared_rng(np.random.default_rng(child), name=f"t_rng_{len(self.rngs)}")
        next_rng, x = getattr(shared, method)(*args, **kwargs)
        self.rngs.append(shared)
        self._next.append(next_rng)
        return x

    def updates(self):
        """The (generator, next state) pairs of every draw so far, for ``pytensor.function``."""
        return list(zip(self.rngs, self._next))

    def binomial(self, size, n=1, p=0.5, dtype="floatX"):
        """``size``-shaped binomial(n, p) draws as ``dtype`` (dropout's mask: n=1)."""
        return self._cast(self.draw("binomial", n, p, size=size), dtype)

    def uniform(self, size, low=0.0, high=1.0, dtype="floatX"):
        """``size``-shaped uniform draws in [low, high)."""
        return self._cast(self.draw("uniform", low, high, size=size), dtype)

    def normal(self, size, avg=0.0, std=1.0, dtype="floatX"):
        """``size``-shaped normal(avg, std) draws."""
        return self._cast(self.draw("normal", avg, std, size=size), dtype)

    @staticmethod
    def _cast(x, dtype):
        dtype = pytensor.config.floatX if dtype == "floatX" else dtype
        return x if x.dtype == dtype else x.astype(dtype)

    def get_state(self):
        """The seed, the number of draws made and every draw generator's state (JSON-compatible)."""
        return {
            "seed": self.seed,
            "n_spawned": self._seed_seq.n_children_spawned,
            "rngs": [r.get_value(borrow=True).bit_generator.state for r in self.rngs],
        }

    def set_state(self, state):
        """Restore ``get_state()`` into this object's generators (the graph must be rebuilt alike)."""
        if state["seed"] != self.seed or len(state["rngs"]) != len(self.rngs):
            raise ValueError(
                f"t_rng state has seed {state['seed']} and {len(state['rngs'])} draws; this t_rng has "
                f"seed {self.seed} and {len(self.rngs)} draws (build the same graphs before restoring)")
        self._seed_seq = np.random.SeedSequence(self.seed, n_children_spawned=state["n_spawned"])
        for shared, bit_state in zip(self.rngs, state["rngs"]):
            generator = shared.get_value()
            generator.bit_generator.state = bit_state
            shared.set_value(generator, borrow=True)


seed = 42

py_rng = Random(seed)
np_rng = RandomState(seed)
t_rng = TensorRNG(seed)


def set_seed(n):
    """Reseed the Python, NumPy and PyTensor generators (all three from ``n``)."""
    global seed, py_rng, np_rng, t_rng
    seed = n
    py_rng = Random(seed)
    np_rng = RandomState(seed)
    t_rng = TensorRNG(seed)


def get_state():
    """The state of ``py_rng``, ``np_rng`` and ``t_rng`` as JSON-compatible data (dicts, lists, ints)."""
    version, internal, gauss_next = py_rng.getstate()
    np_state = np_rng.get_state(legacy=False)
    np_state["state"] = {"key": np_state["state"]["key"].tolist(), "pos": int(np_state["state"]["pos"])}
    return {
        "seed": seed,
        "py_rng": [version, list(internal), gauss_next],
        "np_rng": np_state,
        "t_rng": t_rng.get_state(),
    }


def set_state(state):
    """Restore a ``get_state()`` result into the current generators, in place."""
    global seed
    version, internal, gauss_next = state["py_rng"]
    py_rng.setstate((version, tuple(internal), gauss_next))
    np_state = dict(state["np_rng"])
    np_state["state"] = {"key": np.asarray(np_state["state"]["key"], dtype=np.uint32),
                         "pos": np_state["state"]["pos"]}
    np_rng.set_state(np_state)
    t_rng.set_state(state["t_rng"])
    seed = state["seed"]
