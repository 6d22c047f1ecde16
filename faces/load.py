"""Faces data: the original's ``faces()`` loader, without fuel.

The original read ``faces_364293_128px.hdf5`` through fuel (``H5PYDataset``, a
``ShuffledScheme`` and ``DataStream``). Here the file is read with ``lib.data_hdf5.H5Dataset``
(the same layout and calls), and the training loop draws its own shuffled minibatches
(lib/train.py), so ``faces()`` returns the two datasets and no streams:

    tr_data, te_data = faces(path=data)
    tr_handle = tr_data.open()
    vaX, = tr_data.get_data(tr_handle, slice(0, nval))

``path`` is the original's file (or any file in its layout), a folder of images (converted once,
lib/data_folder.py), or nothing: synthetic faces with known attributes (faces/synthetic.py).
"""
from pathlib import Path

from lib.data_folder import resolve
from lib.data_hdf5 import H5Dataset


def resolve_path(path=None, size=64, n_synthetic=50000, seed=0, progress=True):
    """The HDF5 file ``faces`` reads for ``path``.

    None: the synthetic faces cache (made on first use, see faces/synthetic.py);
    an .hdf5 file: itself; a folder of images: a converted cache in
    ``<data_dir>/cache/`` (rebuilt when the folder's files change, lib/data_folder.py).
    """
    if path is None or path == '':
        from faces import synthetic
        return synthetic.ensure(n=n_synthetic, seed=seed, size=size, progress=progress)
    return resolve(Path(path), size=size, progress=progress)


def faces(path=None, size=64, npx=None, sources=('features',), n_synthetic=50000, seed=0,
          load_in_memory=None, progress=True):
    """The original's ``faces()`` without its streams: ``(tr_data, te_data)``, H5Dataset each.

    ``tr_data`` holds the 'train' split, ``te_data`` the 'test' split; ``get_data`` returns a
    tuple with one array per source, uint8 ``(b, H, W, 3)`` for 'features'.

    ``path``: None (synthetic faces, ``n_synthetic`` images from ``seed`` at ``size`` px),
    an .hdf5 file in fuel's layout (e.g. the original faces_364293_128px.hdf5), or a folder
    of images (converted once at ``size`` px). ``npx``, when given, checks the images are
    at least that large.
    """
    # PORT: the original took ntrain, nval, ntest and batch_size for fuel's iteration schemes
    # and returned three streams besides; the train script reads the counts off the datasets.
    # PORT: the original read data_dir/faces_364293_128px.hdf5 only; that file still works via path=.
    path = resolve_path(path, size=size, n_synthetic=n_synthetic, seed=seed, progress=progress)
    tr_data = H5Dataset(path, which_sets=('train',), sources=sources, load_in_memory=load_in_memory,
                        npx=npx)
    te_data = H5Dataset(path, which_sets=('test',), sources=sources, load_in_memory=load_in_memory,
                        npx=npx)
    return tr_data, te_data
