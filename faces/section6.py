"""What the paper's section-6 experiments share: a trained model, compiled from the training
script's own ``gen`` and ``discrim``, its layers, the attribute network, and the outputs.

The experiments (each a command with ``--help``; docs/section6.md):

    python faces/walk.py         # Fig. 4: walks in z, their smoothness, the memorisation check
    python faces/arithmetic.py   # Fig. 7: vector arithmetic on faces
    python faces/turn.py         # Fig. 8: the turn vector
    python faces/forget.py       # Fig. 6: forgetting to draw glasses
    python faces/dfeatures.py    # Fig. 5: guided backpropagation of the discriminator's features

Batchnorm statistics: ``bn='population'`` normalises with statistics inferred over
``n_population`` samples of z ~ U(-1, 1) (averaged per-batch means and variances, as the
original's SVHN ``infer_bnorm_stats``), so an image depends only on its z; ``bn='batch'``
normalises each call of ``nbatch`` z with its own statistics, as the original's ``_gen`` did.
"""
import json
import re
import sys
from pathlib import Path

import numpy as np
import pytensor
import pytensor.tensor as T
from pytensor.graph.replace import graph_replace

from lib.data_image import DataError
from lib.files import atomic_write_text
from lib.guided import rectifier_input, toposort_variables
from lib import models64
from lib.ops import with_population_stats
from lib.params import load_params
from lib.theano_utils import floatX, sharedX
from lib.train import CHECKPOINT

import faces.train_uncond_dcgan as script

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MODEL = 'models/faces_synthetic_dcgan'   # the released faces model (relative to ROOT)


def resolve(path):
    """``path`` as given if it exists, else relative to the repository root."""
    p = Path(path)
    return p if p.exists() or p.is_absolute() else ROOT / p


def model_files(model, epoch=0):
    """(epoch or None, gen file, discrim file or None) of ``model``: a ``<epoch>_gen_params``
    file, a checkpoint, or a run's models folder (``epoch`` 0: its latest saved epoch)."""
    path = resolve(model)
    if not path.exists():
        raise DataError(f'--model={model}: no such file or folder')
    if path.is_dir():
        found = {int(m.group(1)): p for p in path.iterdir()
                 if (m := re.fullmatch(r'(\d+)_gen_params\.(?:npz|jl)', p.name))}
        if not found:
            if (path / CHECKPOINT).exists():
                return None, path / CHECKPOINT, path / CHECKPOINT
            raise DataError(f'--model={model}: no <epoch>_gen_params.npz file and no checkpoint in it')
        if epoch and epoch not in found:
            raise DataError(f'--epoch={epoch}: no gen params for it in {model} (saved: {sorted(found)})')
        epoch = epoch or max(found)
        path = found[epoch]
    else:
        m = re.fullmatch(r'(\d+)_gen_params\.(?:npz|jl)', path.name)
        epoch = int(m.group(1)) if m else None
    if path.name == CHECKPOINT or path.name.endswith('_checkpoint.npz'):
        return epoch, path, path
    discrim = path.with_name(path.name.replace('_gen_params', '_discrim_params'))
    return epoch, path, discrim if discrim.exists() else None


def load_arrays(path, group):
    """The ``group`` ('gen' or 'discrim') arrays of a params file or a training checkpoint."""
    path = Path(path)
    try:
        if path.name == CHECKPOINT or path.name.endswith('_checkpoint.npz'):
            try:
                with np.load(path, allow_pickle=False) as f:
                    keys = sorted((k for k in f.files if re.fullmatch(rf'{group}/\d+', k)),
                                  key=lambda k: int(k.split('/')[1]))
                    arrays = [f[k] for k in keys]
            except Exception as e:  # not a zip (BadZipFile), an object array, a damaged member
                raise ValueError(f'{type(e).__name__}: {e}') from None
        else:
            arrays = load_params(path)
    except (OSError, ValueError) as e:
        raise DataError(f'{path}: unreadable ({e})') from None
    expected = {'gen': 13, 'discrim': 11}[group]
    if len(arrays) != expected:
        raise DataError(f'{path}: {len(arrays)} {group} arrays, expected {expected}')
    return arrays


def _shared_params(arrays, which):
    """The faces model's parameters (lib/models64.py: names and shapes) holding ``arrays``."""
    try:
        params = models64.load(**{f'{which}_arrays': arrays})
    except ValueError as e:
        raise DataError(f'--model: {e}') from None
    return params[0] if which == 'gen' else params[1]


