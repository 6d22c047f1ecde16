"""Window boxes on generated bedrooms (the paper's Fig. 6): the box file and a labelling helper.

    python lsun/boxes.py --model=lsun/models/uncond_dcgan --out=windows.json [--n=150 --seed=0]
    python lsun/boxes.py --boxes=windows.json --index=3 --add=10,12,30,40 [--add=...]

The first command generates the ``n`` samples to label (z = ``RandomState(seed).uniform(-1, 1,
(n, nz))`` through the training script's own ``gen``, in batches of ``nbatch``, batch statistics
as the original's ``_gen``), writes each one enlarged ``scale`` times as ``<out stem>/<index>.png``
with a contact sheet ``<out stem>/sheet.png``, and the box file with no boxes yet. The second adds
boxes to one sample (pixel coordinates of the 64x64 sample; read them off the enlarged PNG in any
image viewer and divide by ``scale``). lsun/forget.py regenerates the same samples from the file.

Box file (JSON)::

    {"format": "lsun-boxes/1",
     "model": "lsun/models/uncond_dcgan/5_gen_params.npz",   # the gen parameters
     "seed": 0, "nbatch": 128, "n": 150,                     # which samples (see above)
     "size": 64, "label": "window",
     "images": [{"index": 0, "boxes": [[x0, y0, x1, y1], ...]}, ...]}

A box is ``[x0, y0, x1, y1]`` in pixels of the ``size`` x ``size`` sample, x to the right, y
down, x1 and y1 exclusive: 0 <= x0 < x1 <= size, 0 <= y0 < y1 <= size. An image may have no box.
"""
import json
import re
from pathlib import Path

import numpy as np

from lib import flags
from lib.data_image import DataError
from lib.files import atomic_write_text
from lib.theano_utils import floatX

FORMAT = 'lsun-boxes/1'

model = ''              # the gen parameters: <epoch>_gen_params.npz or a run's models folder
out = ''                # the box file to write (its samples go beside it)
n = 150                 # # of samples to label (the paper drew boxes on 150)
seed = 0                # seed of the samples' z
nbatch = 128            # # of z per generator call (batchnorm statistics are per call)
scale = 4               # the PNGs to label are this many times the sample's size
boxes = ''              # a box file to add boxes to (with --index and --add)
index = -1              # the sample the boxes of --add are on
add = ''                # boxes x0,y0,x1,y1 (several separated by ';')
label = 'window'        # what the boxes mark
overwrite = False       # replace an existing box file
backend = 'c'           # c | numba | jax | pytorch | python

FLAGS = flags.declared(globals())  # every value above is a --flag


# ------------------------------------------------------------------------------------------
# The box file
# ------------------------------------------------------------------------------------------

def check_box(box, size, where):
    """``box`` as a list of 4 ints inside a ``size`` image, else DataError naming ``where``."""
    if (not isinstance(box, (list, tuple)) or len(box) != 4
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in box)):
        raise DataError(f'{where}: {box!r} is not a box [x0, y0, x1, y1] of 4 integers')
    x0, y0, x1, y1 = box
    if not (0 <= x0 < x1 <= size and 0 <= y0 < y1 <= size):
        raise DataError(f'{where}: box {list(box)} is outside the {size}x{size} image (expected '
                        f'0 <= x0 < x1 <= {size}, 0 <= y0 < y1 <= {size})')
    return [int(v) for v in box]


def read_boxes(path):
    """The checked box file ``path`` as a dict (see the module docstring); DataError (one line)
    for a missing file, bad JSON, a wrong field, or a box outside its image."""
    path = Path(path)
    try:
        record = json.loads(path.read_text())
    except FileNotFoundError:
        raise DataError(f'{path}: no such box file') from None
    except (OSError, ValueError) as err:
        raise DataError(f'{path}: not a JSON box file ({err})') from None
    if not isinstance(record, dict) or record.get('format') != FORMAT:
        raise DataError(f'{path}: not a box file (expected "format": "{FORMAT}")')
    for field in ('seed', 'nbatch', 'n', 'size'):
        v = record.get(field)
        if not isinstance(v, int) or isinstance(v, bool) or v < (0 if field == 'seed' else 1):
            raise DataError(f'{path}: "{field}" is {v!r}, expected a '
                            f'{"non-negative" if field == "seed" else "positive"} integer')
    images = record.get('images')
    if not isinstance(images, list):
        raise DataError(f'{path}: "images" is missing or not a list')
    seen = set()
    for k, im in enumerate(images):
        i = im.get('index') if isinstance(im, dict) else None
        if not isinstance(i, int) or not 0 <= i < record['n'] or i in seen:
            raise DataError(f'{path}: images[{k}] has index {i!r}, expected a new integer in '
                            f'[0, {record["n"]})')
        seen.add(i)
        if not isinstance(im.get('boxes'), list):
            raise DataError(f'{path}: image {i}: "boxes" is missing or not a list')
        im['boxes'] = [check_box(b, record['size'], f'{path}: image {i}, box {j}')
                       for j, b in enumerate(im['boxes'])]
    return record


