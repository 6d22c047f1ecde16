"""The attribute network: the faces yardstick that no model under test trains.

A small convolutional network, built and trained with this project's own ``lib/`` ops, that reads
a 64x64 face (the training scripts' transform: NCHW in [-1, 1]) and predicts the labels the
synthetic renderer (faces/synthetic.py) knows:

    smiling, glasses, long_hair   binary (sigmoid)
    hair colour                   one of the renderer's 6 hair colours (softmax)
    yaw, skin, scale, dx, dy      regression

Its penultimate layer (``nfeat`` ReLU units) is the feature space of the yardstick's Frechet
distance and precision/recall (faces/yardstick.py). It has no batchnorm, so a face's features do
not depend on the rest of its batch.

It trains on synthetic faces of seed ``TRAIN_SEED``; the yardstick's held-out real faces are of
seed ``HELDOUT_SEED``; GANs train on seed 0. No image is in two of these sets.

    python faces/attrnet.py                          # retrain the committed weights
    python faces/attrnet.py --check=true             # held-out accuracy of the committed weights
"""
import json
import sys
import time
from pathlib import Path

import numpy as np
import pytensor
import pytensor.tensor as T

from lib import activations, flags, inits, rng, updates
from lib.costs import binary_crossentropy
from lib.data_image import exit_on_data_error
from lib.files import atomic_write_text
from lib.ops import dnn_conv
from lib.theano_utils import floatX, sharedX

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PATH = ROOT / 'models' / 'faces_attrnet' / 'attrnet_params.npz'
TRAIN_SEED = 1          # synthetic faces the attribute network trains on
HELDOUT_SEED = 2        # held-out synthetic faces: accuracy, and the yardstick's real faces
BINARY = ('smiling', 'glasses', 'long_hair')
REGRESSION = ('yaw', 'skin', 'scale', 'dx', 'dy')
N_HAIR = 6              # faces/synthetic.py's hair colours; hair_tone = index / 5
NPX = 64

# hyperparameters of the committed weights (every one a flag of the training CLI)
nf = 16                 # # of filters in the first conv layer (doubling per layer, 4 layers)
nfeat = 256             # # of units in the penultimate (feature) layer
ntrain = 60000          # # of synthetic faces (seed TRAIN_SEED) to train on (half mirrored)
nval = 2000             # # of held-out faces (seed HELDOUT_SEED) to report accuracy on
nbatch = 128            # # of examples in batch
niter = 10              # # of epochs at the initial learning rate
niter_decay = 6         # # of epochs to decay it linearly to zero
lr = 0.001              # initial learning rate for adam
seed = 0                # seed of lib.rng (initial parameters, epoch order)
out = ''                # '' = models/faces_attrnet/attrnet_params.npz
check = False           # only report the held-out accuracy of --out (or the committed weights)
backend = ''            # c | numba | jax | pytorch | python; '' = the fastest here

FLAGS = flags.declared(globals())  # every value above is a --flag

relu = activations.Rectify()
lrelu = activations.LeakyRectify()
sigmoid = activations.Sigmoid()
softmax = activations.Softmax()


def init_params(nf=nf, nfeat=nfeat):
    """He-normal conv and dense weights, zero biases, from lib.rng (no batchnorm)."""
    def he(shape, name, fan_in):
        return inits.Normal(scale=float(np.sqrt(2. / fan_in)))(shape, name)
    zeros = inits.Constant(c=0.)
    nout = len(BINARY) + N_HAIR + len(REGRESSION)
    return [
        he((nf, 3, 5, 5), 'aw', 3*25), zeros((nf,), 'ab'),
        he((nf*2, nf, 5, 5), 'aw2', nf*25), zeros((nf*2,), 'ab2'),
        he((nf*4, nf*2, 5, 5), 'aw3', nf*2*25), zeros((nf*4,), 'ab3'),
        he((nf*8, nf*4, 5, 5), 'aw4', nf*4*25), zeros((nf*8,), 'ab4'),
        he((nf*8*4*4, nfeat), 'awf', nf*8*4*4), zeros((nfeat,), 'abf'),
        inits.Normal(scale=0.01)((nfeat, nout), 'awy'), zeros((nout,), 'aby'),
    ]


def attrnet(X, w, b, w2, b2, w3, b3, w4, b4, wf, bf, wy, by):
    """(features, outputs) of images X (n, 3, 64, 64): features (n, nfeat), outputs (n, 14) raw."""
    def conv(h, w, b):
        return lrelu(dnn_conv(h, w, subsample=(2, 2), border_mode=(2, 2)) + b.dimshuffle('x', 0, 'x', 'x'))
    h = conv(X, w, b)                       # (n, nf, 32, 32)
    h2 = conv(h, w2, b2)                    # (n, nf*2, 16, 16)
    h3 = conv(h2, w3, b3)                   # (n, nf*4, 8, 8)
    h4 = conv(h3, w4, b4)                   # (n, nf*8, 4, 4)
    f = relu(T.dot(T.flatten(h4, 2), wf) + bf)  # (n, nfeat)
    return f, T.dot(f, wy) + by             # (n, 3 + 6 + 5)


