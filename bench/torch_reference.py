"""The paper's faces DCGAN (faces/train_uncond_dcgan.py) in eager PyTorch, the same math as the port.

The yardstick of bench/train_step.py and an independent check of the PyTensor graph
(tests/test_bench.py): the same layers, batchnorm (batch statistics, eps 1e-8), costs, Adam
(lr 2e-4, b1 0.5, b2 0.999, eps 1e-8, L2 1e-5 added to the gradient) and the original's
alternation, one G update (G parameters only) then one D update (D parameters only).

Parameters come from, and go back to, the port's shared variables (``Reference(...)``,
``Reference.export``). ``device='cuda'`` runs it on a GPU, in true float32 (no TF32), as our JAX
backend does there. Our convolutions are TRUE convolutions (cuDNN's default mode, as the
original's ``dnn_conv``) and torch's are cross-correlations, so every conv and deconv kernel is
stored here flipped in both spatial axes; the layouts themselves agree: conv (C_out, C_in, k, k),
deconv (C_in, C_out, k, k) as ``ConvTranspose2d``. tests/test_bench.py shows that without the
flip the outputs differ.
"""
import numpy as np
import torch
import torch.nn.functional as F

# the faces model's geometry: 5x5 kernels, stride 2, padding 2 (4 -> 8 -> 16 -> 32 -> 64)
STRIDE, PAD = 2, 2
BN_EPS = 1e-8       # the original batchnorm's epsilon
LEAK = 0.2          # lrelu slope

# which parameters are conv/deconv kernels (flipped between the port and torch)
GEN_KERNELS = (3, 6, 9, 12)     # gw2, gw3, gw4, gwx
DISCRIM_KERNELS = (0, 1, 4, 7)  # dw, dw2, dw3, dw4


def batchnorm(X, g, b):
    """Batch statistics over (0, 2, 3) for 4-D, over 0 for 2-D; biased variance, then g*x + b."""
    return F.batch_norm(X, None, None, g, b, training=True, eps=BN_EPS)


def conv(X, w):
    """The port's ``dnn_conv(X, w, subsample=(2, 2), border_mode=(2, 2))``; ``w`` flipped."""
    return F.conv2d(X, w, stride=STRIDE, padding=PAD)


def deconv(X, w):
    """The port's ``deconv(X, w, subsample=(2, 2), border_mode=(2, 2))``: H -> 2H; ``w`` flipped."""
    # output_padding=1: a stride-2 conv maps both 2H and 2H-1 to H; the original's deconv is 2H
    return F.conv_transpose2d(X, w, stride=STRIDE, padding=PAD, output_padding=1)


def lrelu(x):
    return F.leaky_relu(x, LEAK)


def gen(Z, w, g, b, w2, g2, b2, w3, g3, b3, w4, g4, b4, wx):
    h = F.relu(batchnorm(Z @ w, g, b))                        # (n, ngf*8*4*4)
    h = h.reshape(h.shape[0], w2.shape[0], 4, 4)              # (n, ngf*8, 4, 4)
    h2 = F.relu(batchnorm(deconv(h, w2), g2, b2))             # (n, ngf*4, 8, 8)
    h3 = F.relu(batchnorm(deconv(h2, w3), g3, b3))            # (n, ngf*2, 16, 16)
    h4 = F.relu(batchnorm(deconv(h3, w4), g4, b4))            # (n, ngf, 32, 32)
    x = torch.tanh(deconv(h4, wx))                            # (n, nc, 64, 64)
    return x


def discrim(X, w, w2, g2, b2, w3, g3, b3, w4, g4, b4, wy):
    """The discriminator's logit (n, 1); the probability is its sigmoid (``discrim_p``)."""
    h = lrelu(conv(X, w))                                     # (n, ndf, 32, 32)
    h2 = lrelu(batchnorm(conv(h, w2), g2, b2))                # (n, ndf*2, 16, 16)
    h3 = lrelu(batchnorm(conv(h2, w3), g3, b3))               # (n, ndf*4, 8, 8)
    h4 = lrelu(batchnorm(conv(h3, w4), g4, b4))               # (n, ndf*8, 4, 4)
    h4 = torch.flatten(h4, 1)                                 # (n, ndf*8*4*4)
    return h4 @ wy                                            # (n, 1)


def discrim_p(X, *discrim_params):
    """D(X): the sigmoid of ``discrim``."""
    return torch.sigmoid(discrim(X, *discrim_params))


def bce(logit, target):
    """Mean binary cross-entropy of sigmoid(logit), from the logit (the port's softplus form)."""
    return F.binary_cross_entropy_with_logits(logit, torch.full_like(logit, target))


def _to_torch(values, kernels, flip=True, device="cpu"):
    out = []
    for i, v in enumerate(values):
        v = np.asarray(v, dtype=np.float32)
        if flip and i in kernels:
            v = v[:, :, ::-1, ::-1]
        out.append(torch.tensor(np.ascontiguousarray(v), device=device, requires_grad=True))
    return out


def _to_numpy(params, kernels, flip=True):
    out = []
    for i, p in enumerate(params):
        v = p.detach().cpu().numpy()
        if flip and i in kernels:
            v = v[:, :, ::-1, ::-1]
        out.append(np.ascontiguousarray(v))
    return out


