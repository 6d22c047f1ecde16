"""The size inputs of the conv gradient Ops as host integers, for the JAX and PyTorch backends.

``Conv2dGradInputs(w, top, in_hw)`` and ``Conv2dGradWeights(X, top, k_hw)`` take the spatial size
of what they produce as an int vector. With static shapes it is a constant. Otherwise it is a
small graph of ``Shape``/``Shape_i`` and integer arithmetic, e.g. ``MakeVector(Shape_i{2}(X),
Shape_i{3}(X)) * [2, 2]``, which both JIT backends would compute as traced arrays: XLA then has
no static output shape (JAX refuses), and torch cannot export a graph that reads the values.

The rewrite here replaces such a graph by ``HostShape(*sources)``: the same integer arithmetic,
done in Python on the *shapes* of ``sources`` (the variables whose shapes the graph reads), which
both JITs know while tracing (as ints, or torch SymInts). It is registered under the ``jax`` tag
(PyTensor's JAX mode includes it) and the ``pytorch`` tag (a PyTorch mode must include it:
``get_mode('pytorch').including('pytorch')``), with two more for PyTorch: the shapes of
reshapes and the sizes of allocations (``T.ones(p.shape)``, the gradient of a mean), which
PyTensor's PyTorch kernels read back from tensors; lib/dispatch/pytorch_linker.py exports graphs
on fake tensors, which have no values to read.
"""
import operator
from functools import reduce

import numpy as np
import pytensor.scalar.basic as ps
import pytensor.tensor as pt
from pytensor.compile import optdb
from pytensor.graph.basic import Apply, Constant
from pytensor.graph.op import Op
from pytensor.graph.replace import clone_replace
from pytensor.graph.rewriting.basic import dfs_rewriter, node_rewriter
from pytensor.graph.traversal import toposort
from pytensor.scalar.basic import Composite
from pytensor.tensor.basic import (Alloc, AllocEmpty, MakeVector, ScalarFromTensor,
                                   TensorFromScalar)
from pytensor.tensor.elemwise import DimShuffle, Elemwise
from pytensor.tensor.shape import Reshape, Shape, Shape_i, SpecifyShape
from pytensor.tensor.subtensor import Subtensor, unflatten_index_variables

from lib.conv_ops import Conv2dGradInputs, Conv2dGradWeights

# integer scalar ops, on Python ints (or torch SymInts)
_SCALAR = {
    ps.Add: lambda *a: reduce(operator.add, a),
    ps.Mul: lambda *a: reduce(operator.mul, a),
    ps.Sub: operator.sub,
    ps.IntDiv: operator.floordiv,
    ps.Maximum: max,
    ps.Minimum: min,
    ps.Neg: operator.neg,
    ps.Identity: lambda a: a,
}
_PASS = (ScalarFromTensor, TensorFromScalar, SpecifyShape)  # value of the first input


def _is_int(var):
    return var.type.dtype.startswith(("int", "uint"))


def _program(inputs, outputs, node_fn):
    """A plain Python function of ``inputs``' values returning the tuple of ``outputs``' values.

    Each node of the graph becomes ``node_fn(node)``, run on Python values (returning a tuple
    when the node has several outputs); the result refers to no PyTensor object, so
    torch.compile can trace it.
    """
    slots = {v: i for i, v in enumerate(inputs)}
    steps, n = [], len(inputs)
    for node in toposort(outputs):
        refs = tuple((False, _constant(v)) if isinstance(v, Constant) else (True, slots[v])
                     for v in node.inputs)
        steps.append((node_fn(node), refs, len(node.outputs) > 1))
        for out in node.outputs:
            slots[out] = n
            n += 1
    outs = tuple((False, _constant(v)) if isinstance(v, Constant) else (True, slots[v])
                 for v in outputs)

    def run(*args):
        vals = list(args)
        for fn, refs, several in steps:
            result = fn(*[vals[r] if is_slot else r for is_slot, r in refs])
            if several:
                vals.extend(result)
            else:
                vals.append(result)
        return tuple(vals[r] if is_slot else r for is_slot, r in outs)

    return run


