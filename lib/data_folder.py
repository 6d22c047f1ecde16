"""A folder of images as an image HDF5 file (lib/data_hdf5.py's layout), converted once and cached.

Every .jpg/.jpeg/.png/.webp/.bmp/.gif/.tif under the folder (recursively) is decoded,
converted to RGB, resized so its short side is ``size`` (LANCZOS, antialiased) and
center-cropped to ``size x size`` (``lib.data_image.load_image``). Unreadable files and files
smaller than ``size`` are skipped and counted, never fatal. Files are written in a fixed
shuffled order (seed 0) so the last ``test_fraction`` of rows, the 'test' split, is a random
sample of the folder.

``resolve(path, size)`` is what the loaders (faces, imagenet) call: an .hdf5 file is itself; a
folder is converted once into ``<data_dir>/cache/`` and converted again when its files change.
faces/convert.py is the command that converts a folder into a file of one's choosing.
"""
import hashlib
import os
import sys
from pathlib import Path

import numpy as np

from lib.data_hdf5 import HDF5_EXTS, H5Writer
from lib.data_image import (IMAGE_EXTS, DataError, ImageTooSmall, default_data_dir, imap_ordered,
                            list_images, load_image)

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
    ``skipped`` (list of one-line reasons). ``workers`` decoding processes (default: the CPU
    count, at most 8). ``upscale`` keeps images smaller than ``size`` (enlarged) instead of
    skipping them. Raises ``DataError`` for a missing or empty folder, or when no file at all
    could be read.
    """
    from tqdm import tqdm

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

    stats = dict(found=len(paths), written=0, unreadable=0, small=0, skipped=[])
    jobs = [(p, size, upscale) for p in paths]
    # a few files are quicker in this process than in a pool
    workers = min(workers or os.cpu_count() or 1, 8) if len(jobs) > 64 else 1
    pending = []
    with H5Writer(out, len(paths), size, attrs={'source_dir': str(src.resolve()), 'size': size,
                                                **(attrs or {})}) as writer, \
            tqdm(total=len(paths), desc=f'{src.name} -> {out.name}', unit='img', file=sys.stderr,
                 disable=not progress) as bar:
        for img, why in imap_ordered(_load, jobs, workers, chunksize=16):
            if img is None:
                stats[why[0]] += 1
                stats['skipped'].append(why[1])
            else:
                pending.append(img)
                if len(pending) == WRITE_BATCH:
                    writer.write(np.stack(pending))
                    pending = []
            bar.update(1)
        if pending:
            writer.write(np.stack(pending))
        stats['written'] = writer.n
        if writer.n == 0:
            raise DataError(f'{src}: none of the {len(paths)} image files could be used '
                            f'({stats["unreadable"]} unreadable, {stats["small"]} smaller than {size} px)')
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


def resolve(path, size, progress=True):
    """The HDF5 file for ``path``: an .hdf5 file itself, or a folder's cached conversion at ``size`` px."""
    path = Path(path).expanduser()
    if path.is_dir():
        return cached(path, size=size, progress=progress)
    if not path.exists():
        raise DataError(f'{path}: no such file or folder (expected an .hdf5 file or a folder of images)')
    if path.suffix.lower() not in HDF5_EXTS:
        raise DataError(f'{path}: expected an .hdf5 file or a folder of images')
    return path
