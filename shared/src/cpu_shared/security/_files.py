"""Local secret files for development runs (dev signing key, dev master keys).

In production every secret comes from the environment (a secret store); these files exist so
that ``make up`` works on a fresh machine without anyone pasting keys around.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path


class InsecureKeyFileError(RuntimeError):
    """A local key file can be read by other users of the machine; it is not used."""


def read_private_file(path: Path) -> bytes:
    """Read a secret file, refusing one that group or others may read (as OpenSSH does)."""
    fd = os.open(path, os.O_RDONLY)
    with os.fdopen(fd, "rb") as handle:
        # fstat on the open descriptor: the mode checked is the mode of the file read.
        mode = os.fstat(handle.fileno()).st_mode
        if os.name == "posix" and mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise InsecureKeyFileError(
                f"{path} is accessible to other users (mode {stat.filemode(mode)}); "
                f"run `chmod 600 {path}` or remove it to have a new one generated"
            )
        return handle.read()


def read_or_create_private_file(path: Path, generate: Callable[[], bytes]) -> bytes:
    """Read ``path``; if it does not exist, create it with ``generate()`` and mode 0600.

    Several service processes start at once under ``make up``, so creation must be atomic and
    first-writer-wins: the content is written to a private temporary file in the same
    directory and hard-linked into place, which fails if another process got there first; then
    everyone reads the one file that won. No process ever reads a half-written key.
    """
    path = Path(path)
    with contextlib.suppress(FileNotFoundError):
        return read_private_file(path)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        # mkstemp creates the file with mode 0600 whatever the umask.
        with os.fdopen(fd, "wb") as handle:
            handle.write(generate())
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(tmp_name, path)
        except FileExistsError:
            pass  # another process created it first; use theirs
        except OSError:
            # A filesystem without hard links: exclusive create is still first-writer-wins.
            with contextlib.suppress(FileExistsError):
                _create_exclusive(path, Path(tmp_name).read_bytes())
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
    return read_private_file(path)


def _create_exclusive(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
