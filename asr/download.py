"""Downloading and unpacking corpora: resumable HTTP download, sha256 checks, safe extraction.

Transfers and archives use the standard library (urllib, tarfile, zipfile; tqdm shows progress),
so recipes work wherever Python does. Extraction validates every member before anything is
written: absolute paths, ``..`` components, links and device files are refused outright
instead of being silently "fixed", because an archive holding them is not the one we expected.
"""

import hashlib
import http.client
import lzma
import os
import re
import stat
import sys
import tarfile
import urllib.error
import urllib.request
import zipfile
import zlib
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

from tqdm import tqdm

CHUNK_BYTES = 1 << 20  # bytes read from the network / disk per step
TIMEOUT_S = 60.0  # socket timeout for one network operation, seconds
PARTIAL_SUFFIX = ".part"  # an unfinished download lives next to its target under this suffix


class DownloadError(Exception):
    """A download that failed or produced a file we refuse to use."""


class ChecksumError(DownloadError):
    """The downloaded bytes do not match the expected sha256."""


class CorruptArchiveError(DownloadError):
    """A tar or zip file that ends early or does not decompress."""


class UnsafeArchiveError(Exception):
    """An archive member that would write outside the target or is not a plain file/folder."""


def sha256sum(path: str | Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def _show_progress() -> bool:
    return sys.stderr.isatty()


def download(
    url: str,
    dest: str | Path,
    sha256: str | None = None,
    timeout: float = TIMEOUT_S,
) -> Path:
    """Download `url` to `dest`, resuming an interrupted download, verifying `sha256`.

    Bytes go to ``dest + ".part"`` first; an existing partial file is continued with an HTTP
    ``Range`` request (a server that ignores ranges makes it start over). The file is renamed to
    `dest` only once complete and verified. An existing `dest` is kept when it matches `sha256`
    (or when no checksum is given).

    Args:
        url: http(s) or file URL.
        dest: target file.
        sha256: expected hex digest; None skips verification.
        timeout: socket timeout in seconds.

    Returns:
        `dest` as a Path.

    Raises:
        ChecksumError: the finished download does not match `sha256` (the bad file is deleted).
        DownloadError: the server refused the request or the connection failed.
    """
    dest = Path(dest)
    expected = sha256.lower() if sha256 else None
    if dest.exists():
        if expected is None or sha256sum(dest) == expected:
            return dest
        dest.unlink()  # a stale or corrupt copy: fetch again
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(dest.name + PARTIAL_SUFFIX)
    try:
        _fetch(url, partial, timeout)
    except urllib.error.HTTPError as err:  # the server answered: nothing to resume
        raise DownloadError(f"downloading {url} failed ({err})") from err
    except (urllib.error.URLError, http.client.HTTPException, OSError) as err:
        raise DownloadError(f"downloading {url} failed ({err}); run again to resume") from err
    if expected is not None:
        actual = sha256sum(partial)
        if actual != expected:
            partial.unlink()
            raise ChecksumError(
                f"{url}: sha256 mismatch (expected {expected}, got {actual}); "
                "the download was deleted"
            )
    os.replace(partial, dest)
    return dest


def _fetch(url: str, partial: Path, timeout: float) -> None:
    """Append the rest of `url` to `partial` (which may not exist yet)."""
    offset = partial.stat().st_size if partial.exists() else 0
    request = urllib.request.Request(url)
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as err:
        if err.code == 416 and offset:  # range not satisfiable: we already have every byte
            return
        raise
    with response:
        resumed = offset > 0 and response.status == 206
        if not resumed:
            offset = 0  # the server sent the whole file
        length = response.headers.get("Content-Length")
        total = offset + int(length) if length is not None else None
        with (
            open(partial, "ab" if resumed else "wb") as out,
            tqdm(
                total=total,
                initial=offset,
                unit="B",
                unit_scale=True,
                desc=partial.name.removesuffix(PARTIAL_SUFFIX),
                disable=not _show_progress(),
            ) as bar,
        ):
            while chunk := response.read(CHUNK_BYTES):
                out.write(chunk)
                bar.update(len(chunk))
    if total is not None and partial.stat().st_size != total:
        raise DownloadError(
            f"{url}: connection closed after {partial.stat().st_size} of {total} bytes; "
            "run again to resume"
        )


def _check_member_name(name: str, archive: Path) -> None:
    path = PurePosixPath(name.replace("\\", "/"))
    if path.is_absolute() or re.match(r"[A-Za-z]:", name):
        raise UnsafeArchiveError(f"{archive}: member {name!r} has an absolute path")
    if ".." in path.parts:
        raise UnsafeArchiveError(f"{archive}: member {name!r} has a '..' component")


def _check_tar_members(members: Iterable[tarfile.TarInfo], archive: Path) -> None:
    for member in members:
        _check_member_name(member.name, archive)
        if member.issym() or member.islnk():
            raise UnsafeArchiveError(f"{archive}: member {member.name!r} is a link")
        if not (member.isfile() or member.isdir()):
            raise UnsafeArchiveError(
                f"{archive}: member {member.name!r} is a device, fifo or other special file"
            )


def _check_zip_members(members: Iterable[zipfile.ZipInfo], archive: Path) -> None:
    for member in members:
        _check_member_name(member.filename, archive)
        kind = stat.S_IFMT(member.external_attr >> 16)  # 0 when the zip records no file type
        if kind and kind not in (stat.S_IFREG, stat.S_IFDIR):
            raise UnsafeArchiveError(
                f"{archive}: member {member.filename!r} is a link or special file"
            )


def safe_extract(archive: str | Path, dest: str | Path) -> Path:
    """Extract a tar (any compression) or zip archive into `dest`, refusing unsafe members.

    Every member is checked before the first byte is written; the archive is refused when a
    member has an absolute path or a ``..`` component, is a symbolic or hard link, or is a
    device file or fifo.

    Returns:
        `dest` as a Path.

    Raises:
        UnsafeArchiveError: the archive holds an unsafe member; nothing was extracted.
        CorruptArchiveError: the archive is truncated or corrupt (it is read to its end
            before anything is written, so nothing was extracted either).
        ValueError: the file is neither a tar nor a zip archive.
    """
    archive, dest = Path(archive), Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    try:
        _extract(archive, dest)
    except (
        tarfile.TarError,
        zipfile.BadZipFile,
        EOFError,
        zlib.error,
        lzma.LZMAError,
        OSError,
    ) as err:
        # An OSError with an errno is the disk's, not the archive's; gzip's and bz2's have none.
        if isinstance(err, OSError) and err.errno is not None:
            raise
        raise CorruptArchiveError(f"{archive}: truncated or corrupt archive ({err})") from None
    return dest


def fetch_archive(url: str, archive: str | Path, dest: str | Path, sha256: str | None) -> Path:
    """`download` `url` to `archive`, then `safe_extract` it into `dest` (returned).

    A download that turns out truncated or corrupt is deleted, so that the next run fetches
    it anew instead of finding it complete (without a checksum nothing else would tell).
    """
    path = download(url, archive, sha256=sha256)
    try:
        return safe_extract(path, dest)
    except (CorruptArchiveError, ValueError) as err:  # ValueError: no archive (cut too early?)
        path.unlink(missing_ok=True)
        raise CorruptArchiveError(f"{err}; deleted: run again to download it anew") from None


def _extract(archive: Path, dest: Path) -> None:
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            _check_zip_members(zf.infolist(), archive)
            # Read every member first: extractall meets a bad CRC only after writing those
            # before it.
            damaged = zf.testzip()
            if damaged is not None:
                raise zipfile.BadZipFile(f"member {damaged!r} fails its CRC check")
            zf.extractall(dest)
        return
    if not tarfile.is_tarfile(archive):
        raise ValueError(f"{archive}: not a tar or zip archive")
    with tarfile.open(archive) as tf:
        members = tf.getmembers()
        # A damaged member header reads as the archive's end. What follows an intact
        # archive's end is zero padding; reading it to the end also checks a compressed
        # stream's checksum.
        while chunk := tf.fileobj.read(CHUNK_BYTES):
            if chunk.strip(b"\0"):
                raise tarfile.ReadError("data after the end of the archive: a damaged header")
        _check_tar_members(members, archive)
        # The "data" filter (Python >= 3.11.4) re-checks paths and drops unsafe permission bits.
        if hasattr(tarfile, "data_filter"):
            tf.extractall(dest, members=members, filter="data")
        else:  # pragma: no cover - older Pythons; members were validated above
            tf.extractall(dest, members=members)
