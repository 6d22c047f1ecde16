"""JAX kernels for the convolution Ops of ``lib.conv_ops``: the GPU path.

Importing this module registers them with PyTensor's ``jax_funcify``;
``lib.backend.get_mode('jax')`` does it. The forward Op is ``lax.conv_general_dilated`` (NCHW
images, OIHW kernels, the kernel flipped for ``conv_mode='conv'``); the two gradient Ops are its
exact linear transposes (``jax.linear_transpose``), i.e. the same XLA convolutions as JAX's own
autodiff, for any stride and (asymmetric) padding.

XLA compiles for static shapes, so the size input of a gradient Op (``in_hw``, ``k_hw``) must be
known when the function is traced: a constant (static shapes: ``sharedX`` parameters, declared
image shapes, ``deconv(..., output_shape=...)``), or a graph of shapes that
``lib.dispatch.host_shape`` turns into host integers. Anything else raises NotImplementedError.
The same host integers serve PyTensor's JAX reshape (``local_jax_shape_tuple_host_shape``): the
gradient of ``flatten(conv2d(X, w))`` reshapes to sizes computed from X's shape.

Precision: the convolutions follow ``jax_default_matmul_precision`` like every ``dot`` of the
graph; on recent NVIDIA GPUs XLA's default runs float32 convolutions in TF32. Importing this
module sets it to ``'highest'`` (true float32, as the original's cuDNN computed) unless
``$JAX_DEFAULT_MATMUL_PRECISION`` already chose one.
"""
import os

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from pytensor.compile import optdb
from pytensor.graph.basic import Constant
from pytensor.graph.rewriting.basic import dfs_rewriter, node_rewriter
from pytensor.link.jax.dispatch import jax_funcify
from pytensor.link.jax.dispatch.shape import JAXShapeTuple
from pytensor.tensor.basic import MakeVector, Split
from pytensor.tensor.math import Prod, Sum
from pytensor.tensor.shape import Shape_i

from lib.conv_ops import Conv2d, Conv2dGradInputs, Conv2dGradWeights, check_geometry
from lib.dispatch.host_shape import HostShape, host_shape
from lib.reduce_ops import AXES, ChannelSum

_DIMENSION_NUMBERS = ("NCHW", "OIHW", "NCHW")

if not os.environ.get("JAX_DEFAULT_MATMUL_PRECISION"):
    # PORT: numerical equivalence with the original's float32 math; TF32 would be a silent change
    jax.config.update("jax_default_matmul_precision", "highest")


def _conv(op, dtype):
    """The forward convolution of ``op``'s geometry, computed in ``dtype``."""
    stride, padding, flip = op.subsample, [tuple(p) for p in op.padding], op.flip

    def conv(X, w):
        if X.shape[1] != w.shape[1]:  # static shapes: checked while tracing
            raise ValueError(f"conv2d: X has {X.shape[1]} channels but w expects {w.shape[1]}")
        if flip:
            w = w[:, :, ::-1, ::-1]
        return lax.conv_general_dilated(X.astype(dtype), w.astype(dtype), window_strides=stride,
                                        padding=padding, dimension_numbers=_DIMENSION_NUMBERS)

    return conv


def _static_size(op, node, name):
    """A function reading the size input ``name`` (``node.inputs[2]``) as two Python ints."""
    size = node.inputs[2]
    if isinstance(size, Constant):
        const = tuple(int(v) for v in np.asarray(size.data))
        return lambda _: const

    def read(value):
        if isinstance(value, jax.core.Tracer):
            raise NotImplementedError(
                f"{op}: the JAX backend needs {name} (the spatial size this gradient produces) "
                "when the function is compiled, but the graph computes it from values. Give the "
                "graph static shapes (sharedX parameters, inputs such as "
                "pt.tensor4(shape=(None, C, H, W))) or call deconv(..., output_shape=(H, W)).")
        return tuple(int(v) for v in np.asarray(value))  # HostShape's tuple, or concrete values

    return read


@jax_funcify.register(Conv2d)
def jax_funcify_Conv2d(op, node, **kwargs):
    return _conv(op, node.outputs[0].dtype)


@jax_funcify.register(Conv2dGradInputs)
def jax_funcify_Conv2dGradInputs(op, node, **kwargs):
    dtype = node.outputs[0].dtype
    conv, size = _conv(op, dtype), _static_size(op, node, "in_hw")

    def conv2d_grad_inputs(w, top, in_hw):
        if top.shape[1] != w.shape[0]:
            raise ValueError(f"deconv: input has {top.shape[1]} channels but w expects "
                             f"{w.shape[0]} (w.shape[0])")
        in_hw = size(in_hw)
        check_geometry("deconv", in_hw, w.shape[2:], top.shape[2:], op.subsample, op.padding)
        x = jax.ShapeDtypeStruct((top.shape[0], w.shape[1]) + in_hw, dtype)
        (dX,) = jax.linear_transpose(lambda X: conv(X, w), x)(top.astype(dtype))
        return dX

    return conv2d_grad_inputs


@jax_funcify.register(Conv2dGradWeights)
def jax_funcify_Conv2dGradWeights(op, node, **kwargs):
    dtype = node.outputs[0].dtype
    conv, size = _conv(op, dtype), _static_size(op, node, "k_hw")

    def conv2d_grad_weights(X, top, k_hw):
        k_hw = size(k_hw)
        check_geometry("conv2d weight gradient", X.shape[2:], k_hw, top.shape[2:],
                       op.subsample, op.padding)
        w = jax.ShapeDtypeStruct((top.shape[1], X.shape[1]) + k_hw, dtype)
        (dw,) = jax.linear_transpose(lambda W: conv(X, W), w)(top.astype(dtype))
        return dw

    return conv2d_grad_weights