def _constant(v):
    data = np.asarray(v.data)
    return data.tolist() if data.ndim else data.item()


def _scalar_fn(scalar_op):
    """A Python function for an integer scalar op (or a Composite of them), or None.

    A Composite of several outputs returns them as a tuple.
    """
    if isinstance(scalar_op, ps.Cast):
        return (lambda a: a) if scalar_op.o_type.dtype.startswith(("int", "uint")) else None
    if isinstance(scalar_op, Composite):
        fg = scalar_op.fgraph
        if any(_scalar_fn(n.op) is None for n in fg.apply_nodes):
            return None
        run = _program(fg.inputs, fg.outputs, lambda n: _scalar_fn(n.op))
        return run if len(fg.outputs) > 1 else (lambda *args: run(*args)[0])
    return _SCALAR.get(type(scalar_op))


def _supported(node):
    op = node.op
    if not all(_is_int(v) and v.type.ndim <= 1 for v in node.inputs + node.outputs):
        return False
    if isinstance(op, Elemwise):
        return _scalar_fn(op.scalar_op) is not None
    return isinstance(op, (DimShuffle, MakeVector, Subtensor) + _PASS)


def _node_fn(node):
    """``node``'s computation on ints (0-d) and lists of ints (vectors)."""
    op = node.op
    if isinstance(op, Elemwise):
        fn = _scalar_fn(op.scalar_op)

        several = len(node.outputs) > 1

        def elemwise(*args):
            lens = [len(a) for a in args if isinstance(a, list)]
            if not lens:
                return fn(*args)
            out = [fn(*[(a[i] if len(a) > 1 else a[0]) if isinstance(a, list) else a
                        for a in args])
                   for i in range(max(lens))]  # vectors of length 1 broadcast
            return tuple(list(o) for o in zip(*out)) if several else out

        return elemwise
    if isinstance(op, DimShuffle):
        if node.outputs[0].ndim == 0:
            return lambda x: x[0] if isinstance(x, list) else x
        return lambda x: x if isinstance(x, list) else [x]
    if isinstance(op, MakeVector):
        return lambda *xs: list(xs)
    if isinstance(op, Subtensor):
        idx_list = op.idx_list
        return lambda x, *idx: x[unflatten_index_variables(idx, idx_list)[0]]
    return lambda x, *_: x  # _PASS


class HostShape(Op):
    """``expr`` (an int scalar or vector) computed in Python from its inputs' shapes, not values.

    ``shape_inputs[i]`` stands for ``inputs[i].shape`` in ``expr``, whose Ops are the integer
    arithmetic ``_supported`` accepts. Two HostShapes are equal when they compute the same
    ``expr`` of the same stand-ins (PyTensor merges their nodes).
    """

    __props__ = ("shape_inputs", "expr")

    def __init__(self, shape_inputs, expr):
        self.shape_inputs = tuple(shape_inputs)
        self.expr = expr
        self._run = _program(self.shape_inputs, [expr], _node_fn)

    def __getstate__(self):  # the compiled program is a closure: rebuilt on unpickling
        return {k: v for k, v in self.__dict__.items() if k != "_run"}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._run = _program(self.shape_inputs, [self.expr], _node_fn)

    def make_node(self, *sources):
        if len(sources) != len(self.shape_inputs):
            raise TypeError(f"HostShape: expected {len(self.shape_inputs)} inputs")
        return Apply(self, [pt.as_tensor_variable(s) for s in sources], [self.expr.type()])

    def evaluate(self, shapes):
        """``expr`` for the given input shapes (sequences of ints): an int, or a list of ints."""
        return self._run(*[list(s) for s in shapes])[0]

    def perform(self, node, inputs, outputs):
        out = self.evaluate([x.shape for x in inputs])
        outputs[0][0] = np.asarray(out, dtype=node.outputs[0].dtype)

    def __str__(self):
        return "HostShape"