def split_outputs(o):
    """Binary logits, hair logits and regressions of the raw outputs."""
    nb, nh = len(BINARY), N_HAIR
    return o[:, :nb], o[:, nb:nb + nh], o[:, nb + nh:]


def targets(attrs, names):
    """(binary (n, 3), hair index (n,), regression (n, 5)) from the synthetic 'attributes' rows."""
    col = {n: i for i, n in enumerate(names)}
    binary = attrs[:, [col[n] for n in BINARY]]
    hair = np.rint(attrs[:, col['hair_tone']] * (N_HAIR - 1)).astype(np.int64)
    reg = attrs[:, [col[n] for n in REGRESSION]]
    return floatX(binary), hair, floatX(reg)


def transform(imgs):
    """uint8 (n, 64, 64, 3) -> float32 (n, 3, 64, 64) in [-1, 1], as the training scripts do."""
    return floatX(imgs).transpose(0, 3, 1, 2) / 127.5 - 1.


def load_synthetic(n, seed_):
    """``n`` synthetic faces of ``seed_`` (cached in data/) with their attribute targets."""
    import h5py
    from faces import synthetic
    path = synthetic.ensure(n=n, seed=seed_, size=NPX, progress=True)
    with h5py.File(path, 'r') as f:
        imgs = f['features'][:]
        attrs = f['attributes'][:]
    return imgs, targets(attrs, synthetic.ATTRIBUTE_NAMES)


class AttributeNet:
    """Compiled predictions of a trained attribute network.

    ``predict(X)`` takes images as the training scripts feed D (float32 (n, 3, 64, 64) in [-1, 1])
    and returns a dict: ``features`` (n, nfeat), the probabilities ``smiling``, ``glasses``,
    ``long_hair`` (n,), ``hair`` (n,) colour index, and ``yaw``, ``skin``, ``scale``, ``dx``,
    ``dy`` (n,).
    """

    def __init__(self, arrays, mode):
        nf_, nfeat_ = arrays[0].shape[0], arrays[8].shape[1]
        params = init_params(nf_, nfeat_)
        if len(arrays) != len(params):
            raise ValueError(f'{len(arrays)} arrays, expected {len(params)}')
        for p, a in zip(params, arrays):
            if tuple(a.shape) != p.get_value(borrow=True).shape:
                raise ValueError(f'{p.name} has shape {tuple(a.shape)}, expected '
                                 f'{p.get_value(borrow=True).shape}')
            p.set_value(floatX(a))
        self.params = params
        X = T.tensor4()
        f, o = attrnet(X, *params)
        ob, oh, oreg = split_outputs(o)
        # the hair colour's argmax is taken in NumPy: PyTensor's PyTorch backend has no Argmax
        self._predict = pytensor.function([X], [f, sigmoid(ob), oh, oreg], mode=mode)

    def predict(self, X, nbatch=250):
        """Features and predictions of ``X`` (float32 (n, 3, 64, 64) in [-1, 1]), in batches."""
        X = np.asarray(X)
        if X.ndim != 4 or X.shape[1:] != (3, NPX, NPX):
            raise ValueError(f'the attribute network takes (n, 3, {NPX}, {NPX}) images, got {X.shape}')
        parts = [self._predict(floatX(X[i:i + nbatch])) for i in range(0, len(X), nbatch)]
        f, pb, oh, reg = (np.concatenate(p) for p in zip(*parts))
        out = dict(features=f, hair=np.argmax(oh, axis=1))
        out.update({n: pb[:, i] for i, n in enumerate(BINARY)})
        out.update({n: reg[:, i] for i, n in enumerate(REGRESSION)})
        return out


def load(path=None, mode=None):
    """The attribute network of ``path`` (default: the committed weights), compiled for ``mode``."""
    from lib.backend import get_mode, resolve_backend
    from lib.params import load_params
    path = Path(path or DEFAULT_PATH)
    if mode is None:
        mode = get_mode(resolve_backend('', task='other'))
    return AttributeNet(load_params(path), mode)


def accuracy(pred, binary, hair, reg):
    """Held-out scores: accuracy per binary label and of the hair colour, RMSE per regression."""
    out = {n: float(np.mean((pred[n] > 0.5) == (binary[:, i] > 0.5))) for i, n in enumerate(BINARY)}
    out['hair'] = float(np.mean(pred['hair'] == hair))
    out.update({f'{n}_rmse': float(np.sqrt(np.mean((pred[n] - reg[:, i]) ** 2)))
                for i, n in enumerate(REGRESSION)})
    return out


