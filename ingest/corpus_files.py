"""Walk a corpus folder and open its files without ever following a link.

Checking a path and opening it later is a race: between the two, a file (or a
folder above it) can be swapped for a symlink to anything the ingest may read.
So nothing here opens a path. The walk is `os.fwalk`, which holds a handle on
each folder and only descends into a folder whose handle is the directory it
listed; each file is opened relative to its folder's handle with `O_NOFOLLOW`
(a symlink fails to open), and what was opened is checked before a byte is read:
a regular file, on the corpus root's device (a mount point is not entered). A
file that changes or vanishes while it is read is skipped with a reason; the
next ingest reads it again.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

READ_BLOCK = 1 << 20
_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


class FileSkipped(Exception):
    """This file is not read; the message says why."""


@dataclass(frozen=True, slots=True)
class CorpusFile:
    """A file met by the walk: its path relative to the corpus base, and the handle of
    the folder that holds it (valid while the walk stays in that folder)."""

    rel: str
    name: str
    dir_fd: int
    root_dev: int


def printable(path: str) -> str:
    """`path` as valid Unicode: undecodable bytes of a file name (kept by Python as lone
    surrogates) become `\\xNN`, so the name can be written to JSON and logs."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def walk_files(root: Path, symlinks: list[str]) -> Iterator[CorpusFile]:
    """Every non-hidden file under `root` (a resolved folder or file), folders and files
    in name order. Symlinks (to files or folders) are added to `symlinks`, never entered."""
    if not root.is_dir():
        fd = os.open(root.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            yield CorpusFile(root.name, root.name, fd, os.fstat(fd).st_dev)
        finally:
            os.close(fd)
        return
    root_dev: int | None = None
    for folder, dirs, files, dir_fd in os.fwalk(root, follow_symlinks=False):
        here = Path(folder).relative_to(root)
        if root_dev is None:
            root_dev = os.fstat(dir_fd).st_dev
        kept = []
        for name in sorted(dirs):
            rel = (here / name).as_posix()
            if name.startswith("."):
                continue
            kind = _kind(name, dir_fd)
            if kind == "link":
                symlinks.append(rel)
            elif kind == "dir":
                kept.append(name)
        dirs[:] = kept  # fwalk still checks each is the folder it listed before entering
        for name in sorted(files):
            if name.startswith("."):
                continue
            rel = (here / name).as_posix()
            if _kind(name, dir_fd) == "link":
                symlinks.append(rel)
                continue
            yield CorpusFile(rel, name, dir_fd, root_dev)


def _kind(name: str, dir_fd: int) -> str:
    try:
        mode = os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode
    except OSError:
        return "gone"
    return "link" if stat.S_ISLNK(mode) else "dir" if stat.S_ISDIR(mode) else "file"


def read_file(file: CorpusFile, max_bytes: int) -> bytes:
    """The bytes of `file`, opened without following links and checked before reading.
    Raises FileSkipped (gone, a symlink, not a regular file, another device, over
    `max_bytes`, empty, or changed while read)."""
    try:
        fd = os.open(file.name, _OPEN_FLAGS, dir_fd=file.dir_fd)
    except FileNotFoundError as exc:
        raise FileSkipped("file disappeared while the folder was read") from exc
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise FileSkipped("symlink is not followed (it replaced the file mid-walk)") from exc
        raise FileSkipped(f"cannot read file: {exc.strerror or exc}") from exc
    try:
        before = os.fstat(fd)
        _check_opened(before, file.root_dev, max_bytes)
        data = _read_all(fd, before.st_size)
        after = os.fstat(fd)
    except OSError as exc:
        raise FileSkipped(f"cannot read file: {exc.strerror or exc}") from exc
    finally:
        os.close(fd)
    if (
        len(data) != before.st_size
        or after.st_size != before.st_size
        or after.st_mtime_ns != before.st_mtime_ns
    ):
        raise FileSkipped("file changed while it was read; the next ingest reads it again")
    return data


def _check_opened(opened: os.stat_result, root_dev: int, max_bytes: int) -> None:
    if not stat.S_ISREG(opened.st_mode):
        raise FileSkipped("not a regular file (a device, pipe or socket)")
    if opened.st_dev != root_dev:
        raise FileSkipped("on another file system than the corpus root (a mount point)")
    if opened.st_size > max_bytes:
        raise FileSkipped(
            f"file is {opened.st_size:,} bytes, over the {max_bytes:,}-byte limit "
            "(KB_MAX_FILE_BYTES)"
        )
    if opened.st_size == 0:
        raise FileSkipped("empty file")


def _read_all(fd: int, size: int) -> bytes:
    """Up to `size + 1` bytes (one more shows the file grew while it was read)."""
    parts: list[bytes] = []
    left = size + 1
    while left > 0:
        part = os.read(fd, min(left, READ_BLOCK))
        if not part:
            break
        parts.append(part)
        left -= len(part)
    return b"".join(parts)