@jax_funcify.register(ChannelSum)
def jax_funcify_ChannelSum(op, node, **kwargs):
    dtype = node.outputs[0].dtype

    # float64 accumulation as lib.reduce_ops (PyTensor's JAX backend enables x64)
    acc = "float64" if jax.config.jax_enable_x64 else None

    def channel_sum(X):
        return jnp.sum(X, axis=AXES, dtype=acc).astype(dtype)

    return channel_sum


@jax_funcify.register(HostShape)
def jax_funcify_HostShape(op, node, **kwargs):
    # Traced arrays have static shapes: the result is Python ints, static for XLA.
    def host_shape(*sources):
        value = op.evaluate([np.shape(x) for x in sources])
        return tuple(int(v) for v in value) if isinstance(value, list) else int(value)

    return host_shape


@node_rewriter([JAXShapeTuple])
def local_jax_shape_tuple_host_shape(fgraph, node):
    """Compute the sizes of a ``JAXShapeTuple`` (a reshape's shape) on the host when they are
    arithmetic on shapes: PyTensor's JAX reshape needs them concrete.

    E.g. the gradient of ``flatten(conv2d(X, w))`` reshapes back to sizes computed from X's
    shape, which JAX refuses when X's shape is not static (the train scripts' ``T.tensor4()``).
    """
    sizes, changed = list(node.inputs), False
    for i, size in enumerate(sizes):
        if isinstance(size, Constant) or (
                size.owner is not None and isinstance(size.owner.op, (Shape_i, HostShape))):
            continue
        new = host_shape(size)
        if new is not None:
            sizes[i], changed = new, True
    return JAXShapeTuple()(*sizes).owner.outputs if changed else None


# after PyTensor's "jax_shape_parameter_as_tuple" (position 100), which makes the tuples
optdb.register("jax_shape_tuple_host_shape", dfs_rewriter(local_jax_shape_tuple_host_shape),
               "jax", position=100.5)


@node_rewriter([Sum, Prod])
def local_jax_float32_accumulation(fgraph, node):
    """A float32 sum or product accumulates in float32 when JAX runs without 64-bit types.

    PyTensor accumulates float32 sums in float64 (``acc_dtype``, as Theano did, and as the C
    backend computes them). PyTensor's JAX backend turns x64 off for float32 graphs, so JAX
    truncated that float64 request to float32 anyway, with a warning per call ("Explicitly
    requested dtype float64 ... will be truncated"). Asking for float32 computes the same
    numbers without the request.
    """
    op = node.op
    if (jax.config.jax_enable_x64 or op.acc_dtype != "float64"
            or node.inputs[0].dtype != "float32"):
        return None
    return op.clone(acc_dtype="float32")(*node.inputs, return_list=True)


optdb.register("jax_float32_accumulation", dfs_rewriter(local_jax_float32_accumulation),
               "jax", position=100.6)


@jax_funcify.register(MakeVector)
def jax_funcify_MakeVector(op, **kwargs):
    """A vector of scalars (e.g. a shape, cast to float32 for a mean's count) in the dtype JAX
    computes it in: int64 is int32 when JAX runs without 64-bit types, as PyTensor's JAX backend
    runs float32 graphs.

    PyTensor's own kernel asked for ``op.dtype`` (int64 for shapes), which JAX truncated to int32
    with a warning per call site ("Explicitly requested dtype int64 ... will be truncated"). The
    canonical dtype is what JAX makes of the request anyway: the same values, no request.
    """
    dtype = jax.dtypes.canonicalize_dtype(op.dtype)

    def makevector(*x):
        return jnp.array(x, dtype=dtype)

    return makevector


_pytensor_split = jax_funcify.dispatch(Split)


@node_rewriter([Split])
def local_jax_split_host_shape(fgraph, node):
    """Compute the sizes of a ``Split`` on the host when they are arithmetic on shapes: JAX
    splits at concrete positions only.

    E.g. the gradient of a concatenation (mnist's ``conv_cond_concat`` joins y's maps to the
    images along the channels) splits at the joined inputs' sizes, ``Shape_i`` of traced values.
    """
    x, axis, splits = node.inputs
    if not isinstance(axis, Constant) or isinstance(splits, Constant) or (
            splits.owner is not None and isinstance(splits.owner.op, HostShape)):
        return None
    new = host_shape(splits)
    if new is None:
        return None
    return [old.type.filter_variable(out) for old, out in
            zip(node.outputs, node.op.make_node(x, axis, new).outputs)]


optdb.register("jax_split_host_shape", dfs_rewriter(local_jax_split_host_shape), "jax",
               position=100.5)


@jax_funcify.register(Split)
def jax_funcify_Split(op, node, **kwargs):
    """A ``Split`` whose sizes are a ``HostShape`` (Python ints when traced) splits at those
    concrete positions; any other, as PyTensor's own kernel."""
    _, axis, splits = node.inputs
    if not (isinstance(axis, Constant) and splits.owner is not None
            and isinstance(splits.owner.op, HostShape)):
        return _pytensor_split(op, node=node, **kwargs)
    axis = int(axis.data)

    def split(x, _axis, sizes):
        return jnp.split(x, np.cumsum(sizes[:-1]).tolist(), axis=axis)

    return split
