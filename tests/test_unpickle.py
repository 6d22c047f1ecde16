"""lib/unpickle.py: the one restricted unpickler, against pickle.loads as the reference."""
import collections
import io
import pickle

import numpy as np
import pytest

from lib.unpickle import RefusedGlobal, restricted_loads


class _Touch:
    """Unpickling it normally creates the file ``path`` (the sentinel)."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, 'w'))


@pytest.mark.parametrize('protocol', [3, 4, 5], ids=lambda p: f'protocol{p}')
def test_plain_data_loads_as_pickle_loads_it(protocol):
    # (protocols 0..2 write bytes as a call to _codecs.encode: a global, refused unless allowed)
    data = {'a': [1, 2.5, None, True], 'b': ('x', b'\x00\xff'), 'c': {3: -4}}
    blob = pickle.dumps(data, protocol=protocol)
    assert restricted_loads(blob, {}) == pickle.loads(blob) == data


def test_allowed_globals_resolve_to_what_the_caller_gives():
    blob = pickle.dumps([collections.OrderedDict(a=1)], protocol=2)
    got = restricted_loads(blob, {('collections', 'OrderedDict'): dict})
    assert got == [{'a': 1}] and type(got[0]) is dict          # the stand-in, not the real class


@pytest.mark.parametrize('protocol', [0, 2, 5], ids=lambda p: f'protocol{p}')
def test_other_globals_are_refused_before_anything_runs(tmp_path, protocol):
    sentinel = tmp_path / 'SENTINEL'
    blob = pickle.dumps({'x': _Touch(sentinel)}, protocol=protocol)
    pickle.loads(blob)                                          # the reference: it runs
    assert sentinel.exists()
    sentinel.unlink()
    with pytest.raises(RefusedGlobal) as err:
        restricted_loads(blob, {('numpy', 'ndarray'): np.ndarray})
    assert 'refused global io.open (expected only numpy.ndarray)' == str(err.value)
    assert not sentinel.exists()


def test_persistent_ids_are_refused():
    class _Pickler(pickle.Pickler):
        def persistent_id(self, obj):
            return 'ref' if obj == 'shared' else None

    buf = io.BytesIO()
    _Pickler(buf, protocol=2).dump(['shared'])
    with pytest.raises(RefusedGlobal, match='persistent id'):
        restricted_loads(buf.getvalue(), {})
