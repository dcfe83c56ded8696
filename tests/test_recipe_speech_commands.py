"""Tests for recipes/speech_commands/prepare.py and asr.download, offline.

A tiny archive in the official layout is served by a local HTTP server (127.0.0.1, a thread
that shuts itself down) that understands Range requests and can cut a transfer short.
"""

import hashlib
import importlib.util
import io
import os
import shutil
import stat
import tarfile
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from asr.download import (
    ChecksumError,
    CorruptArchiveError,
    DownloadError,
    UnsafeArchiveError,
    download,
    fetch_archive,
    safe_extract,
)
from asr.manifest import read_manifest

REPO = Path(__file__).resolve().parents[1]
SERVER_LIFETIME_S = 60.0  # the test server stops itself after this long, whatever happens
NAME = "speech_commands_v0.02.tar.gz"  # the archive the test server serves


def load_recipe():
    path = REPO / "recipes/speech_commands/prepare.py"
    spec = importlib.util.spec_from_file_location("speech_commands_prepare", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


sc = load_recipe()

# word -> speaker hashes; each speaker says the word twice (_nohash_0, _nohash_1)
WORDS = {"yes": ["aaaa1111", "bbbb2222", "cccc3333"], "no": ["aaaa1111", "dddd4444"]}
DEV = ["yes/bbbb2222_nohash_0.wav", "yes/bbbb2222_nohash_1.wav"]
TEST = ["yes/cccc3333_nohash_0.wav", "yes/cccc3333_nohash_1.wav", "no/dddd4444_nohash_0.wav"]


def wav_bytes(seconds: float) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, np.zeros(int(16000 * seconds)), 16000, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def add_file(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def make_archive() -> bytes:
    """A speech_commands_v0.02.tar.gz look-alike (members start with './' like the real one)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for word, speakers in WORDS.items():
            for speaker in speakers:
                for n in range(2):
                    add_file(tar, f"./{word}/{speaker}_nohash_{n}.wav", wav_bytes(1.0))
        add_file(tar, "./_background_noise_/white_noise.wav", wav_bytes(3.0))
        add_file(tar, "./_background_noise_/README.md", b"noise")
        add_file(tar, "./validation_list.txt", "\n".join(DEV).encode() + b"\n")
        add_file(tar, "./testing_list.txt", "\n".join(TEST).encode() + b"\n")
        add_file(tar, "./LICENSE", b"CC BY 4.0")
    return buffer.getvalue()


class Server:
    """Serves `payload` at /NAME (other paths: 404); honours Range; can cut the next
    transfers short."""

    def __init__(self, payload: bytes) -> None:
        self.payload = payload
        self.ranges: list[str | None] = []  # Range header of every request
        self.cut_after: int | None = None  # send only this many bytes of the next response
        self.honour_range = True
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                header = self.headers.get("Range")
                server.ranges.append(header)
                if self.path != f"/{NAME}":
                    self.send_error(404)
                    return
                start = 0
                if header and server.honour_range:
                    start = int(header.removeprefix("bytes=").split("-")[0])
                body = server.payload[start:]
                if start >= len(server.payload) and header and server.honour_range:
                    self.send_response(416)
                    self.end_headers()
                    return
                self.send_response(206 if start else 200)
                self.send_header("Content-Length", str(len(body)))
                if start:
                    total = len(server.payload)
                    self.send_header("Content-Range", f"bytes {start}-{total - 1}/{total}")
                self.end_headers()
                if server.cut_after is not None:
                    body, server.cut_after = body[: server.cut_after], None
                    self.wfile.write(body)
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/{NAME}"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.stopper = threading.Timer(SERVER_LIFETIME_S, self.httpd.shutdown)

    def __enter__(self) -> "Server":
        self.thread.start()
        self.stopper.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopper.cancel()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


@pytest.fixture(scope="module")
def archive() -> bytes:
    return make_archive()


@pytest.fixture
def server(archive):
    with Server(archive) as s:
        yield s


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_prepare_from_download(tmp_path, server, archive):
    out = tmp_path / "sc"
    assert sc.main(["--url", server.url, "--sha256", sha(archive), "--out", str(out)]) == 0
    manifests = {name: read_manifest(out / f"{name}.jsonl") for name in sc.OUTPUTS}
    assert {name: len(m) for name, m in manifests.items()} == {
        "train": 5,
        "dev": 2,
        "test": 3,
        "noise": 1,
    }
    assert {r["text"] for r in manifests["train"]} == {"yes", "no"}
    assert {r["speaker"] for r in manifests["dev"]} == {"bbbb2222"}
    assert {r["speaker"] for r in manifests["test"]} == {"cccc3333", "dddd4444"}
    assert not {r["speaker"] for r in manifests["train"]} & {"bbbb2222", "cccc3333"}
    assert all(r["duration"] == pytest.approx(1.0) for r in manifests["train"])
    assert manifests["noise"][0]["text"] == ""
    assert manifests["noise"][0]["duration"] == pytest.approx(3.0)
    assert Path(manifests["noise"][0]["audio"]).name == "white_noise.wav"
    # Second run: nothing downloaded again, manifests up to date.
    requests = len(server.ranges)
    assert sc.main(["--url", server.url, "--sha256", sha(archive), "--out", str(out)]) == 0
    assert len(server.ranges) == requests


def test_download_resumes_an_interrupted_transfer(tmp_path, server, archive):
    dest = tmp_path / "a.tar.gz"
    server.cut_after = len(archive) // 3
    with pytest.raises(DownloadError, match="run again to resume"):
        download(server.url, dest, sha256=sha(archive))
    partial = tmp_path / "a.tar.gz.part"
    assert partial.stat().st_size == len(archive) // 3
    assert not dest.exists()
    download(server.url, dest, sha256=sha(archive))
    assert server.ranges == [None, f"bytes={len(archive) // 3}-"]
    assert dest.read_bytes() == archive
    assert not partial.exists()


def test_download_restarts_when_server_ignores_range(tmp_path, server, archive):
    server.honour_range = False
    dest = tmp_path / "a.tar.gz"
    (tmp_path / "a.tar.gz.part").write_bytes(archive[:100])
    download(server.url, dest, sha256=sha(archive))
    assert dest.read_bytes() == archive


def test_download_of_complete_partial_file(tmp_path, server, archive):
    dest = tmp_path / "a.tar.gz"
    (tmp_path / "a.tar.gz.part").write_bytes(archive)  # all bytes there, not yet renamed
    download(server.url, dest, sha256=sha(archive))
    assert dest.read_bytes() == archive


def test_checksum_mismatch_is_refused(tmp_path, server):
    dest = tmp_path / "a.tar.gz"
    with pytest.raises(ChecksumError, match="sha256 mismatch"):
        download(server.url, dest, sha256="0" * 64)
    assert not dest.exists()
    assert not (tmp_path / "a.tar.gz.part").exists()
    code = sc.main(["--url", server.url, "--sha256", "0" * 64, "--out", str(tmp_path / "sc")])
    assert code == 1
    assert not (tmp_path / "sc" / "train.jsonl").exists()


def test_a_file_missing_on_the_server_is_named_and_not_resumable(tmp_path, server):
    url = server.url.replace(NAME, "speech_commands_v0.01.tar.gz")
    dest = tmp_path / "a.tar.gz"
    with pytest.raises(DownloadError) as info:
        download(url, dest)
    message = str(info.value)
    assert url in message and "404" in message
    assert "resume" not in message  # the server answered: running again changes nothing
    assert list(tmp_path.iterdir()) == []  # no file, no partial file


def test_a_complete_download_with_a_wrong_checksum_is_fetched_again(tmp_path, server, archive):
    dest = tmp_path / "a.tar.gz"
    dest.write_bytes(archive[:-1] + b"?")  # the right size, a byte wrong
    download(server.url, dest, sha256=sha(archive))
    assert dest.read_bytes() == archive
    assert server.ranges == [None]  # fetched whole, not resumed from the stale copy


def evil_tar(path: Path, kind: str) -> Path:
    with tarfile.open(path, "w") as tar:
        add_file(tar, "./yes/ok_nohash_0.wav", b"fine")
        if kind == "dotdot":
            add_file(tar, "./yes/../../escaped.txt", b"bad")
        elif kind == "absolute":
            add_file(tar, str(path.parent / "absolute.txt"), b"bad")
        else:
            info = tarfile.TarInfo("./yes/link")
            info.type = {
                "symlink": tarfile.SYMTYPE,
                "hardlink": tarfile.LNKTYPE,
                "device": tarfile.CHRTYPE,
                "fifo": tarfile.FIFOTYPE,
            }[kind]
            info.linkname = "/etc/passwd"
            tar.addfile(info)
    return path


@pytest.mark.parametrize("kind", ["dotdot", "absolute", "symlink", "hardlink", "device", "fifo"])
def test_malicious_tar_is_refused_before_extracting(tmp_path, kind):
    archive = evil_tar(tmp_path / "evil.tar", kind)
    target = tmp_path / "x" / "y"
    with pytest.raises(UnsafeArchiveError):
        safe_extract(archive, target)
    assert list(target.iterdir()) == []  # not even the harmless member was written
    assert not (tmp_path / "escaped.txt").exists()
    assert not (tmp_path / "absolute.txt").exists()


def test_malicious_zip_is_refused(tmp_path):
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("ok.txt", "fine")
        zf.writestr("../escaped.txt", "bad")
    with pytest.raises(UnsafeArchiveError, match=r"'\.\.' component"):
        safe_extract(archive, tmp_path / "x")
    assert not (tmp_path / "escaped.txt").exists()
    assert list((tmp_path / "x").iterdir()) == []


def test_zip_symlink_is_refused(tmp_path):
    archive = tmp_path / "link.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        info = zipfile.ZipInfo("link")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, "/etc/passwd")
    with pytest.raises(UnsafeArchiveError, match="link"):
        safe_extract(archive, tmp_path / "x")


def test_malicious_archive_download_is_refused_by_the_recipe(tmp_path):
    data = evil_tar(tmp_path / "evil.tar", "dotdot").read_bytes()
    with Server(data) as server:
        code = sc.main(["--url", server.url, "--sha256", sha(data), "--out", str(tmp_path / "sc")])
    assert code == 1
    assert not (tmp_path / "escaped.txt").exists()
    assert not (tmp_path / "sc" / "raw" / sc.COMPLETE_MARKER).exists()


def test_safe_extract_extracts_a_good_archive(tmp_path, archive):
    path = tmp_path / "good.tar.gz"
    path.write_bytes(archive)
    safe_extract(path, tmp_path / "x")
    assert (tmp_path / "x" / "yes" / "aaaa1111_nohash_0.wav").is_file()
    assert (tmp_path / "x" / "validation_list.txt").read_text().split() == DEV


@pytest.mark.parametrize("damage", ["truncated", "corrupt middle"])
def test_a_damaged_download_is_named_deleted_and_fetched_anew(tmp_path, archive, damage, capsys):
    """Without a checksum a complete-looking archive is kept: one that ends early or does not
    decompress would fail every later run the same way (a traceback before this fix)."""
    middle = len(archive) // 2
    if damage == "truncated":
        bad = archive[:middle]
    else:
        bad = archive[:middle] + bytes(b ^ 0xFF for b in archive[middle : middle + 64])
        bad += archive[middle + 64 :]
    out = tmp_path / "sc"
    with Server(bad) as server:
        assert sc.main(["--url", server.url, "--sha256", "", "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "truncated or corrupt archive" in err and "download it anew" in err
    assert not list((out / "downloads").iterdir())  # deleted: the next run fetches it again
    assert not (out / "raw" / sc.COMPLETE_MARKER).exists()
    with Server(archive) as server:
        assert sc.main(["--url", server.url, "--sha256", "", "--out", str(out)]) == 0
    assert len(read_manifest(out / "train.jsonl")) == 5


def test_manifests_follow_their_source_and_the_extraction_its_archive(tmp_path, archive):
    """Manifests made from another extracted copy are not up to date, whatever the list
    files' times (a tar extraction keeps the archive's); and an extraction folder made from
    one archive is not silently reused for another URL or checksum."""
    first, second = tmp_path / "first", tmp_path / "second"
    for folder in (first, second):
        path = tmp_path / "a.tar.gz"
        path.write_bytes(archive)
        safe_extract(path, folder)
    shutil.rmtree(second / "no")  # the second copy lacks a word
    for name in (sc.DEV_LIST, sc.TEST_LIST):
        os.utime(second / name, (1, 1))  # older than any manifest
    (second / sc.TEST_LIST).write_text("\n".join(TEST[:2]) + "\n")
    os.utime(second / sc.TEST_LIST, (1, 1))
    out = tmp_path / "sc"
    assert sc.main(["--source", str(first), "--out", str(out)]) == 0
    assert sc.main(["--source", str(second), "--out", str(out)]) == 0
    train = read_manifest(out / "train.jsonl")
    assert {r["text"] for r in train} == {"yes"}
    assert all(Path(r["audio"]).is_relative_to(second) for r in train)

    with Server(archive) as server:
        assert sc.main(["--url", server.url, "--sha256", sha(archive), "--out", str(out)]) == 0
        code = sc.main(["--url", server.url, "--sha256", "0" * 64, "--out", str(out)])
    assert code == 1


def test_damaged_archives_of_every_kind_are_named_as_such(tmp_path, archive):
    """A plain tar has no checksum: a damaged member header read as the archive's end and
    the rest was dropped silently; bz2 reports damage as a bare OSError; a zip cut before
    its directory is no zip at all. `fetch_archive` deletes each so the next run refetches."""
    plain = io.BytesIO()
    with tarfile.open(fileobj=plain, mode="w") as tar:
        for n in range(4):
            add_file(tar, f"./yes/aaaa1111_nohash_{n}.wav", wav_bytes(0.1))
    data = bytearray(plain.getvalue())
    second = data.index(b"./yes/aaaa1111_nohash_1.wav")
    data[second : second + 40] = b"\xff" * 40  # the second header's name and checksum
    big = io.BytesIO()  # bz2 compresses in 900 kB blocks: damage past the first one
    with tarfile.open(fileobj=big, mode="w:bz2") as tar:
        add_file(tar, "./noise.bin", np.random.default_rng(0).bytes(2_000_000))
        add_file(tar, "./yes/aaaa1111_nohash_0.wav", wav_bytes(0.1))
    bz2_data = bytearray(big.getvalue())
    at = len(bz2_data) * 4 // 5
    bz2_data[at : at + 32] = b"\x00" * 32
    zipped = io.BytesIO()
    with zipfile.ZipFile(zipped, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("yes/a.wav", wav_bytes(1.0))
    cases = {
        "plain.tar": bytes(data),
        "corrupt.tar.bz2": bytes(bz2_data),
        "cut.zip": zipped.getvalue()[: len(zipped.getvalue()) // 2],
    }
    for name, content in cases.items():
        path = tmp_path / name
        path.write_bytes(content)
        if name != "cut.zip":
            with pytest.raises(CorruptArchiveError, match="truncated or corrupt archive"):
                safe_extract(path, tmp_path / f"x-{name}")
        with (
            Server(content) as server,
            pytest.raises(CorruptArchiveError, match="download it anew"),
        ):
            fetch_archive(server.url, tmp_path / "dl" / name, tmp_path / f"y-{name}", None)
        assert not (tmp_path / "dl" / name).exists()


def test_a_zip_member_failing_its_crc_writes_nothing(tmp_path):
    archive = tmp_path / "crc.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("yes/first.txt", "intact member")
        zf.writestr("yes/second.txt", "this member will be damaged")
    data = archive.read_bytes()
    at = data.index(b"this member")
    archive.write_bytes(data[:at] + b"THAT" + data[at + 4 :])  # same length, wrong CRC
    with pytest.raises(CorruptArchiveError, match=r"second\.txt"):
        safe_extract(archive, tmp_path / "x")
    assert list((tmp_path / "x").iterdir()) == []


def test_an_extraction_accepts_its_own_checksum_in_any_case_or_none(tmp_path, archive):
    out = tmp_path / "sc"
    with Server(archive) as server:
        assert sc.main(["--url", server.url, "--sha256", sha(archive), "--out", str(out)]) == 0
        upper = sha(archive).upper()
        assert sc.main(["--url", server.url, "--sha256", upper, "--out", str(out)]) == 0
        assert sc.main(["--url", server.url, "--sha256", "", "--out", str(out)]) == 0
        assert sc.main(["--url", server.url + "?other", "--out", str(out)]) == 1
