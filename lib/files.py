"""The one atomic writer of the outputs: parameter files, images, checkpoints, logs' rewrites, caches.

``atomic_write(path, write)`` calls ``write(f)`` on a new temporary file beside ``path``, syncs
it and renames it over ``path``: a kill or a full disk mid-write leaves the previous file intact
and removes the temporary one (a kill -9 may leave a ``<name>.<pid>.<hex>.tmp`` behind, never a
half-written ``path``). The file gets the permissions any new file of the user gets (0666 less
the umask), as ``open(path, 'w')`` would give it; ``tempfile.mkstemp`` would make it 0600.

``atomic_path(path)`` is the same for writers that open the file themselves by name (h5py): it
yields the temporary path, and on a clean exit syncs it and renames it over ``path``.
"""
import contextlib
import os
import secrets


@contextlib.contextmanager
def atomic_path(path):
    """``with atomic_path(path) as tmp:`` write the file ``tmp``; it becomes ``path`` on a clean exit.

    On an exception ``tmp`` is removed and the exception goes on (an ``OSError`` that names no
    file is re-raised naming ``path``); ``path`` is left as it was.
    """
    path = os.fspath(path)
    tmp = f"{path}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    try:
        yield tmp
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException as e:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(e, OSError) and e.filename is None:  # a failed write() names no file
            raise OSError(e.errno, e.strerror or str(e), path) from e
        raise


def atomic_write(path, write):
    """Write ``path`` atomically: ``write(f)`` on a binary file object, fsync, rename."""
    with atomic_path(path) as tmp:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with os.fdopen(fd, "wb") as f:
            write(f)


def atomic_write_text(path, text):
    """``atomic_write`` of a UTF-8 string."""
    atomic_write(path, lambda f: f.write(text.encode()))
