"""Synthetic cartoon faces with known attributes: the default faces data when none is given.

Each image is drawn with Pillow at twice the output size and downsampled with LANCZOS.
Image ``i`` of seed ``s`` depends only on ``(s, i)`` (``np.random.default_rng([s, i])``),
so a dataset is the same for any number of worker processes or chunk size.

Attributes (float32 columns of the ``attributes`` source, names in its ``names``):

    smiling    1 open smile with teeth, 0 closed straight mouth
    glasses    1 glasses (frames, bridge, arms), 0 none
    long_hair  1 long hair falling past the chin to the shoulders, 0 short cap
               (the stand-in for the paper's woman/man)
    yaw        head turn in [-1, 1], -1 facing image-left, +1 facing image-right
               (eyes, nose and mouth move sideways, the far ear hides, the near one shows)
    dx, dy     face position jitter in [-1, 1] (about +-5% of the image)
    scale      face size jitter in [-1, 1] (about +-8%)
    aspect     face width/height ratio
    skin       skin lightness in [0, 1]
    hair_tone  hair colour index / (number of hair colours - 1)

CLI:  python faces/synthetic.py --n=50000 --seed=0 [--size=64] [--out=FILE.hdf5] [--grid=PATH.png]
      (the flags are at the end of this file; ``--help`` lists them)
"""
import functools
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

from lib import flags
from lib.data_hdf5 import H5Writer
from lib.data_image import DataError, default_data_dir, exit_on_data_error, imap_ordered
from lib.vis import imsave

ATTRIBUTE_NAMES = ('smiling', 'glasses', 'long_hair', 'yaw', 'dx', 'dy', 'scale', 'aspect',
                   'skin', 'hair_tone')
TEST_FRACTION = 0.1   # last 10% of the rows form the 'test' split
CHUNK = 500           # images per worker task / HDF5 write

SKIN_DARK = np.array([92, 58, 40.])
SKIN_LIGHT = np.array([250, 218, 190.])
HAIR = np.array([[25, 20, 20], [70, 45, 30], [120, 75, 40], [215, 175, 95],
                 [160, 70, 35], [165, 160, 155]], dtype=float)   # black, dark/mid brown, blond, auburn, grey
IRIS = np.array([[70, 45, 25], [60, 100, 150], [60, 110, 70], [40, 30, 25]], dtype=float)
YAW_DEG = 35.0        # yaw=1 turns the head this many degrees
VERSION = 1            # bump when the drawing changes: cached files of another version are redrawn


def _rgb(c):
    return tuple(int(v) for v in np.clip(np.round(c), 0, 255))


def sample_params(seed, index):
    """The random choices for image ``index`` of ``seed`` (a dict; attributes plus colours)."""
    r = np.random.default_rng([seed, index])
    p = dict(
        smiling=float(r.random() < 0.5),
        glasses=float(r.random() < 0.5),
        long_hair=float(r.random() < 0.5),
        yaw=float(r.uniform(-1, 1)),
        dx=float(r.uniform(-1, 1)),
        dy=float(r.uniform(-1, 1)),
        scale=float(r.uniform(-1, 1)),
        aspect=float(r.uniform(0.74, 0.9)),
        skin=float(r.beta(2.0, 1.6)),
    )
    hair = int(r.integers(len(HAIR)))
    p['hair_tone'] = hair / (len(HAIR) - 1)
    p['hair_rgb'] = HAIR[hair] * r.uniform(0.85, 1.15)
    p['bg'] = (r.uniform(30, 235, 3), r.uniform(30, 235, 3), r.uniform(0, 2 * math.pi))
    p['shirt'] = r.uniform(20, 230, 3)
    p['iris'] = IRIS[r.integers(len(IRIS))]
    p['frame'] = r.uniform(0, 60, 3) if r.random() < 0.75 else r.uniform(40, 220, 3)  # mostly dark
    p['lips'] = np.array([170, 70, 70.]) * r.uniform(0.8, 1.1)
    p['brow_tilt'] = float(r.uniform(-1.5, 2.5))
    p['eye_gap'] = float(r.uniform(0.38, 0.46))
    p['fringe'] = float(r.uniform(0.0, 1.0))
    p['part'] = float(r.uniform(-0.5, 0.5))
    return p


