"""The original costs: ``Cost(y_true, y_pred)`` -> a scalar mean; plus elementwise binary cross-entropy."""
import numpy as np
import pytensor.scalar as ps
import pytensor.tensor as T
from pytensor.tensor.elemwise import Elemwise

import lib  # noqa: F401  (sets floatX)


def _logit_of(p):
    """The logit z if ``p`` is sigmoid(z) (ours from lib.activations, or PyTensor's), else None."""
    logit = getattr(p.tag, 'logit', None)
    if logit is not None:
        return logit
    if p.owner is not None and isinstance(p.owner.op, Elemwise) \
            and isinstance(p.owner.op.scalar_op, ps.Sigmoid):
        return p.owner.inputs[0]
    return None


def binary_crossentropy(output, target):
    """Elementwise -(t log p + (1-t) log(1-p)) of probabilities ``output`` p and ``target`` t.

    Any broadcastable shapes. When ``output`` is a sigmoid of a logit z (``activations.Sigmoid``
    or ``pt.sigmoid``), it is computed as t softplus(-z) + (1-t) softplus(z): finite (|z|) for
    saturated z, as Theano's log(sigmoid) -> softplus rewrite made it.
    """
    # PORT: PyTensor has no nnet.binary_crossentropy; the softplus form is written out here instead
    # of relying on a graph rewrite, so every backend computes the same finite costs.
    target = T.as_tensor_variable(target)
    z = _logit_of(output)
    if z is not None:
        return target * T.softplus(-z) + (1 - target) * T.softplus(z)
    # log1p(-p), not log(1 - p): what Theano's log1p rewrite computed (exact near p = 0)
    return -(target * T.log(output) + (1 - target) * T.log1p(-output))


def categorical_crossentropy(output, target):
    """Per-row -sum(t log p) of probabilities ``output`` (N, K) and one-hot ``target`` (N, K),
    or -log p[i, target[i]] for integer class labels ``target`` (N,). Returns (N,)."""
    # PORT: PyTensor has no nnet.categorical_crossentropy; this is its definition.
    target = T.as_tensor_variable(target)
    if target.ndim == output.ndim - 1 and target.dtype.startswith('int'):
        return -T.log(output[T.arange(target.shape[0]), target])
    return -T.sum(target * T.log(output), axis=output.ndim - 1)


def CategoricalCrossEntropy(y_true, y_pred):
    """Mean categorical cross-entropy of predictions ``y_pred`` (N, K) against ``y_true``."""
    return categorical_crossentropy(y_pred, y_true).mean()


def BinaryCrossEntropy(y_true, y_pred):
    """Mean binary cross-entropy of probabilities ``y_pred`` against ``y_true`` (same shape).

    Note the order: ``BCE(y_true, y_pred)`` but ``binary_crossentropy(output, target)``.
    """
    return binary_crossentropy(y_pred, y_true).mean()


def MeanSquaredError(y_true, y_pred):
    """mean((y_pred - y_true)^2) over all entries."""
    return T.sqr(y_pred - y_true).mean()


def MeanAbsoluteError(y_true, y_pred):
    """mean(|y_pred - y_true|) over all entries."""
    return abs(y_pred - y_true).mean()


def SquaredHinge(y_true, y_pred):
    """mean(max(1 - y_true*y_pred, 0)^2), labels ``y_true`` in {-1, 1}."""
    return T.sqr(T.maximum(np.float32(1.0) - y_true * y_pred, np.float32(0.0))).mean()


def Hinge(y_true, y_pred):
    """mean(max(1 - y_true*y_pred, 0)), labels ``y_true`` in {-1, 1}."""
    return T.maximum(np.float32(1.0) - y_true * y_pred, np.float32(0.0)).mean()


cce = CCE = CategoricalCrossEntropy
bce = BCE = BinaryCrossEntropy
mse = MSE = MeanSquaredError
mae = MAE = MeanAbsoluteError
