"""Writing files so that a crash or a full disk never leaves a half-written one where a reader looks."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def atomic_write(path, data: bytes) -> Path:
    """Write `data` to a temporary file beside `path`, flush it to disk, then rename it into place.
    Raises OSError (callers name the file in their own error); the temporary file never stays behind."""
    path = Path(path)
    directory = path.parent if str(path.parent) else Path(".")
    directory.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def regular_file(path, what: str, max_bytes: int | None = None) -> Path:
    """`path` if it is a regular file of at most `max_bytes` (default MAX_FILE_BYTES); otherwise an InputError
    naming it. Checked before anything opens it: a FIFO or device would block or stream forever."""
    import stat

    from .errors import InputError
    from .validation import MAX_FILE_BYTES

    path = Path(path)
    limit = MAX_FILE_BYTES if max_bytes is None else max_bytes
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise InputError(f"no such {what}: {path}") from None
    except OSError as err:
        raise InputError(f"cannot read the {what} {path} ({err.strerror or err})") from None
    if stat.S_ISDIR(info.st_mode):
        raise InputError(f"the {what} {path} is a folder, not a file")
    if not stat.S_ISREG(info.st_mode):
        raise InputError(f"the {what} {path} is not a regular file (a pipe, socket or device)")
    if info.st_size > limit:
        raise InputError(f"the {what} {path} is {info.st_size / 2**20:,.0f} MiB, more than the limit of "
                         f"{limit / 2**20:,.0f} MiB (EAGLE_WIDGETS_MAX_FILE_BYTES)")
    return path


def file_digest(path, digest, what: str) -> None:
    """Feed a regular file of bounded size into `digest` in 1 MiB chunks (never the whole file in memory)."""
    path = regular_file(path, what)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
