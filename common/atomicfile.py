"""Atomic file writes: a crash or power cut leaves either the old content or the new, never half."""

from __future__ import annotations

import os
import threading
from pathlib import Path


def fsync_dir(path: Path) -> None:
    """Make a folder's entries durable (a rename or a new name in it survives a power cut)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes, *, sync_dir: bool = True) -> None:
    """Write `data` to `path` through a temporary file beside it: write, fsync, rename.

    Readers see the old file or the new one, never half of one. With `sync_dir` the folder is
    fsynced after the rename, so the new name itself is durable. The temporary name is per
    process and thread: concurrent writers never share one.
    """
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{threading.get_ident()}")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    if sync_dir:
        fsync_dir(path.parent)