@functools.lru_cache(maxsize=4)
def _grid(size):
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / (size - 1) - 0.5
    return yy, xx


def _background(size, c1, c2, angle):
    """A linear colour gradient from ``c1`` to ``c2`` along ``angle``, uint8 ``(size, size, 3)``."""
    yy, xx = _grid(size)
    t = np.clip(xx * np.float32(math.cos(angle)) + yy * np.float32(math.sin(angle)) + np.float32(0.5), 0, 1)
    c1, c2 = c1.astype(np.float32), c2.astype(np.float32)
    return (c1 + t[..., None] * (c2 - c1)).astype(np.uint8)


def render(p, size=64, glasses_mask=False):
    """One face, uint8 ``(size, size, 3)``, from ``sample_params`` output ``p``.

    With ``glasses_mask``: ``(face, mask)``, the mask float32 ``(size, size)`` in [0, 1], the
    fraction of each pixel covered by the glasses (frames, bridge, arms; 0 without glasses),
    drawn with the same strokes on a blank canvas and downsampled by area.
    """
    from PIL import Image, ImageDraw

    S = 2 * size            # draw at 2x, then downsample
    k = S / 128.0           # the geometry below is in units of a 128 px canvas

    img = Image.fromarray(_background(S, *p['bg']))
    d = ImageDraw.Draw(img)

    def E(cx, cy, rx, ry, fill=None, outline=None, width=1, d=d):
        if rx > 0.3 and ry > 0.3:
            d.ellipse([k * (cx - rx), k * (cy - ry), k * (cx + rx), k * (cy + ry)], fill=fill,
                      outline=outline, width=max(1, round(width * k)))

    def P(points, fill):
        d.polygon([(k * x, k * y) for x, y in points], fill=fill)

    def L(points, fill, width, d=d):
        d.line([(k * x, k * y) for x, y in points], fill=fill, width=max(1, round(width * k)),
               joint='curve')

    skin = SKIN_DARK + (SKIN_LIGHT - SKIN_DARK) * p['skin']
    skin_c, shade_c, dark_c = _rgb(skin), _rgb(skin * 0.8), _rgb(skin * 0.5)
    hair_c = _rgb(p['hair_rgb'])
    brow_c = _rgb(p['hair_rgb'] * 0.65)

    sc = 1.0 + 0.08 * p['scale']
    cx = 64 + 6 * p['dx']
    cy = 56 + 5 * p['dy']
    ry = 34 * sc                      # half height of the head
    rx = ry * p['aspect']             # half width
    th = math.radians(YAW_DEG) * p['yaw']
    s, c = math.sin(th), math.cos(th)

    def X(phi, depth=1.0):
        """Screen x of a point at angle ``phi`` around the head's vertical axis, radius depth*rx."""
        return cx + depth * rx * math.sin(phi + th)

    # shoulders; long hair falls over them; the neck in front of the hair
    E(cx - 3 * s, cy + ry + 44 * sc, 56 * sc, 30 * sc, fill=_rgb(p['shirt']))
    back = cx - 0.15 * rx * s         # the back of the head moves against the turn
    if p['long_hair']:
        E(back, cy - 0.08 * ry, rx * 1.25, ry * 1.08, fill=hair_c)
        d.rounded_rectangle(_box(k, back - rx * 1.25, cy, back + rx * 1.25, cy + ry * 1.5),
                            radius=8 * k, fill=hair_c)
    neck_x = cx + 0.12 * rx * s
    d.rectangle(_box(k, neck_x - rx * 0.42, cy + ry * 0.5, neck_x + rx * 0.42, cy + ry * 1.35),
                fill=shade_c)

    # ears at +-90 degrees: the one turning toward the viewer widens, the other hides
    for side in (-1, 1):
        facing = -side * s            # > 0 when this ear turns toward the viewer
        ew = 5.0 * sc * (1 + 1.1 * facing)
        if ew > 0.8:
            ex = cx + side * rx * (c - 0.08 * abs(s)) + side * ew * 0.3 - 0.1 * rx * s
            E(ex, cy + 0.04 * ry, ew, 8.5 * sc, fill=skin_c)
            E(ex + side * 0.6, cy + 0.04 * ry, ew * 0.45, 5 * sc, fill=shade_c)

    # head: skull ellipse plus a jaw ellipse that swings with the turn (outline changes with yaw)
    E(cx - 0.05 * rx * s, cy, rx * (1 - 0.04 * abs(s)), ry, fill=skin_c)
    E(cx + 0.28 * rx * s, cy + 0.36 * ry, rx * 0.78, ry * 0.64, fill=skin_c)

    # hair on top: a cap and a fringe whose parting moves with the turn
    hx = cx - 0.1 * rx * s
    cap_top = cy - ry * 1.12
    hairline = cy - ry * (0.36 + 0.14 * p['fringe'])
    d.chord(_box(k, hx - rx * 1.07, cap_top, hx + rx * 1.07, 2 * hairline - cap_top + 14),
            180, 360, fill=hair_c)
    part_x = X(p['part'] * 0.6)
    P([(hx - rx * 1.05, hairline + 5), (part_x, hairline - 3), (hx + rx * 1.05, hairline + 5),
       (hx + rx * 1.0, hairline - 8), (hx - rx * 1.0, hairline - 8)], fill=hair_c)
    for side in (-1, 1):
        x_out = hx + side * rx * (c * 1.0 + 0.06)
        if p['long_hair']:
            # locks down each side of the face, past the chin, hiding the ears; the one
            # the face turns toward stays at the cheek so it never covers the far eye
            x_out = cx - 0.05 * rx * s + side * rx * (1.06 + 0.12 * max(0.0, side * s))
            x_in = x_out - side * rx * 0.17
            P([(x_in, hairline), (x_out + side * 3, hairline - 4), (x_out + side * 4, cy + ry * 1.3),
               (x_in - side * 1, cy + ry * 1.15), (x_in, cy + ry * 0.2)], fill=hair_c)
        else:
            d.rectangle(_box(k, x_out - side * 5, hairline - 2, x_out - side * 0.5,
                                   cy - 0.08 * ry), fill=hair_c)

    # eyes at +-gap around the head, foreshortened by their turn; eyebrows above
    ey = cy - 0.06 * ry
    eyes = []
    for side in (-1, 1):
        phi = side * p['eye_gap']
        fore = max(0.2, math.cos(phi + th))
        ex = X(phi, 0.9)
        ew, eh = 6.8 * sc * fore, 4.6 * sc
        eyes.append((ex, fore))
        E(ex, ey, ew, eh, fill=(250, 250, 250), outline=dark_c, width=1)
        ix = ex + 1.8 * s * fore
        E(ix, ey, 3.7 * sc * fore, 3.7 * sc, fill=_rgb(p['iris']))
        E(ix, ey, 1.9 * sc * fore, 1.9 * sc, fill=(10, 10, 10))
        E(ix - 0.8, ey - 1.1, 0.8 * sc, 0.8 * sc, fill=(255, 255, 255))
        bw, by = 8.0 * sc * fore, ey - 9.5 * sc
        tilt = p['brow_tilt']
        L([(ex - bw, by + (tilt if side < 0 else 0)), (ex + bw, by + (tilt if side > 0 else 0))],
          fill=brow_c, width=3)

    # nose: from between the eyes to a tip that sticks out toward the turn
    x_root, x_tip = X(0, 0.95), X(0, 1.22)
    ny = cy + 0.3 * ry
    nw = 4.8 * sc
    P([(x_root - 1.3, ey + 2), (x_root + 1.3, ey + 2),
       (x_tip + nw * (1 + 0.6 * s), ny), (x_tip - nw * (1 - 0.6 * s), ny)], fill=shade_c)
    L([(x_root + 1.3 * (1 if s > 0 else -1), ey + 3), (x_tip + (nw + 0.5) * (1 if s > 0 else -1), ny)],
      fill=dark_c, width=1.2)
    E(x_tip - 2.4 * c, ny - 0.3, 1.5 * c, 1.1, fill=dark_c)
    E(x_tip + 2.4 * c, ny - 0.3, 1.5 * c, 1.1, fill=dark_c)

    # mouth: open smile with teeth, or a closed straight mouth
    mx, my = X(0, 1.02), cy + 0.58 * ry
    mw = 9.5 * sc * (0.7 + 0.3 * c)
    lips_c = _rgb(p['lips'])
    if p['smiling']:
        mh = 7.0 * sc
        d.chord(_box(k, mx - mw, my - mh, mx + mw, my + mh), 0, 180,
                fill=(95, 20, 25), outline=lips_c, width=max(1, round(1.5 * k)))
        d.rectangle(_box(k, mx - mw * 0.8, my + 0.6, mx + mw * 0.8, my + 2.8 * sc),
                    fill=(250, 250, 245))
        L([(mx - mw - 1.5, my - 2.5), (mx - mw + 0.5, my + 1)], fill=shade_c, width=1.5)
        L([(mx + mw + 1.5, my - 2.5), (mx + mw - 0.5, my + 1)], fill=shade_c, width=1.5)
    else:
        L([(mx - mw * 0.75, my + 2), (mx + mw * 0.75, my + 2)], fill=lips_c, width=3)

    # glasses: a frame round each eye, a bridge, arms back to the visible ears
    mask = Image.new('L', (S, S), 0) if glasses_mask else None
    if p['glasses']:
        frame_c = _rgb(p['frame'])
        (xl, fl), (xr, fr) = eyes
        rl, rr, r_y = 8.8 * sc * fl, 8.8 * sc * fr, 7.2 * sc
        # the same strokes on the face, and in white on the mask's canvas
        for dd, col in [(d, frame_c)] + ([(ImageDraw.Draw(mask), 255)] if mask else []):
            E(xl, ey, rl, r_y, outline=col, width=2.3, d=dd)
            E(xr, ey, rr, r_y, outline=col, width=2.3, d=dd)
            L([(xl + rl, ey - 1), (x_root, ey - 2.5), (xr - rr, ey - 1)], fill=col, width=2.3, d=dd)
            for side, xe, re in ((-1, xl, rl), (1, xr, rr)):
                if -side * s > -0.25:
                    L([(xe + side * re, ey - 1), (cx + side * rx * c * 0.98 - 0.1 * rx * s, ey - 2)],
                      fill=col, width=2.3, d=dd)

    img = img.resize((size, size), Image.Resampling.LANCZOS)
    if mask is not None:
        mask = np.asarray(mask.resize((size, size), Image.Resampling.BOX), np.float32) / 255.
        return np.asarray(img), mask
    return np.asarray(img)


