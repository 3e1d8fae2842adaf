"""Files only their owner can read: every file epay-tui writes goes through here.

Modes are set explicitly after creation, so a loose umask (``000`` in a container, say)
never leaves a database, a key file or a log readable by other users.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

FILE_MODE = 0o600
DIR_MODE = 0o700


def private_dir(path: str | Path, *, ours: bool = False) -> Path:
    """Create the missing folders of ``path`` as ``0700``.

    A folder that already exists is left as it is (it may be the user's home), unless
    ``ours``: the application's own data folder is tightened to ``0700`` too."""
    path = Path(path)
    missing = []
    for folder in (path, *path.parents):
        if folder.exists():
            break
        missing.append(folder)
    for folder in reversed(missing):
        with contextlib.suppress(FileExistsError):  # made meanwhile by another process
            folder.mkdir(mode=DIR_MODE)
        folder.chmod(DIR_MODE)
    if ours and not missing:
        path.chmod(DIR_MODE)
    return path


def private_file(path: str | Path) -> Path:
    """Make sure ``path`` exists as a file readable and writable by its owner only."""
    path = Path(path)
    private_dir(path.parent)
    fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_APPEND, FILE_MODE)
    try:
        if stat.S_IMODE(os.fstat(fd).st_mode) != FILE_MODE:
            os.fchmod(fd, FILE_MODE)  # an older file, or one made under another umask
    finally:
        os.close(fd)
    return path


def write_private(path: str | Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically, ``0600`` from its first byte."""
    path = Path(path)
    private_dir(path.parent)
    scratch = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(scratch, os.O_CREAT | os.O_EXCL | os.O_WRONLY, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(scratch, path)


def others_can_read(path: str | Path) -> bool:
    return bool(stat.S_IMODE(Path(path).stat().st_mode) & 0o077)
