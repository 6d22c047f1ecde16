"""The kernel flip of a true convolution as a node of its own, for the PyTorch backend.

The original's convolutions are true convolutions (``conv_mode='conv'``): every Op flips its
kernel, and the weight gradient Op flips its result back. In the PyTorch kernels each Op did
that itself, so one weight was flipped once per use (a D weight feeds four Ops per update) and
each of a weight's two gradients was flipped before they were summed. The rewrites here, under
the ``pytorch`` tag, move the flips into the graph:

- ``Conv2d{conv}(X, w)`` -> ``Conv2d{cross}(X, FlipHW(w))``, and the same for
  ``Conv2dGradInputs{conv}(w, top, size)``;
- ``Conv2dGradWeights{conv}(X, top, size)`` -> ``FlipHW(Conv2dGradWeights{cross}(X, top, size))``;
- ``FlipHW(a) + FlipHW(b) + ...`` -> ``FlipHW(a + b) + ...`` (a flip is a permutation: the sum
  of the flipped is the flipped sum, element for element).

PyTensor's merge then computes one ``FlipHW(w)`` per weight. A faces update at paper scale then
flips 12 tensors instead of 26 (measured, bench/README.md). The numbers do not change: a flip
moves elements, and the cross-correlation of a flipped kernel is the true convolution.
"""
import numpy as np
import pytensor.tensor as pt
from pytensor.compile import optdb
from pytensor.graph.basic import Apply
from pytensor.graph.op import Op
from pytensor.graph.rewriting.basic import in2out, node_rewriter
from pytensor.scalar.basic import Add
from pytensor.tensor.elemwise import Elemwise

from lib.conv_ops import Conv2d, Conv2dGradInputs, Conv2dGradWeights


class FlipHW(Op):
    """``x[:, :, ::-1, ::-1]`` of a 4-D tensor, as a new contiguous array."""

    __props__ = ()

    def make_node(self, x):
        x = pt.as_tensor_variable(x)
        if x.ndim != 4:
            raise TypeError(f"FlipHW: expected a 4-D tensor, got {x.type}")
        return Apply(self, [x], [x.type()])

    def perform(self, node, inputs, outputs):
        outputs[0][0] = np.ascontiguousarray(inputs[0][:, :, ::-1, ::-1])

    def infer_shape(self, *args):
        node, shapes = args[-2:]  # PyTensor 3.0: (fgraph, node, shapes); later: (node, shapes)
        return [shapes[0]]

    def pullback(self, inputs, outputs, output_grads):
        return [flip_hw(output_grads[0])]


flip_hw = FlipHW()


def _cross(op):
    """``op`` as a cross-correlation of the same geometry."""
    return type(op)(subsample=op.subsample, padding=op.padding, conv_mode="cross")


@node_rewriter([Conv2d, Conv2dGradInputs])
def local_flip_kernel(fgraph, node):
    """A true convolution's kernel, flipped by ``FlipHW``, into a cross-correlation."""
    if not node.op.flip:
        return None
    inputs = list(node.inputs)
    k = 1 if isinstance(node.op, Conv2d) else 0  # Conv2d(X, w); Conv2dGradInputs(w, top, size)
    inputs[k] = flip_hw(inputs[k])
    return _cross(node.op).make_node(*inputs).outputs


@node_rewriter([Conv2dGradWeights])
def local_flip_weight_gradient(fgraph, node):
    """A true convolution's weight gradient: the cross-correlation's, flipped."""
    if not node.op.flip:
        return None
    return [flip_hw(_cross(node.op).make_node(*node.inputs).outputs[0])]


@node_rewriter([Elemwise])
def local_add_flips(fgraph, node):
    """``FlipHW(a) + FlipHW(b) + rest`` -> ``FlipHW(a + b) + rest``, the flipped terms summed in
    their order, at the place of the first."""
    if not isinstance(node.op.scalar_op, Add):
        return None
    out_type = node.outputs[0].type
    flipped = [i for i, v in enumerate(node.inputs)  # of the output's shape (no broadcasting)
               if v.owner is not None and isinstance(v.owner.op, FlipHW)
               and v.type.broadcastable == out_type.broadcastable]
    if len(flipped) < 2:
        return None
    total = flip_hw(pt.add(*[node.inputs[i].owner.inputs[0] for i in flipped]))
    rest = [v for i, v in enumerate(node.inputs) if i not in flipped[1:]]
    rest[flipped[0]] = total
    return [out_type.filter_variable(rest[0] if len(rest) == 1 else pt.add(*rest))]


# Before merge2 (position 49), which then leaves one FlipHW per weight.
optdb.register("flip_kernels", in2out(local_flip_kernel, local_flip_weight_gradient,
                                      local_add_flips, name="flip_kernels"),
               "pytorch", position=48)
