"""Writing files so that a crash never leaves a truncated file where a good one was."""

import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def write_atomically(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Have `write` fill a temp file beside `path`, fsync it, then rename it over `path`.

    The rename is atomic on POSIX file systems: readers see the old file or the new one,
    never a part. The file gets the usual permissions (0666 less the umask), not the 0600
    that `tempfile.mkstemp` gives.

    Args:
        path: the file to create or replace; its folder is created.
        write: called with the temp file's path; writes the whole content there.

    Returns:
        `path` as a Path.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())  # the bytes are on disk before the name points at them
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def remove_leftovers(folder: str | Path) -> list[Path]:
    """Delete the temp files that a killed `write_atomically` left in `folder`.

    A process killed between creating its temp file and renaming it (SIGKILL, power loss)
    cannot clean up. Call this only while nothing writes into `folder`.

    Returns:
        The files removed.
    """
    leftovers = sorted(Path(folder).glob(".*.tmp"))  # the names write_atomically gives
    for tmp in leftovers:
        tmp.unlink(missing_ok=True)  # another DDP rank may have removed it first
    return leftovers


def _umask() -> int:
    mask = os.umask(0)  # the only way to read it is to set it
    os.umask(mask)
    return mask
