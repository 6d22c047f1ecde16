"""Convert a folder of images into the faces HDF5 layout (see faces/load.py).

Every .jpg/.jpeg/.png/.webp/.bmp/.gif/.tif under the folder (recursively) is decoded,
converted to RGB, resized so its short side is ``--size`` (LANCZOS, antialiased) and
center-cropped to ``size x size``. Unreadable files and files smaller than ``size`` are
skipped and counted, never fatal. Files are written in a fixed shuffled order (seed 0) so
the last ``test_fraction`` of rows, the 'test' split, is a random sample of the folder.

Store size: default 64, the model's ``npx``, so the train script's ``center_crop(x, npx)``
is a no-op. PORT: the original's file held 128 px faces and that crop took their central
64 px; convert with ``--size=128`` to reproduce that.

CLI:  python faces/convert.py --src=DIR --out=FILE.hdf5 [--size=64] [--test_fraction=0.05]
"""
import argparse
import hashlib
import os
import sys
from pathlib import Path

import numpy as np

from lib.data_image import IMAGE_EXTS, DataError, ImageTooSmall, default_data_dir, list_images, load_image

TEST_FRACTION = 0.05
WRITE_BATCH = 256


def _load(args):
    path, size, upscale = args
    try:
        return load_image(path, size, upscale=upscale), None
    except ImageTooSmall as err:
        return None, ('small', str(err))
    except DataError as err:
        return None, ('unreadable', str(err))


def convert_folder(src, out, size=64, test_fraction=TEST_FRACTION, workers=None, progress=True,
                   upscale=False, attrs=None, report=True):
    """Convert all images under ``src`` into ``out``; returns ``(out, stats)``.

    ``stats``: dict with ``found``, ``written``, ``unreadable`` and ``small`` counts and
    ``skipped`` (list of one-line reasons). ``upscale`` keeps images smaller than ``size``
    (enlarged) instead of skipping them. Raises ``DataError`` for a missing or empty folder,
    or when no file at all could be read.
    """
    src, out = Path(src), Path(out)
    if size < 1:
        raise DataError(f'--size={size}: expected a positive number of pixels')
    if not 0 <= test_fraction < 1:
        raise DataError(f'--test_fraction={test_fraction}: expected a number in [0, 1)')
    paths = list_images(src)
    if not paths:
        raise DataError(f'{src}: no images found (looked for {", ".join(IMAGE_EXTS)} recursively)')
    order = np.random.default_rng(0).permutation(len(paths))
    paths = [paths[i] for i in order]

    from faces.load import H5Writer
    writer = H5Writer(out, len(paths), size, attrs={'source_dir': str(src.resolve()), 'size': size,
                                                     **(attrs or {})})
    stats = dict(found=len(paths), written=0, unreadable=0, small=0, skipped=[])
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=len(paths), desc=f'{src.name} -> {out.name}', unit='img', file=sys.stderr)
    pending = []
    try:
        jobs = [(p, size, upscale) for p in paths]
        workers = min(workers or os.cpu_count() or 1, 8)
        if workers > 1 and len(jobs) > 64:
            import multiprocessing as mp
            method = 'fork' if 'fork' in mp.get_all_start_methods() else 'spawn'
            pool = mp.get_context(method).Pool(workers)
            results = pool.imap(_load, jobs, chunksize=16)
        else:
            pool, results = None, map(_load, jobs)
        try:
            for img, why in results:
                if img is None:
                    stats[why[0]] += 1
                    stats['skipped'].append(why[1])
                else:
                    pending.append(img)
                    if len(pending) == WRITE_BATCH:
                        writer.write(np.stack(pending))
                        pending = []
                if bar:
                    bar.update(1)
        finally:
            if pool is not None:
                pool.close()
                pool.join()
        if pending:
            writer.write(np.stack(pending))
        stats['written'] = writer.n
        if writer.n == 0:
            raise DataError(f'{src}: none of the {len(paths)} image files could be used '
                            f'({stats["unreadable"]} unreadable, {stats["small"]} smaller than {size} px)')
    except BaseException:
        writer.abort()
        raise
    finally:
        if bar:
            bar.close()
    writer.finish(ntest=int(round(writer.n * test_fraction)),
                  attrs={'n_skipped': stats['unreadable'] + stats['small']})
    if report:
        print(summary(src, out, stats, size), file=sys.stderr)
    return out, stats


def summary(src, out, stats, size):
    """One line: how many images were written and how many were skipped, and why."""
    line = (f'{src}: wrote {stats["written"]} of {stats["found"]} images to {out} '
            f'(skipped {stats["unreadable"]} unreadable, {stats["small"]} smaller than {size} px)')
    if stats['skipped']:
        line += f'; first skipped: {stats["skipped"][0]}'
    return line


def folder_signature(paths, root, size, test_fraction):
    """SHA-1 over the files' relative paths, sizes and mtimes plus the conversion options."""
    h = hashlib.sha1(f'{size} {test_fraction}\n'.encode())
    for p in paths:
        st = p.stat()
        h.update(f'{p.relative_to(root)}\t{st.st_size}\t{st.st_mtime_ns}\n'.encode())
    return h.hexdigest()


def cache_path(folder, size):
    """``<data_dir>/cache/<folder name>_<hash of its absolute path>_<size>px.hdf5``."""
    folder = Path(folder).resolve()
    tag = hashlib.sha1(str(folder).encode()).hexdigest()[:8]
    return default_data_dir() / 'cache' / f'{folder.name}_{tag}_{size}px.hdf5'


def cached(folder, size=64, test_fraction=TEST_FRACTION, progress=True):
    """HDF5 conversion of ``folder`` at ``size`` px, made once and remade when its files change."""
    import h5py

    folder = Path(folder)
    paths = list_images(folder)
    if not paths:
        raise DataError(f'{folder}: no images found (looked for {", ".join(IMAGE_EXTS)} recursively)')
    sig = folder_signature(paths, folder, size, test_fraction)
    out = cache_path(folder, size)
    if out.exists():
        try:
            with h5py.File(out, 'r') as f:
                if f.attrs.get('signature') == sig:
                    return out
        except OSError:
            pass  # unreadable cache: rebuild it
    convert_folder(folder, out, size=size, test_fraction=test_fraction, progress=progress,
                   attrs={'signature': sig})
    return out


def main(argv=None):
    """CLI entry point; bad inputs print one ``error:`` line and exit 2."""
    ap = argparse.ArgumentParser(description='Convert a folder of images to the faces HDF5 layout.')
    ap.add_argument('--src', required=True, help='folder of images (searched recursively)')
    ap.add_argument('--out', required=True, help='output .hdf5 file')
    ap.add_argument('--size', type=int, default=64, help='stored side in px (short side resize + center crop)')
    ap.add_argument('--test_fraction', type=float, default=TEST_FRACTION, help="share of rows in the 'test' split")
    ap.add_argument('--workers', type=int, default=None, help='decoding processes (default: CPU count, max 8)')
    ap.add_argument('--upscale', action='store_true', help='enlarge images smaller than --size instead of skipping')
    args = ap.parse_args(argv)
    try:
        convert_folder(args.src, args.out, size=args.size, test_fraction=args.test_fraction,
                       workers=args.workers, upscale=args.upscale)
    except DataError as err:
        print(f'error: {err}', file=sys.stderr)
        sys.exit(2)


if __name__ == '__main__':
    main()