def host_shape(var):
    """``var`` as a ``HostShape`` of the variables whose shapes it reads, or None.

    None when ``var`` reads no shapes, or anything other than shapes and constants, or uses an
    Op other than simple integer arithmetic.
    """
    placeholders, replace = {}, {}
    stack, seen = [var], set()
    while stack:
        v = stack.pop()
        if v in seen or isinstance(v, Constant):
            continue
        seen.add(v)
        if v.owner is None:
            return None
        op = v.owner.op
        if isinstance(op, (Shape, Shape_i)):
            src = v.owner.inputs[0]
            if src not in placeholders:
                placeholders[src] = pt.vector(dtype="int64", shape=(src.type.ndim,))
            replace[v] = placeholders[src] if isinstance(op, Shape) else placeholders[src][op.i]
        elif _supported(v.owner):
            stack.extend(v.owner.inputs)
        else:
            return None
    if not placeholders:
        return None
    expr = clone_replace(var, replace)
    sources = list(placeholders)
    return HostShape([placeholders[s] for s in sources], expr)(*sources)


@node_rewriter([Conv2dGradInputs, Conv2dGradWeights])
def local_conv_host_shape(fgraph, node):
    """Make the size input of a conv gradient Op a ``HostShape`` when it is computed from shapes."""
    size = node.inputs[2]
    if isinstance(size, Constant) or (size.owner is not None
                                      and isinstance(size.owner.op, HostShape)):
        return None
    new_size = host_shape(size)
    if new_size is None:
        return None
    return node.op.make_node(node.inputs[0], node.inputs[1], new_size).outputs


@node_rewriter([Reshape])
def local_reshape_host_shape(fgraph, node):
    """Make the shape of a ``Reshape`` a ``HostShape`` when it is computed from shapes.

    PyTensor's PyTorch reshape reads a computed shape back from a tensor, which splits
    torch.compile's graph (e.g. ``h.reshape((Z.shape[0], 512, 4, 4))``, ``flatten`` and their
    gradients when the batch size is not static). Not for JAX, whose reshape takes only
    ``Shape``/``JAXShapeTuple`` shapes (``lib.dispatch.jax`` handles those).
    """
    x, shape = node.inputs
    if isinstance(shape, Constant) or (shape.owner is not None
                                       and isinstance(shape.owner.op, HostShape)):
        return None
    new_shape = host_shape(shape)
    if new_shape is None:
        return None
    (out,) = node.op.make_node(x, new_shape).outputs
    return [node.outputs[0].type.filter_variable(out)]  # keeps the static shape it had


@node_rewriter([Alloc, AllocEmpty])
def local_alloc_host_shape(fgraph, node):
    """Make each size of an ``Alloc``/``AllocEmpty`` a ``HostShape`` when it is computed from
    shapes (e.g. the gradient of a mean over a batch of unknown size: its count is
    ``Shape_i{0}(X) * ...``), which PyTensor's PyTorch kernel would read back from a tensor."""
    sizes = node.inputs[1:] if isinstance(node.op, Alloc) else node.inputs
    new = [s if isinstance(s, Constant) or (s.owner is not None
                                            and isinstance(s.owner.op, HostShape))
           else host_shape(s) for s in sizes]
    if all(n is None or n is s for n, s in zip(new, sizes)):
        return None
    new = [s if n is None else n for n, s in zip(new, sizes)]
    inputs = [node.inputs[0], *new] if isinstance(node.op, Alloc) else new
    (out,) = node.op.make_node(*inputs).outputs
    return [node.outputs[0].type.filter_variable(out)]


# After canonicalize/specialize (which reduce shape graphs to Shape_i and constants), with
# PyTensor's own JAX rewrites.
optdb.register("conv_host_shape", dfs_rewriter(local_conv_host_shape), "jax", "pytorch",
               position=100)
optdb.register("reshape_host_shape", dfs_rewriter(local_reshape_host_shape), "pytorch",
               position=100)
optdb.register("alloc_host_shape", dfs_rewriter(local_alloc_host_shape), "jax", "pytorch",
               position=100)