def _box(k, x0, y0, x1, y1):
    """A Pillow box in canvas pixels (128-unit coordinates times ``k``), corners ordered."""
    return [k * min(x0, x1), k * min(y0, y1), k * max(x0, x1), k * max(y0, y1)]


def attributes_of(p):
    """The ``ATTRIBUTE_NAMES`` columns of ``p`` as a float32 vector."""
    return np.array([p[n] for n in ATTRIBUTE_NAMES], dtype=np.float32)


def render_range(seed, start, stop, size=64, glasses_masks=False):
    """Images ``start..stop-1`` of ``seed``: (uint8 ``(n, size, size, 3)``, float32 ``(n, k)``),
    and with ``glasses_masks`` their float32 ``(n, size, size)`` glasses masks (see ``render``)."""
    imgs = np.empty((stop - start, size, size, 3), np.uint8)
    attrs = np.empty((stop - start, len(ATTRIBUTE_NAMES)), np.float32)
    masks = np.empty((stop - start, size, size), np.float32) if glasses_masks else None
    for j, i in enumerate(range(start, stop)):
        p = sample_params(seed, i)
        if glasses_masks:
            imgs[j], masks[j] = render(p, size, glasses_mask=True)
        else:
            imgs[j] = render(p, size)
        attrs[j] = attributes_of(p)
    return (imgs, attrs, masks) if glasses_masks else (imgs, attrs)


