"""A one-time conversion of an LSUN LMDB database into this project's HDF5 layout, at ``npx`` px.

    python lsun/convert.py --data=PATH/bedroom_train_lmdb --out=PATH/bedroom_64.hdf5 [--npx=64]

Training reads the converted file as it reads the database (``--data=PATH/bedroom_64.hdf5``;
lsun/load.py), without decoding or resizing: each image is decoded, resized and center-cropped
once here, exactly as lsun/load.py does for every minibatch. The conversion streams, ``nbatch``
images at a time in the database's key order, decoded in ``workers`` processes. Undecodable
entries are skipped and counted; the keys of ``--drop`` (lsun/dedup.py's list; ``auto``: its
list for ``--data`` when there is one) are left out. The file holds ``features`` uint8 (N, npx,
npx, 3) (faces/load.py's layout: every row in the 'train' split) and ``keys``: the LSUN key of
each row, so a later drop list still applies. Written to a temporary file and renamed when
complete.
"""
import os
import sys
from pathlib import Path

import numpy as np

from lib import flags
from lib.data_image import DataError

from lsun.load import LSUN, decode_batch, resolve_drop

data = ''               # LSUN's LMDB folder, e.g. bedroom_train_lmdb (required)
out = ''                # the HDF5 file to write (required)
npx = 64                # # of pixels width/height of the stored images (the model's npx)
drop = 'auto'           # keys to leave out (lsun/dedup.py); auto = its list for --data if any; none
limit = 0               # # of images to convert (0 = all)
nbatch = 256            # # of images decoded and written at a time
workers = 0             # # of decoding processes (0 = the CPU count, at most 8)
overwrite = False       # replace an existing --out
progress = True         # show a progress bar

FLAGS = flags.declared(globals())  # every value above is a --flag


def _decode(task):
    indices, values, size = task
    return (indices,) + decode_batch(values, size)


def convert(src, dst, npx=64, drop=(), limit=None, nbatch=256, workers=1, progress=False,
            attrs=None):
    """Write the images of LSUN database ``src`` (minus the keys ``drop``) to ``dst``, decoding
    in ``workers`` processes; returns the counts: dict(written, skipped, dropped)."""
    import h5py

    from lib.data_hdf5 import H5Writer
    d = LSUN(src, npx=npx, drop=drop, limit=limit)
    pool = None
    try:
        with H5Writer(dst, len(d), npx,
                      attrs=dict(source=str(d.path), npx=npx, **(attrs or {}))) as writer:
            keys = writer.f.create_dataset('keys', (len(d),), dtype=h5py.vlen_dtype(bytes),
                                           maxshape=(None,), chunks=(4096,))
            bar = None
            if progress:
                from tqdm import tqdm
                bar = tqdm(total=len(d), desc=f'{d.path.name} -> {Path(dst).name}', unit='img',
                           file=sys.stderr)
            if workers > 1:
                import multiprocessing as mp
                method = 'fork' if 'fork' in mp.get_all_start_methods() else 'spawn'
                pool = mp.get_context(method).Pool(workers)
            step = nbatch * 2 * workers     # read ahead by two batches a worker, no more
            for start in range(0, len(d), step):
                tasks = [(np.arange(i, min(i + nbatch, len(d))), None, npx)
                         for i in range(start, min(start + step, len(d)), nbatch)]
                tasks = [(idx, d.encoded(idx), size) for idx, _, size in tasks]
                for idx, X, ok in (pool.imap(_decode, tasks) if pool else map(_decode, tasks)):
                    d.count_skipped(idx[~ok])
                    keys[writer.n:writer.n + len(X)] = list(d.keys[idx[ok]])
                    writer.write(X)
                    if bar:
                        bar.update(len(idx))
            if bar:
                bar.close()
            keys.resize(writer.n, axis=0)
            writer.finish(ntest=0, attrs=dict(n_skipped=d.n_skipped, n_dropped=d.n_dropped))
        return dict(written=writer.n, skipped=d.n_skipped, dropped=d.n_dropped)
    finally:
        if pool is not None:
            pool.terminate()
            pool.join()
        d.close()


def main(argv=None):
    flags.configure(globals(), FLAGS, argv, positive=['npx', 'nbatch'],
                    non_negative=['limit', 'workers'], files=['out'])
    try:
        if not data or not out:
            raise DataError('--data and --out: required (an LSUN LMDB folder and the HDF5 file '
                            'to write)')
        if Path(out).exists() and not overwrite:
            raise DataError(f'--out={out}: exists; --overwrite to replace it')
        dropped, drop_path = resolve_drop(drop, data)
        counts = convert(data, out, npx, dropped, limit or None, nbatch,
                         workers or min(os.cpu_count() or 1, 8), progress,
                         attrs=dict(drop_list=str(drop_path or '')))
    except DataError as e:
        flags.fail(e)
    print(f'{data}: wrote {counts["written"]} images of {npx}x{npx} to {out} (left out '
          f'{counts["dropped"]} listed in {drop_path or "no drop list"}, skipped '
          f'{counts["skipped"]} undecodable)')
    return counts


if __name__ == '__main__':
    flags.command(main)