def rectified_layers(output):
    """The rectifier outputs above ``output``, inputs first: a gen's h (2-D, before its reshape),
    h2, h3, h4; a discrim's h, h2, h3, h4."""
    return [v for v in toposort_variables([output]) if rectifier_input(v) is not None]


class Generator:
    """The faces model's ``gen`` (lib/models64.py) over trained ``arrays``, symbolic and compiled.

    ``Z`` (n, nz) -> ``gX`` (n, nc, 64, 64) with ``bn`` statistics; ``layers``: name -> the
    rectified feature maps h, h2, h3, h4 of that graph. ``sample(z)`` runs it in batches of
    ``nbatch``; ``compile(outputs)`` compiles other outputs of ``Z``; ``drop(layer)`` is
    ``gX`` with that layer's maps multiplied by a shared (C,) mask (``mask``: 1 keeps a map).
    """

    def __init__(self, arrays, mode, bn='population', n_population=10000, nbatch=128):
        if bn not in ('batch', 'population'):
            raise DataError(f"--bn={bn}: expected 'batch' or 'population'")
        self.nz, self.ngf, self.nc = arrays[0].shape[0], arrays[-1].shape[0], arrays[-1].shape[1]
        self.mode, self.bn, self.nbatch = mode, bn, nbatch
        self.params = _shared_params(arrays, 'gen')
        self.Z = T.matrix('Z')
        if bn == 'population':
            rs = np.random.RandomState(0)
            sizes = [min(nbatch, n_population - i) for i in range(0, n_population, nbatch)]
            self.gX = with_population_stats(
                lambda Z: models64.gen(Z, *self.params), self.Z,
                (floatX(rs.uniform(-1., 1., (m, self.nz))) for m in sizes), mode)
        else:
            self.gX = models64.gen(self.Z, *self.params)
        self.layers = dict(zip(('h', 'h2', 'h3', 'h4'), rectified_layers(self.gX)))
        self._fns = {}

    def compile(self, outputs):
        """A compiled function of Z (n, nz) returning ``outputs`` (symbolic, of ``self.Z``)."""
        return pytensor.function([self.Z], outputs, mode=self.mode)

    def run(self, fn, z, progress=None):
        """``fn`` over z in batches of ``nbatch``, outputs concatenated (``progress``: a label)."""
        z = floatX(z)
        starts = range(0, len(z), self.nbatch)
        if progress and len(z) > 4 * self.nbatch:
            from tqdm import tqdm
            starts = tqdm(starts, desc=progress, file=sys.stderr, leave=False)
        parts = [fn(z[i:i + self.nbatch]) for i in starts]
        if isinstance(parts[0], list):
            return [np.concatenate(p) for p in zip(*parts)]
        return np.concatenate(parts)

    def sample(self, z, progress=None):
        """Images (n, nc, 64, 64) in [-1, 1] of z (n, nz)."""
        if 'gX' not in self._fns:
            self._fns['gX'] = self.compile(self.gX)
        return self.run(self._fns['gX'], z, progress)

    def drop(self, layer):
        """(gX with ``layer``'s maps times ``mask``, mask): a shared float32 (C,) of ones.
        ``layer``: h2, h3 or h4 (h is the dense layer, before its reshape into maps)."""
        h = self.layers[layer]
        mask = sharedX(np.ones(self.ngf * {'h': 8, 'h2': 4, 'h3': 2, 'h4': 1}[layer]))
        return graph_replace(self.gX, {h: h * mask.dimshuffle('x', 0, 'x', 'x')}, strict=False), mask


class Discriminator:
    """The faces model's ``discrim`` over ``arrays``: ``X`` -> ``p`` and ``layers`` h..h4,
    with population statistics inferred over ``population`` (images) or batch statistics."""

    def __init__(self, arrays, mode, population=None, nbatch=128):
        self.params = _shared_params(arrays, 'discrim')
        self.X = T.tensor4('X')
        self.bn = 'batch' if population is None else 'population'
        if population is not None:
            self.p = with_population_stats(
                lambda X: models64.discrim(X, *self.params), self.X,
                (floatX(population[i:i + nbatch]) for i in range(0, len(population), nbatch)),
                mode)
        else:
            self.p = models64.discrim(self.X, *self.params)
        self.layers = dict(zip(('h', 'h2', 'h3', 'h4'), rectified_layers(self.p)))