def flip(X, reg, which):
    """Mirror the faces ``which`` (bool (n,)) left-right: yaw and dx change sign, nothing else."""
    X, reg = X.copy(), reg.copy()
    X[which] = X[which, :, :, ::-1]
    for name in ('yaw', 'dx'):
        reg[which, REGRESSION.index(name)] *= -1
    return X, reg


def build_train(params, mode):
    """The compiled Adam update on BCE (binaries) + CE (hair) + MSE (regressions)."""
    X, YB, YR = T.tensor4(), T.matrix(), T.matrix()
    YH = T.lvector()
    _, o = attrnet(X, *params)
    ob, oh, oreg = split_outputs(o)
    cost_b = binary_crossentropy(sigmoid(ob), YB).mean()
    cost_h = -T.mean(T.log(softmax(oh) + 1e-7)[T.arange(YH.shape[0]), YH])
    cost_r = T.mean(T.sqr(oreg - YR)) * len(REGRESSION)
    cost = cost_b + cost_h + cost_r
    lrt = sharedX(lr)
    updater = updates.Adam(lr=lrt, b1=0.9)
    return pytensor.function([X, YB, YH, YR], [cost, cost_b, cost_h, cost_r],
                             updates=updater(params, cost), mode=mode), lrt


def main(argv=None):
    from lib.backend import describe_mode, get_mode, resolve_backend
    from lib.params import save_params
    from tqdm import tqdm
    config = flags.configure(globals(), FLAGS, argv, positive=['nf', 'nfeat', 'ntrain', 'nval',
                                                            'nbatch', 'lr'],
                             non_negative=['niter', 'niter_decay'])
    if niter + niter_decay < 1 and not check:
        flags.fail(f'--niter={niter} --niter_decay={niter_decay}: nothing to train (at least one '
                   f'epoch)')
    if not check:  # --check reads --out
        flags.writable('out', out, folder=False)
    path = Path(out) if out else DEFAULT_PATH
    name = resolve_backend(backend, task='train')
    mode = get_mode(name)
    vaimgs, (vab, vah, var) = load_synthetic(nval, HELDOUT_SEED)
    vaX = transform(vaimgs)
    if check:
        net = exit_on_data_error(load, path, mode)
        print(json.dumps(accuracy(net.predict(vaX), vab, vah, var), indent=1))
        return
    rng.set_seed(seed)
    params = init_params(nf, nfeat)
    print(f'attribute network: nf={nf}, nfeat={nfeat}, {ntrain} faces of seed {TRAIN_SEED}, '
          f'backend: {describe_mode(name)} | output: {path}', flush=True)
    trimgs, (trb, trh, trr) = load_synthetic(ntrain, TRAIN_SEED)
    _train, lrt = build_train(params, mode)
    t0 = time.time()
    for epoch in range(niter + niter_decay):
        perm = rng.np_rng.permutation(ntrain)
        costs = []
        for i in tqdm(range(0, ntrain, nbatch), desc=f'epoch {epoch + 1}/{niter + niter_decay}',
                      file=sys.stderr, leave=False):
            idx = np.sort(perm[i:i + nbatch])
            X, reg = flip(transform(trimgs[idx]), trr[idx], rng.np_rng.uniform(size=len(idx)) < 0.5)
            costs.append(_train(X, trb[idx], trh[idx], reg))
        cost = np.mean([c[0] for c in costs])
        if not np.isfinite(cost):  # NaN weights would replace the network's file
            flags.fail(f'--lr={lr}: the cost is {cost} in epoch {epoch + 1} (diverged); {path} is '
                       f'not written')
        if epoch + 1 >= niter:
            lrt.set_value(floatX(lr * (niter + niter_decay - epoch - 1) / max(niter_decay, 1)))
        net = AttributeNet([p.get_value() for p in params], mode)
        scores = accuracy(net.predict(vaX), vab, vah, var)
        print(f'epoch {epoch + 1}: cost {np.mean([c[0] for c in costs]):.4f} | held-out '
              + ' '.join(f'{k} {v:.4f}' for k, v in scores.items())
              + f' | {time.time() - t0:.0f} s', flush=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_params(params, path)
    record = dict(config=config, heldout=scores, seconds=time.time() - t0, train_seed=TRAIN_SEED,
                  heldout_seed=HELDOUT_SEED)
    atomic_write_text(path.with_suffix('.json'), json.dumps(record, indent=1) + '\n')
    print(f'wrote {path}')


if __name__ == '__main__':
    flags.command(main)
