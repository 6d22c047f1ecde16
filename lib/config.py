"""Where the datasets live: ``data_dir()``.

An explicit path (a ``--data_dir`` flag passed through) wins, then ``$DCGAN_DATA_DIR``, then
``<repo>/data``.
"""
import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def data_dir(path=None):
    """The data folder as a Path: ``path`` if given, else ``$DCGAN_DATA_DIR``, else ``<repo>/data``."""
    # PORT: the original hard-coded data_dir = '/home/indico/datasets/iclr2016'
    if path:
        return Path(path).expanduser()
    env = os.environ.get('DCGAN_DATA_DIR')
    return Path(env).expanduser() if env else REPO / 'data'