def _render_task(args):
    return render_range(*args)


def default_path(n, seed, size):
    """``<data_dir>/synthetic_faces_<n>_<seed>_<size>px.hdf5``."""
    return default_data_dir() / f'synthetic_faces_{n}_{seed}_{size}px.hdf5'


def generate(n=50000, seed=0, size=64, out=None, workers=2, progress=True):
    """Render ``n`` faces from ``seed`` into ``out`` (fuel layout + 'attributes'); returns the path.

    Work is split in chunks of ``CHUNK`` images over ``workers`` processes; results are
    written in order, so the file is the same for any ``workers``.
    """
    from tqdm import tqdm

    if n < 1:
        raise DataError(f'--n={n}: expected at least 1 image')
    if size < 8:
        raise DataError(f'--size={size}: expected at least 8 px')
    out = Path(default_path(n, seed, size) if out is None else out)
    tasks = [(seed, a, min(a + CHUNK, n), size) for a in range(0, n, CHUNK)]
    # a few chunks are quicker in-process than a pool (and no fork of a threaded process)
    workers = min(workers, len(tasks)) if len(tasks) > 2 else 1
    with H5Writer(out, n, size, attribute_names=ATTRIBUTE_NAMES,
                  attrs={'generator': 'faces/synthetic.py', 'version': VERSION, 'seed': seed,
                         'size': size}) as writer, \
            tqdm(total=n, desc=f'synthetic faces -> {out.name}', unit='img', file=sys.stderr,
                 disable=not progress) as bar:
        for imgs, attrs in imap_ordered(_render_task, tasks, workers):
            writer.write(imgs, attrs)
            bar.update(len(imgs))
        writer.finish(ntest=int(round(n * TEST_FRACTION)))
    return out