def write_boxes(path, record):
    """Write a box file atomically (its boxes checked first)."""
    for im in record['images']:
        for j, b in enumerate(im['boxes']):
            check_box(b, record['size'], f'{path}: image {im["index"]}, box {j}')
    atomic_write_text(path, json.dumps(record, indent=1) + '\n')


def box_masks(record, size=None):
    """Per labelled sample: (indices (m,), bool masks (m, size, size)) where a box covers a pixel
    of the ``record['size']`` image, resampled to ``size`` (a cell is inside when boxes cover at
    least half of it)."""
    from lib.forget import resample
    s = record['size']
    idx = np.array([im['index'] for im in record['images']], int)
    masks = np.zeros((len(idx), s, s))
    for m, im in zip(masks, record['images']):
        for x0, y0, x1, y1 in im['boxes']:
            m[y0:y1, x0:x1] = 1.
    return idx, resample(masks, size or s) >= 0.5


# ------------------------------------------------------------------------------------------
# The generator of a trained bedroom model
# ------------------------------------------------------------------------------------------

def model_file(path):
    """The gen parameter file of ``path``: itself, or a models folder's latest
    ``<epoch>_gen_params.npz``."""
    p = Path(path)
    if not p.exists():
        raise DataError(f'--model={path}: no such file or folder')
    if p.is_dir():
        found = {int(m.group(1)): q for q in p.iterdir()
                 if (m := re.fullmatch(r'(\d+)_gen_params\.(?:npz|jl)', q.name))}
        if not found:
            raise DataError(f'--model={path}: no <epoch>_gen_params.npz in this folder')
        p = found[max(found)]
    return p


class Generator:
    """lsun/train_uncond_dcgan.py's ``gen`` over the arrays of a gen parameter file.

    ``Z`` -> ``gX`` (n, 3, 64, 64) in [-1, 1], with batch statistics per call; ``layers``: h2,
    h3, h4 (the rectified conv layers' maps) of that graph; ``with_mask(layer)`` is gX with that
    layer's maps multiplied by a shared (C,) mask (1 keeps a map).
    """

    def __init__(self, path, mode, nbatch=128):
        import pytensor.tensor as T
        from lib.guided import rectifier_input, toposort_variables
        from lib.params import load_params
        from lib.theano_utils import sharedX
        import lsun.train_uncond_dcgan as script

        self.path = model_file(path)
        try:
            arrays = load_params(self.path)
        except (OSError, ValueError) as err:
            raise DataError(f'{self.path}: unreadable gen parameters ({err})') from None
        if len(arrays) != 13:
            raise DataError(f'{self.path}: {len(arrays)} arrays, expected the 13 of gen')
        self.nz, self.ngf = arrays[0].shape[0], arrays[-1].shape[0]
        self.mode, self.nbatch = mode, nbatch
        self.params = [sharedX(a) for a in arrays]
        self.Z = T.matrix('Z')
        saved = script.ngf
        script.ngf = self.ngf   # gen reads the width of its reshape from the script
        try:
            self.gX = script.gen(self.Z, *self.params)
        finally:
            script.ngf = saved
        rect = [v for v in toposort_variables([self.gX]) if rectifier_input(v) is not None]
        self.layers = dict(zip(('h', 'h2', 'h3', 'h4'), rect))

    def compile(self, outputs):
        import pytensor
        return pytensor.function([self.Z], outputs, mode=self.mode)

    def run(self, fn, z):
        """``fn`` over z in batches of ``nbatch``, outputs concatenated."""
        parts = [fn(floatX(z[i:i + self.nbatch])) for i in range(0, len(z), self.nbatch)]
        if isinstance(parts[0], list):
            return [np.concatenate(p) for p in zip(*parts)]
        return np.concatenate(parts)

    def with_mask(self, layer):
        from pytensor.graph.replace import graph_replace
        from lib.theano_utils import sharedX
        h = self.layers[layer]
        mask = sharedX(np.ones({'h2': 4, 'h3': 2, 'h4': 1}[layer] * self.ngf))
        return graph_replace(self.gX, {h: h * mask.dimshuffle('x', 0, 'x', 'x')},
                             strict=False), mask


