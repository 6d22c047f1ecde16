"""The original dcgan_code ``lib/``, rebuilt on PyTensor.

Importing ``lib`` sets PyTensor's ``floatX`` to float32.
"""
import pytensor

# PORT: the original ran with THEANO_FLAGS=floatX=float32; every graph here is float32 by
# construction, so the port sets it once, before any graph (or PyTensor's JAX code) is built.
pytensor.config.floatX = "float32"