def ensure(n=50000, seed=0, size=64, progress=True, workers=None):
    """Path of the cached synthetic set for ``(n, seed, size)``, generating it on first use."""
    import h5py

    path = default_path(n, seed, size)
    try:
        with h5py.File(path, 'r') as f:
            if f.attrs.get('version') == VERSION and len(f['features']) == n:
                return path
    except (OSError, KeyError):
        pass  # missing, unreadable or incomplete: (re)generate
    return generate(n, seed, size, path, workers=workers or min(2, os.cpu_count() or 1), progress=progress)


def save_grid(images, path, rows=14, cols=14, pad=2):
    """Write the first ``rows*cols`` images (uint8 ``(n, h, w, 3)``) as one grid, 2 px apart on white."""
    n, h, w, _ = images.shape
    grid = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad, 3), 255, np.uint8)
    for i in range(min(n, rows * cols)):
        r, c = divmod(i, cols)
        grid[pad + r * (h + pad):pad + r * (h + pad) + h, pad + c * (w + pad):pad + c * (w + pad) + w] = images[i]
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    imsave(path, grid)
    return path


# The command's flags (python faces/synthetic.py --name=value); the functions above take arguments.
n = 50000               # # of images
seed = 0                # the set's seed: image i is drawn from np.random.default_rng([seed, i])
size = 64               # output side in px (drawn at 2x)
out = ''                # the HDF5 file ('' = <data_dir>/synthetic_faces_<n>_<seed>_<size>px.hdf5)
workers = 2             # # of rendering processes
grid = ''               # also write a 14x14 picture of the first 196 faces here (.png, .jpg, ...)
grid_only = False       # only write the picture (to --grid, or synthetic_faces_grid.png), no HDF5

FLAGS = flags.declared(globals())  # every value above is a --flag


def main(argv=None):
    """Generate (or reuse) a synthetic set and optionally write a 14x14 preview grid.

    A bad flag is one ``error:`` line and exit status 2.
    """
    flags.configure(globals(), FLAGS, argv, positive=['n', 'workers'])
    if not 8 <= size <= 1024:  # PORT: the models take 64 (and 32) px; a huge size overflows memory
        flags.fail(f'--size={size}: expected 8 .. 1024 px')
    picture = grid or ('synthetic_faces_grid.png' if grid_only else '')
    if picture and Path(picture).suffix.lower() not in ('.png', '.jpg', '.jpeg', '.webp', '.bmp'):
        flags.fail(f'--grid={picture}: expected an image file name (.png, .jpg, ...)')
    flags.writable('grid', picture, folder=False)
    if not grid_only:
        flags.writable('out', out, folder=False)
    if not grid_only:
        t0 = time.time()
        path = exit_on_data_error(generate, n, seed, size, out or None, workers=workers)
        print(f'wrote {path} ({n} images, {time.time() - t0:.1f} s)')
    if picture:
        imgs, _ = render_range(seed, 0, min(196, n), size)
        save_grid(imgs, picture)
        print(f'wrote {picture}')


if __name__ == '__main__':
    flags.command(main)
