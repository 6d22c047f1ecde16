"""The project's random state, seeded once (``set_seed``) and read at use time.

Use ``from lib import rng`` and then ``rng.np_rng``: a name imported with
``from lib.rng import np_rng`` goes stale when ``set_seed`` replaces the generators.
"""
from random import Random

from numpy.random import RandomState
from pytensor.tensor.random.utils import RandomStream

seed = 42

py_rng = Random(seed)
np_rng = RandomState(seed)
# PORT: Theano's MRG_RandomStreams is gone; PyTensor's RandomStream is its successor.
t_rng = RandomStream(seed)


def set_seed(n):
    """Reseed the Python, NumPy and PyTensor generators (all three from ``n``)."""
    global seed, py_rng, np_rng, t_rng
    seed = n
    py_rng = Random(seed)
    np_rng = RandomState(seed)
    t_rng = RandomStream(seed)
