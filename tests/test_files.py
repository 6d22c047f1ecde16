"""lib/files.py: the one atomic writer, for writers given a file object and writers given a path."""
import errno
import os

import pytest

from lib.files import atomic_path, atomic_write, atomic_write_text


def test_atomic_write_replaces_the_file_whole(tmp_path):
    path = tmp_path / "out.bin"
    atomic_write_text(path, "first\n")
    atomic_write(path, lambda f: f.write(b"second"))
    assert path.read_bytes() == b"second"
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]


def test_atomic_path_renames_on_a_clean_exit_only(tmp_path):
    path = tmp_path / "data.h5"
    path.write_bytes(b"old")
    with atomic_path(path) as tmp:
        assert os.path.dirname(tmp) == str(tmp_path) and tmp.endswith(".tmp")
        with open(tmp, "wb") as f:       # a writer that opens the file by name itself
            f.write(b"new")
        assert path.read_bytes() == b"old"
    assert path.read_bytes() == b"new" and not os.path.exists(tmp)

    with pytest.raises(KeyboardInterrupt):
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                f.write(b"half")
            raise KeyboardInterrupt
    assert path.read_bytes() == b"new"
    assert [p.name for p in tmp_path.iterdir()] == ["data.h5"]


def test_a_failed_write_names_the_file(tmp_path):
    """A write() that fails names no file (as ENOSPC from a full disk): re-raised naming ``path``."""
    path = tmp_path / "ckpt.npz"

    def full(f):
        f.write(b"part")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with pytest.raises(OSError) as err:
        atomic_write(path, full)
    assert err.value.errno == errno.ENOSPC and err.value.filename == str(path)
    assert str(err.value) == f"[Errno {errno.ENOSPC}] No space left on device: '{path}'"
    assert not list(tmp_path.iterdir())
