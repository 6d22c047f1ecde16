"""Plot FD against wall time for training runs measured by faces/evaluate.py --epochs=all.

    python bench/fd_curve.py --runs=quick.json,recipe.json --labels=quick,recipe --out=curve.png

Each JSON is faces/evaluate.py's output for one run (its records carry the run log's
``n_seconds``). Draws FD (log scale) against minutes with Pillow, one line per run, the
real-against-real floor dashed, and prints the points.
"""
import json
import math
import sys
from pathlib import Path

from PIL import Image, ImageDraw

from lib import flags
from lib.files import atomic_write

runs = ''        # comma-separated evaluate.py JSON files
labels = ''      # comma-separated labels (default: the file names)
out = 'fd_curve.png'  # the plot (PNG)

FLAGS = flags.declared(globals())  # every value above is a --flag
COLOURS = [(200, 40, 40), (30, 90, 200), (30, 150, 60), (150, 60, 170)]


def load_curve(path):
    """[(minutes, fd)] of one evaluate.py JSON, and its floor."""
    try:
        record = json.loads(Path(path).read_text())
        points = [(float(r['n_seconds']) / 60., float(r['fd'])) for r in record['results']
                  if r.get('n_seconds') is not None]
        floor = float(record['floor']['fd'])
    except OSError as e:
        raise ValueError(f'{path}: {e.strerror or e}') from None
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise ValueError(f'{path}: not an evaluate.py JSON ({type(e).__name__}: {e})') from None
    if not points:
        raise ValueError(f'{path}: no result with n_seconds (evaluate a run folder with --epochs=all)')
    if not all(math.isfinite(fd) and fd > 0 for _, fd in points + [(0, floor)]):
        raise ValueError(f'{path}: an fd that is not a positive number (the plot is logarithmic)')
    return sorted(points), floor


def plot(curves, floor, path, size=(720, 440)):
    """curves: [(label, [(minutes, fd)])]; writes a PNG with FD on a log axis."""
    W, H = size
    left, right, top, bottom = 70, 20, 20, 50
    img = Image.new('RGB', size, 'white')
    d = ImageDraw.Draw(img)
    xmax = max(m for _, pts in curves for m, _ in pts) * 1.05
    fds = [f for _, pts in curves for _, f in pts] + [floor]
    lo, hi = math.floor(math.log10(min(fds))), math.ceil(math.log10(max(fds)))

    def xy(m, f):
        x = left + (W - left - right) * m / xmax
        y = top + (H - top - bottom) * (hi - math.log10(f)) / (hi - lo)
        return x, y

    d.rectangle([left, top, W - right, H - bottom], outline='black')
    for e in range(lo, hi + 1):
        _, y = xy(0, 10 ** e)
        d.line([left - 4, y, left, y], fill='black')
        d.text((8, y - 6), f'1e{e}', fill='black')
    step = 10 if xmax > 30 else 2
    for m in range(0, int(xmax) + 1, step):
        x, _ = xy(m, 10 ** lo)
        d.line([x, H - bottom, x, H - bottom + 4], fill='black')
        d.text((x - 6, H - bottom + 8), str(m), fill='black')
    d.text((W // 2 - 60, H - 20), 'wall time, minutes', fill='black')
    d.text((left + 6, top + 4), 'FD (log)', fill='black')
    y = xy(0, floor)[1]
    for x in range(left, W - right, 12):
        d.line([x, y, x + 6, y], fill=(120, 120, 120))
    d.text((W - right - 150, y - 14), f'real vs real {floor:.1f}', fill=(120, 120, 120))
    for i, (label, pts) in enumerate(curves):
        c = COLOURS[i % len(COLOURS)]
        d.line([xy(m, f) for m, f in pts], fill=c, width=2)
        for m, f in pts:
            x, y = xy(m, f)
            d.ellipse([x - 3, y - 3, x + 3, y + 3], fill=c)
        d.text((W - right - 200, top + 8 + 16 * i), f'{label}: {pts[-1][1]:.1f}', fill=c)
    fmt = Image.registered_extensions().get(Path(path).suffix.lower(), 'PNG')
    atomic_write(path, lambda f: img.save(f, format=fmt))


def main(argv=None):
    flags.configure(globals(), FLAGS, argv, files=['out'])
    files = [f for f in runs.split(',') if f]
    names = labels.split(',') if labels else [Path(f).stem for f in files]
    if not files or len(names) != len(files):
        print('error: --runs: expected comma-separated JSON files, and as many --labels',
              file=sys.stderr)
        raise SystemExit(2)
    try:
        loaded = [load_curve(f) for f in files]
    except (OSError, ValueError, KeyError) as e:
        print(f'error: {e}', file=sys.stderr)
        raise SystemExit(2)
    curves = [(n, pts) for n, (pts, _) in zip(names, loaded)]
    plot(curves, min(fl for _, fl in loaded), out)
    for n, pts in curves:
        print(n + ': ' + ', '.join(f'{m:.1f} min {f:.1f}' for m, f in pts))
    print(f'wrote {out}')


if __name__ == '__main__':
    flags.command(main)
