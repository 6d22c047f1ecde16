"""How fast training reads LSUN: the LMDB as distributed (decode, resize, crop per image) against
its one-time HDF5 conversion (lsun/convert.py), on fixture databases of LSUN-sized images.

    python bench/lsun_loader.py [--n=2000] [--rounds=5] [--work=/tmp/lsun_bench] [--json=FILE]

The fixtures: ``n`` synthetic bedrooms (lsun/scenes.py) 256 px high and 256 to 400 px wide, as
LSUN's images are 256 px on their shorter side, with a multi-scale texture added so that they
compress like photographs (about 12 KB each as WebP at quality 75; the released bedroom set
averages about 14 KB), stored once as WebP (as LSUN) and once as JPEG. Each read is what
lib/train.fit asks of the loader: ``nbatch`` random indices, sorted, one minibatch at a time, on
one core. Sources alternate within each round; the table gives the median over rounds and the
ratio to the WebP LMDB's speed in the same round. The fixtures fit in the page cache: reading the
43 GB bedroom database from disk adds its I/O, not measured here.
"""
import json
import os
import time
from pathlib import Path

import numpy as np

from lib import flags

n = 2000                # # of fixture images
nbatch = 128            # # of images per read (the paper's minibatch)
batches = 4             # # of reads per source and round
rounds = 5              # # of rounds, the sources alternating in each
work = '/tmp/lsun_bench'  # where the fixture databases and the conversion are kept
json_out = ''           # write the results here too
seed = 0                # seed of the fixtures and of the indices

FLAGS = flags.declared(globals())  # every value above is a --flag


def textured_room(i, rs):
    """A synthetic bedroom 256 px high, 256 to 400 px wide, with texture at 2 to 16 px scales."""
    from PIL import Image
    from lsun.scenes import room
    w = rs.randint(256, 401)
    x, _ = room(seed * 1_000_003 + i, 256, w)
    t = np.zeros(x.shape)
    for s in (2, 4, 8, 16):
        f = np.clip(rs.randn(256 // s + 1, w // s + 1, 3) * 40 + 128, 0, 255).astype(np.uint8)
        t += np.asarray(Image.fromarray(f).resize((w, 256), Image.Resampling.BICUBIC), float) - 128
    return np.clip(x + t / 4., 0, 255).astype(np.uint8)


def fixtures(folder):
    """(webp LMDB, jpeg LMDB, mean bytes per image of each), made once in ``folder``."""
    from lsun import load
    folder = Path(folder)
    paths = {fmt: folder / f'bedroom_{fmt}_{n}_lmdb' for fmt in ('webp', 'jpeg')}
    if not all((p / 'data.mdb').is_file() for p in paths.values()):
        rs = np.random.RandomState(seed)
        items = {fmt: [] for fmt in paths}
        for i in range(n):
            x = textured_room(i, rs)
            key = b'%040x' % (i * 2654435761 % (1 << 64))
            for fmt in paths:
                items[fmt].append((key, load.encode(x, fmt, quality=75)))
        for fmt, p in paths.items():
            load.write_lmdb(p, items[fmt], map_size=1 << 32)
    sizes = {}
    for fmt, p in paths.items():
        d = load.LSUN(p, npx=64)
        with d.env.begin() as txn:
            sizes[fmt] = float(np.mean([len(txn.get(k)) for k in d.keys]))
        d.close()
    return paths['webp'], paths['jpeg'], sizes


def read_speed(d, rs):
    """Images per second of ``batches`` training-style reads of ``d`` (an lsun.load.LSUN)."""
    t = time.perf_counter()
    got = 0
    for _ in range(batches):
        got += len(d.get(np.sort(rs.choice(len(d), nbatch, replace=False))))
    return got / (time.perf_counter() - t)


def main(argv=None):
    config = flags.configure(globals(), FLAGS, argv, positive=['n', 'nbatch', 'batches', 'rounds'],
                             folders=['work'], files=['json_out'])
    from lsun import convert, load
    folder = Path(work)
    folder.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    webp, jpeg, sizes = fixtures(folder)
    print(f'fixtures: {n} images, WebP {sizes["webp"] / 1e3:.1f} KB, JPEG '
          f'{sizes["jpeg"] / 1e3:.1f} KB each on average ({time.perf_counter() - t:.0f} s) | '
          f'load average {os.getloadavg()[0]:.2f}', flush=True)
    h5 = folder / f'bedroom_webp_{n}_64.hdf5'
    t = time.perf_counter()
    convert.convert(webp, h5, npx=64, workers=1)
    convert_rate = n / (time.perf_counter() - t)
    print(f'conversion of the WebP database to 64 px HDF5, one process: {convert_rate:.0f} '
          f'images/s', flush=True)
    sources = {'LMDB WebP, 64 px': (webp, 64), 'HDF5 conversion, 64 px': (h5, 64),
               'LMDB JPEG, 64 px': (jpeg, 64), 'LMDB WebP, 256 px': (webp, 256),
               'LMDB JPEG, 256 px': (jpeg, 256)}
    readers = {name: load.LSUN(p, npx=px) for name, (p, px) in sources.items()}
    rs = np.random.RandomState(seed)
    speeds = {name: [] for name in sources}
    names = list(sources)
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            speeds[name].append(read_speed(readers[name], rs))
    for d in readers.values():
        d.close()
    base = np.array(speeds[names[0]])
    rows = {name: dict(images_per_s=float(np.median(s)),
                       s_per_minibatch=float(nbatch / np.median(s)),
                       ratio_to_lmdb_webp_64=float(np.median(np.array(s) / base)))
            for name, s in speeds.items()}
    print(f'{"source":<24} {"images/s":>9} {"s/minibatch":>12} {"x LMDB WebP 64":>15}')
    for name, row in rows.items():
        print(f'{name:<24} {row["images_per_s"]:9.0f} {row["s_per_minibatch"]:12.4f} '
              f'{row["ratio_to_lmdb_webp_64"]:15.1f}')
    print(f'load average at the end {os.getloadavg()[0]:.2f}')
    result = dict(config=config, bytes_per_image=sizes, convert_images_per_s=convert_rate,
                  read=rows, read_all_rounds=speeds, load_average=os.getloadavg()[0])
    if json_out:
        Path(json_out).write_text(json.dumps(result, indent=1) + '\n')
    return result


if __name__ == '__main__':
    flags.command(main)