def samples_z(seed, n, nz):
    """The z of a box file's samples."""
    return np.random.RandomState(seed).uniform(-1., 1., (n, nz))


def to_uint8(X):
    """gen's (n, 3, h, w) in [-1, 1] -> uint8 (n, h, w, 3)."""
    return np.clip((np.asarray(X).transpose(0, 2, 3, 1) + 1.) * 127.5 + 0.5, 0, 255).astype(np.uint8)


# ------------------------------------------------------------------------------------------
# The helper
# ------------------------------------------------------------------------------------------

def parse_boxes(text, size):
    out = []
    for j, part in enumerate(p for p in text.split(';') if p.strip()):
        try:
            box = [int(v) for v in part.split(',')]
        except ValueError:
            raise DataError(f'--add={text}: {part!r} is not x0,y0,x1,y1') from None
        out.append(check_box(box, size, f'--add={text}'))
    return out


def main(argv=None):
    flags.configure(globals(), FLAGS, argv, positive=['n', 'nbatch', 'scale'])
    if nbatch < 2 or n % nbatch == 1:  # batchnorm over one sample ignores its z
        flags.fail(f'--n={n} --nbatch={nbatch}: a generator call of one sample (batchnorm '
                   f'statistics of one sample ignore its z): expected nbatch >= 2 and '
                   f'n % nbatch != 1')
    try:
        if boxes:
            record = read_boxes(boxes)
            if not 0 <= index < record['n']:
                raise DataError(f'--index={index}: expected a sample in [0, {record["n"]})')
            new = parse_boxes(add, record['size'])
            if not new:  # else the file is rewritten with nothing added
                raise DataError(f'--add={add}: expected boxes x0,y0,x1,y1 (several separated by ;)')
            entry = next((im for im in record['images'] if im['index'] == index), None)
            if entry is None:
                entry = dict(index=index, boxes=[])
                record['images'].append(entry)
                record['images'].sort(key=lambda im: im['index'])
            entry['boxes'] += new
            write_boxes(boxes, record)
            print(f'{boxes}: sample {index} has {len(entry["boxes"])} boxes')
            return record
        if not model or not out:
            raise DataError('--model and --out: required to write a box file (or --boxes, '
                            '--index and --add to add boxes)')
        out_path = Path(out)
        if not label.strip():
            raise DataError(f'--label={label}: expected what the boxes mark (e.g. window)')
        if out_path.exists() and not overwrite:
            raise DataError(f'--out={out}: exists (its boxes would be lost): --overwrite to '
                            f'replace it')
        if out_path.with_suffix('') == out_path:
            raise DataError(f'--out={out}: expected a file name with an extension (boxes.json: '
                            f'its samples go in boxes/)')
        flags.writable('out', out, folder=False)
        flags.writable('out', str(out_path.with_suffix('')), folder=True)
        from lib.backend import get_mode, resolve_backend
        from lib.vis import color_grid_vis
        from PIL import Image
        gen = Generator(model, get_mode(resolve_backend(backend)), nbatch)
        X = to_uint8(gen.run(gen.compile(gen.gX), samples_z(seed, n, gen.nz)))
        folder = out_path.with_suffix('')
        folder.mkdir(parents=True, exist_ok=True)
        for i, x in enumerate(X):
            Image.fromarray(x).resize((x.shape[1] * scale, x.shape[0] * scale),
                                      Image.Resampling.NEAREST).save(folder / f'{i}.png')
        side = int(np.ceil(np.sqrt(n)))
        color_grid_vis(X / 255., (side, side), str(folder / 'sheet.png'))
        record = dict(format=FORMAT, model=str(gen.path), seed=seed, nbatch=nbatch, n=n,
                      size=int(X.shape[1]), label=label,
                      images=[dict(index=i, boxes=[]) for i in range(n)])
        write_boxes(out_path, record)
        print(f'wrote {out_path} ({n} samples, no boxes yet) and {folder}/<index>.png (x{scale}) '
              f'and sheet.png; add boxes with --boxes={out_path} --index=I --add=x0,y0,x1,y1')
        return record
    except DataError as e:
        flags.fail(e)


if __name__ == '__main__':
    flags.command(main)
