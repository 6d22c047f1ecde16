"""Convert a folder of images into the faces HDF5 layout (lib/data_hdf5.py), once, to a file.

    python faces/convert.py --src=DIR --out=FILE.hdf5 [--size=64] [--test_fraction=0.05]

An existing ``--out`` is refused unless ``--overwrite`` (then replaced atomically).

Every image under ``--src`` (recursively) is resized so its short side is ``--size`` and
center-cropped; unreadable and too small files are skipped and counted (lib/data_folder.py,
which also converts a folder given to the train script as ``--data=DIR``, into a cache).

Store size: default 64, the model's ``npx``, so the train script's ``center_crop(x, npx)``
is a no-op. PORT: the original's file held 128 px faces and that crop took their central
64 px; convert with ``--size=128`` to reproduce that.
"""
from pathlib import Path

from lib import flags
from lib.data_folder import TEST_FRACTION, convert_folder
from lib.data_image import exit_on_data_error

src = ''                        # folder of images (searched recursively)
out = ''                        # the .hdf5 file written
size = 64                       # stored side in px (short side resize + center crop)
test_fraction = TEST_FRACTION   # share of rows in the 'test' split
workers = 0                     # decoding processes (0: the CPU count, at most 8)
upscale = False                 # enlarge images smaller than --size instead of skipping them
overwrite = False               # replace an existing --out

FLAGS = flags.declared(globals())  # every value above is a --flag


def main(argv=None):
    """Convert ``--src`` into ``--out``; a bad flag or folder is one ``error:`` line, exit 2."""
    flags.configure(globals(), FLAGS, argv, positive=['size'], non_negative=['workers'],
                    fractions=['test_fraction'], files=['out'])
    for name in ('src', 'out'):
        if not globals()[name]:
            flags.fail(f'--{name}: required (python faces/convert.py --src=DIR --out=FILE.hdf5)')
    if Path(out).exists() and not overwrite:
        flags.fail(f'--out={out}: exists; --overwrite to replace it')
    return exit_on_data_error(convert_folder, src, out, size=size, test_fraction=test_fraction,
                              workers=workers or None, upscale=upscale)


if __name__ == '__main__':
    flags.command(main)
