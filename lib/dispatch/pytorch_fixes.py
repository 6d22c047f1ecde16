"""Fixes to PyTensor 3.0.7's own PyTorch backend, imported by ``lib.backend.register('pytorch')``.

PyTensor maps a scalar Op to ``torch.<name>`` where ``name`` is the Op's NumPy function name
(``nfunc_spec``). For these Ops that name is missing from torch or means something else there:

- ``Pow`` -> ``power``: no such torch function (AttributeError at compile time: Adam's ``b1**t``).
- ``EQ`` -> ``equal``: torch.equal compares whole tensors and returns a Python bool, so the
  broadcast checks PyTensor inserts (``Eq`` of two shapes, e.g. in ``bce(p, t).mean()``) fail
  with "'bool' object is not subscriptable".
- ``Mod`` -> ``mod`` and ``RoundHalfToEven`` -> ``around``: no such torch functions.

And two that are slow: an ``Add`` or ``Mul`` of three or more inputs (fused gradient terms such
as ``a * b * c``) is ``torch.stack(torch.broadcast_tensors(*inputs)).prod(0)`` in PyTensor, which
materialises every broadcast input as a full tensor, copies them into the stack and reads it
back; here they are chained binary ops, left to right, the order of PyTensor's C code. And every
elementwise node checks at run time that no input broadcasts a length-1 dimension its type does
not mark broadcastable, looping over every input and dimension, which a trace runs for each of
the ~500 elementwise nodes of a training update; here the check looks only at the dimensions
whose sizes the types leave unknown, which raises exactly when PyTensor's does.

And two that an export on fake tensors cannot run, or runs slowly: a ``MakeVector`` (a vector of
scalars, e.g. of shape values) is ``torch.tensor(list)`` in PyTensor, which reads each scalar's
value on the host (here each scalar is put in place by ``torch.where``), and a cast is
``torch.vmap`` of the scalar cast over every dimension (here one ``Tensor.to``).
"""
from functools import reduce

import torch
from pytensor.link.pytorch.dispatch.basic import pytorch_funcify
from pytensor.link.pytorch.dispatch.elemwise import (
    pytorch_funcify_Elemwise as pytensor_pytorch_funcify_Elemwise)
from pytensor.scalar.basic import EQ, Add, Cast, Mod, Mul, Pow, RoundHalfToEven
from pytensor.tensor.basic import MakeVector
from pytensor.tensor.elemwise import Elemwise


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


def runtime_broadcast_check(node):
    """``check(inputs)``: PyTensor's ``Elemwise._check_runtime_broadcast`` for ``node``, reduced
    to the dimensions whose static sizes are unknown (None if there are none).

    ``Elemwise._check_runtime_broadcast`` raises when, along some dimension, one input has length
    1 without being broadcastable there and another input's length is not 1. A dimension of known
    size is never such a 1 (a known 1 is broadcastable) and is "not 1" when its size is not 1; so
    only the inputs of unknown size along a dimension need looking at.
    """
    dims = []
    for k in range(node.outputs[0].type.ndim):
        unknown = tuple(i for i, v in enumerate(node.inputs) if v.type.shape[k] is None)
        if unknown:
            known_not_1 = any(v.type.shape[k] not in (None, 1) for v in node.inputs)
            dims.append((k, unknown, known_not_1))
    if not dims:
        return None

    def check(inputs):
        for k, unknown, known_not_1 in dims:
            sizes = [inputs[i].shape[k] for i in unknown]
            if any(s == 1 for s in sizes) and (known_not_1 or any(s != 1 for s in sizes)):
                raise ValueError(
                    "Runtime broadcasting not allowed. At least one input has a distinct "
                    "dimension length of 1, but was not marked as broadcastable.")

    return check


def _cast(dtype):
    def cast(x):
        return x.to(dtype)

    return cast


@pytorch_funcify.register(Elemwise)
def pytorch_funcify_Elemwise(op, node, **kwargs):
    """PyTensor's Elemwise dispatch, with ``runtime_broadcast_check`` in place of the full check
    where PyTensor calls the torch function directly, and a cast as one ``Tensor.to`` (its other
    paths are left as they are)."""
    spec = getattr(op.scalar_op, "nfunc_spec", None)
    if isinstance(op.scalar_op, Cast):  # PyTensor: torch.vmap of a scalar cast, per dimension
        base_fn = _cast(getattr(torch, op.scalar_op.o_type.dtype))
    elif not (spec and hasattr(torch, spec[0])):
        return pytensor_pytorch_funcify_Elemwise(op, node, **kwargs)
    else:
        base_fn = pytorch_funcify(op.scalar_op, node=node, **kwargs)
    check = runtime_broadcast_check(node)
    if check is None:
        return base_fn

    def elemwise(*inputs):
        check(inputs)
        return base_fn(*inputs)

    return elemwise


@pytorch_funcify.register(MakeVector)
def pytorch_funcify_MakeVector(op, **kwargs):
    """A vector of scalars, each put in its place by ``torch.where``.

    PyTensor's ``torch.tensor(list)`` reads each scalar's value on the host, which an export on
    fake tensors cannot do. Stacking them instead fails in Inductor 2.13 when a scalar is a
    constant of the exported program (a shape, such as the element count of a batchnorm mean):
    it cannot lower a view (``unsqueeze``) of a constant ("'Constant' object has no attribute
    'data'"). ``where`` is elementwise, and exact for every value."""
    dtype = getattr(torch, op.dtype)

    def makevector(*x):
        out = torch.zeros(len(x), dtype=dtype)
        position = torch.arange(len(x))
        for i, v in enumerate(x):
            out = torch.where(position == i, torch.as_tensor(v, dtype=dtype), out)
        return out

    return makevector