class Reference:
    """The faces DCGAN's two updates and sampling, on parameters copied from the port.

    ``gen_values``/``discrim_values``: arrays in the port's order and layout (as
    ``[p.get_value() for p in gen_params]``). ``flip=False`` loads the kernels unflipped (wrong:
    only for the test that shows the flip is needed). ``device``: where the parameters live and
    the updates run (``'cpu'``, ``'cuda'``); inputs and outputs are NumPy arrays either way.
    """

    def __init__(self, gen_values, discrim_values, lr=0.0002, b1=0.5, b2=0.999, e=1e-8,
                 l2=1e-5, flip=True, device="cpu"):
        self.flip = flip
        self.device = torch.device(device)
        if self.device.type == "cuda":
            # true float32 on the GPU, as the original's cuDNN and our JAX backend compute (by
            # default torch runs float32 convolutions in TF32 on recent NVIDIA GPUs)
            torch.backends.cudnn.allow_tf32 = False
            torch.backends.cuda.matmul.allow_tf32 = False
        self.gen_params = _to_torch(gen_values, GEN_KERNELS, flip, self.device)
        self.discrim_params = _to_torch(discrim_values, DISCRIM_KERNELS, flip, self.device)
        # torch's Adam: p -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + e), weight_decay added to
        # the gradient -- the port's (and the original's) Adam with Regularizer(l2=l2)
        adam = dict(lr=lr, betas=(b1, b2), eps=e, weight_decay=l2)
        self.g_opt = torch.optim.Adam(self.gen_params, **adam)
        self.d_opt = torch.optim.Adam(self.discrim_params, **adam)

    @classmethod
    def init(cls, ngf, ndf, nz=100, nc=3, seed=0, **kwargs):
        """A model with the original's initialisation (N(0, 0.02) weights, N(1, 0.02) gains, zero
        biases) drawn with NumPy, without importing PyTensor (for honest memory numbers)."""
        r = np.random.RandomState(seed)

        def w(*shape):
            return r.normal(0., 0.02, shape)

        def g(n):
            return r.normal(1., 0.02, n)

        def b(n):
            return np.zeros(n)

        f = ngf * 8 * 4 * 4
        gen_values = [w(nz, f), g(f), b(f),
                      w(ngf * 8, ngf * 4, 5, 5), g(ngf * 4), b(ngf * 4),
                      w(ngf * 4, ngf * 2, 5, 5), g(ngf * 2), b(ngf * 2),
                      w(ngf * 2, ngf, 5, 5), g(ngf), b(ngf),
                      w(ngf, nc, 5, 5)]
        discrim_values = [w(ndf, nc, 5, 5),
                          w(ndf * 2, ndf, 5, 5), g(ndf * 2), b(ndf * 2),
                          w(ndf * 4, ndf * 2, 5, 5), g(ndf * 4), b(ndf * 4),
                          w(ndf * 8, ndf * 4, 5, 5), g(ndf * 8), b(ndf * 8),
                          w(ndf * 8 * 4 * 4, 1)]
        return cls(gen_values, discrim_values, **kwargs)

    def export(self):
        """(gen_values, discrim_values) as NumPy arrays in the port's layout."""
        return (_to_numpy(self.gen_params, GEN_KERNELS, self.flip),
                _to_numpy(self.discrim_params, DISCRIM_KERNELS, self.flip))

    @staticmethod
    def _costs(logit_real, logit_gen):
        d_cost_real = bce(logit_real, 1.)
        d_cost_gen = bce(logit_gen, 0.)
        g_cost_d = bce(logit_gen, 1.)
        d_cost = d_cost_real + d_cost_gen
        g_cost = g_cost_d
        return [g_cost, d_cost, g_cost_d, d_cost_real, d_cost_gen]

    def train_g(self, X, Z):
        """One G update: maximise log D(G(z)). Returns the five costs before the update."""
        X, Z = self._tensors(X, Z)
        gX = gen(Z, *self.gen_params)
        logit_gen = discrim(gX, *self.discrim_params)
        with torch.no_grad():  # only reported (the costs), not differentiated
            logit_real = discrim(X, *self.discrim_params)
        cost = self._costs(logit_real, logit_gen)
        self.g_opt.zero_grad(set_to_none=True)
        cost[0].backward(inputs=self.gen_params)  # no D weight gradients computed
        self.g_opt.step()
        return [c.item() for c in cost]

    def train_d(self, X, Z):
        """One D update: maximise log D(x) + log(1 - D(G(z))). Returns the costs before it."""
        X, Z = self._tensors(X, Z)
        with torch.no_grad():
            gX = gen(Z, *self.gen_params)
        logit_real = discrim(X, *self.discrim_params)
        logit_gen = discrim(gX, *self.discrim_params)
        cost = self._costs(logit_real, logit_gen)
        self.d_opt.zero_grad(set_to_none=True)
        cost[1].backward(inputs=self.discrim_params)
        self.d_opt.step()
        return [c.item() for c in cost]

    def _tensors(self, *arrays):
        return [torch.as_tensor(a, device=self.device) for a in arrays]

    def gen(self, Z):
        """G(z) (n, nc, npx, npx) with batch statistics, as the port's ``_gen``."""
        with torch.no_grad():
            return gen(*self._tensors(Z), *self.gen_params).cpu().numpy()

    def discrim_p(self, X):
        """D(X) (n, 1)."""
        with torch.no_grad():
            return discrim_p(*self._tensors(X), *self.discrim_params).cpu().numpy()
