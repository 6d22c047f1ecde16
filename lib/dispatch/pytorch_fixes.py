"""Fixes to PyTensor 3.0.7's own PyTorch backend, imported by ``lib.backend.register('pytorch')``.

PyTensor maps a scalar Op to ``torch.<name>`` where ``name`` is the Op's NumPy function name
(``nfunc_spec``). For these Ops that name is missing from torch or means something else there:

- ``Pow`` -> ``power``: no such torch function (AttributeError at compile time: Adam's ``b1**t``).
- ``EQ`` -> ``equal``: torch.equal compares whole tensors and returns a Python bool, so the
  broadcast checks PyTensor inserts (``Eq`` of two shapes, e.g. in ``bce(p, t).mean()``) fail
  with "'bool' object is not subscriptable".
- ``Mod`` -> ``mod`` and ``RoundHalfToEven`` -> ``around``: no such torch functions.

And one that is slow: an ``Add`` or ``Mul`` of three or more inputs (fused gradient terms such
as ``a * b * c``) is ``torch.stack(torch.broadcast_tensors(*inputs)).prod(0)`` in PyTensor, which
makes torch.compile materialise every broadcast input as a full tensor, copy them into the
stack and read it back: in the faces G update at small scale one such product of three
(64, 64, 32, 32) tensors took 11 ms. Here they are chained binary ops, left to right, the order
of PyTensor's C code.
"""
from functools import reduce

import torch
from pytensor.link.pytorch.dispatch.basic import pytorch_funcify
from pytensor.scalar.basic import EQ, Add, Mod, Mul, Pow, RoundHalfToEven


@pytorch_funcify.register(Pow)
def pytorch_funcify_Pow(op, node, **kwargs):
    """x**y elementwise."""
    return torch.pow


@pytorch_funcify.register(EQ)
def pytorch_funcify_EQ(op, node, **kwargs):
    """x == y elementwise (a tensor of bools, not torch.equal's single bool)."""
    return torch.eq


@pytorch_funcify.register(Mod)
def pytorch_funcify_Mod(op, node, **kwargs):
    """x % y with the sign of y, as NumPy's mod."""
    return torch.remainder


@pytorch_funcify.register(RoundHalfToEven)
def pytorch_funcify_RoundHalfToEven(op, node, **kwargs):
    """Round half to even, as NumPy's around."""
    return torch.round


@pytorch_funcify.register(Add)
def pytorch_funcify_Add(op, node, **kwargs):
    """x + y + ... elementwise, left to right."""
    return lambda *inputs: reduce(torch.add, inputs)


@pytorch_funcify.register(Mul)
def pytorch_funcify_Mul(op, node, **kwargs):
    """x * y * ... elementwise, left to right."""
    return lambda *inputs: reduce(torch.mul, inputs)
