"""The one restricted unpickler: it builds only the globals its caller names.

A pickle is a program: its GLOBAL opcodes name any importable callable and its REDUCE opcodes
call them. ``RestrictedUnpickler`` resolves a global only if it is a key of ``allowed``
(``{(module, name): object}``) and refuses every other one, and every persistent id, with
``RefusedGlobal`` before anything is called. Its users: the original's joblib parameter files
(lib/params.py) and CIFAR-10's python batches (imagenet/load.py).
"""
import io
import pickle


class RefusedGlobal(pickle.UnpicklingError):
    """A pickle names a global (or a persistent id) that the unpickler does not build."""


class RestrictedUnpickler(pickle.Unpickler):
    """A ``pickle.Unpickler`` that resolves only the globals in ``allowed``.

    ``allowed``: ``{(module, name): object}``, the object each permitted global stands for (the
    real one, or an inert stand-in). ``kwargs`` go to ``pickle.Unpickler`` (e.g.
    ``encoding='bytes'`` for Python 2 pickles).
    """

    def __init__(self, file, allowed, **kwargs):
        super().__init__(file, **kwargs)
        self.allowed = dict(allowed)

    def find_class(self, module, name):
        try:
            return self.allowed[(module, name)]
        except KeyError:
            expected = ', '.join(sorted(f'{m}.{n}' for m, n in self.allowed))
            raise RefusedGlobal(f'refused global {module}.{name} (expected only {expected})') from None

    def persistent_load(self, pid):
        raise RefusedGlobal('refused a persistent id')


def restricted_loads(data, allowed, **kwargs):
    """Unpickle the bytes ``data`` with ``RestrictedUnpickler(allowed, **kwargs)``."""
    return RestrictedUnpickler(io.BytesIO(data), allowed, **kwargs).load()