def random_discrim_arrays(like, seed):
    """A freshly initialised discriminator (the training script's ``init_params``: its generator
    at the script's widths drawn first, ``lib.rng`` seeded with ``seed``) of the same widths as
    the arrays ``like``; lib.rng is reseeded, not restored."""
    from lib import rng
    rng.set_seed(seed)
    _, discrim_params = models64.init_params(script.nz, script.ngf, like[0].shape[0],
                                             like[0].shape[1])
    return [p.get_value() for p in discrim_params]


def to_images(X):
    """(n, nc, h, w) in [-1, 1] -> (n, h, w, nc) in [0, 1] for lib.vis."""
    return (np.clip(np.asarray(X), -1., 1.).transpose(0, 2, 3, 1) + 1.) / 2.


def save_grid(X, rows, cols, path):
    """Images X (n, nc, h, w) in [-1, 1], row-major into a rows x cols grid PNG at ``path``."""
    from lib.vis import color_grid_vis
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    color_grid_vis(to_images(X), (rows, cols), str(path))
    return str(path)


def write_json(record, path):
    """``record`` as indented JSON at ``path`` (NumPy scalars and arrays converted)."""
    def convert(o):
        if isinstance(o, np.generic):
            return o.item()
        if isinstance(o, np.ndarray):
            return o.tolist()
        if isinstance(o, Path):
            return str(o)
        raise TypeError(type(o).__name__)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(record, indent=1, default=convert) + '\n')
    return str(path)


def setup(model, epoch, backend, bn, n_population, nbatch, need_discrim=False):
    """(mode, files dict, Generator) of the experiment flags; ``DataError`` on bad input."""
    from lib.backend import get_mode, resolve_backend
    ep, gen_file, discrim_file = model_files(model, epoch)
    if need_discrim and discrim_file is None:
        raise DataError(f'--model={model}: no {gen_file.name.replace("_gen_", "_discrim_")} beside '
                        f'{gen_file.name}')
    if nbatch < 2:
        raise DataError(f'--nbatch={nbatch}: expected at least 2 (batchnorm over the batch)')
    if bn == 'population' and n_population < 2:
        raise DataError(f'--n_population={n_population}: expected at least 2 (batchnorm statistics '
                        f'of one sample are degenerate)')
    try:
        mode = get_mode(resolve_backend(backend))
    except (ValueError, RuntimeError) as e:
        raise DataError(str(e)) from None
    gen = Generator(load_arrays(gen_file, 'gen'), mode, bn, n_population, nbatch)
    if gen.nc != 3:
        raise DataError(f'--model={model}: {gen.nc} channels; the experiments take RGB faces')
    files = dict(epoch=ep, gen=str(gen_file), discrim=None if discrim_file is None else str(discrim_file))
    return mode, files, gen


def describe(files, gen, bn):
    """The first line an experiment prints: the model, its widths and the batchnorm statistics."""
    return (f'model: {files["gen"]} (epoch {files["epoch"]}, nz={gen.nz}, ngf={gen.ngf}) | '
            f'batchnorm: {bn} statistics')


def training_config(gen_file):
    """The training run's config beside a models folder (``<run>/logs/<desc>.config.json`` or a
    ``*config*.json`` in the folder), or {}."""
    folder = Path(gen_file).parent
    for p in [folder.parent.parent / 'logs' / f'{folder.name}.config.json',
              *sorted(folder.glob('*config*.json'))]:
        if p.is_file():
            try:
                return json.loads(p.read_text())
            except ValueError:
                continue
    return {}


def data_splits(gen_file, n, data=''):
    """Up to ``n`` images the model trained on and ``n`` it never saw, float32 (n, 3, 64, 64).

    The training data and count come from the run's config (defaults: the script's synthetic
    faces, every training image); the unseen images are that file's test split. Returns
    (train, heldout, description).
    """
    from faces.load import H5Dataset, resolve_path
    config = training_config(gen_file)
    data = data or config.get('data', '')
    path = resolve_path(data or None, size=64, n_synthetic=int(config.get('n_synthetic', 50000)))
    out = []
    for which in ('train', 'test'):
        ds = H5Dataset(path, which_sets=(which,), npx=64)
        m = min(n, ds.num_examples, int(config.get('ntrain', ds.num_examples))
                if which == 'train' else ds.num_examples)
        imgs, = ds.get_data(None, slice(0, m))
        out.append(script.transform(imgs))   # the training script's own crop and scaling
    return out[0], out[1], f'{path} (train split: first {len(out[0])}; test split: first {len(out[1])})'
