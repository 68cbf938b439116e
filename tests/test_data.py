"""Finding, verifying, downloading and loading MovieLens 100K (``featint.data``).

Every test works on a private copy of the official files in ``tmp_path`` (never in the repo)
and needs no network: downloads are served from 127.0.0.1 or pointed at a closed port.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import os
import shutil
import stat
import threading
import zipfile
from pathlib import Path

import pytest

from featint import data
from featint.data import REQUIRED_FILES, DataError, download, find_data_dir, load_movielens

OFFICIAL = Path(os.environ.get("FEATINT_DATA_DIR") or data.cache_dir() / "ml-100k")
UNREACHABLE = "http://127.0.0.1:9/ml-100k.zip"  # the discard port: nothing listens there

pytestmark = pytest.mark.skipif(
    not all((OFFICIAL / name).is_file() for name in REQUIRED_FILES) and not os.environ.get("CI"),
    reason=f"official MovieLens 100K files not found in {OFFICIAL}",
)


@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path):
    """No test sees the caller's data folder or cache."""
    monkeypatch.delenv(data.ENV_VAR, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "empty-cache"))


def copy_official(dest: Path) -> Path:
    """A writable copy of the official ml-100k folder."""
    shutil.copytree(OFFICIAL, dest)
    for path in dest.iterdir():
        path.chmod(path.stat().st_mode | stat.S_IWUSR)
    return dest


@pytest.fixture
def ml_copy(tmp_path) -> Path:
    return copy_official(tmp_path / "ml-100k")


def check_tables(ml, source: Path) -> None:
    assert ml.source == source
    assert len(ml.ratings) == 100_000
    assert ml.ratings["user"].nunique() == 943 and ml.ratings["item"].nunique() == 1682
    assert len(ml.users) == 943 and len(ml.items) == 1682
    assert len(ml.genres) == 19 and ml.genres[0] == "unknown"
    assert ml.ratings["rating"].between(1, 5).all()
    assert set(ml.genres) <= set(ml.items.columns)


def assert_names_file_and_fix(err: DataError, path: Path) -> None:
    message = str(err)
    assert str(path) in message, message
    assert "Fix:" in message and message.split("Fix:")[1].strip(), message


# -- where the files come from ----------------------------------------------------------------


def test_explicit_directory(ml_copy):
    check_tables(load_movielens(ml_copy, download_missing=False), ml_copy)


def test_environment_variable(ml_copy, monkeypatch):
    monkeypatch.setenv(data.ENV_VAR, str(ml_copy))
    check_tables(load_movielens(download_missing=False), ml_copy)


def test_explicit_directory_wins_over_environment(ml_copy, tmp_path, monkeypatch):
    monkeypatch.setenv(data.ENV_VAR, str(tmp_path / "nowhere"))
    assert find_data_dir(ml_copy, download_missing=False) == ml_copy


def test_cache_follows_xdg_cache_home(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert data.cache_dir() == tmp_path / "xdg" / "featint"
    cached = copy_official(tmp_path / "xdg" / "featint" / "ml-100k")
    check_tables(load_movielens(download_missing=False), cached)


def test_empty_cache_without_download_is_an_error(tmp_path):
    with pytest.raises(DataError, match="downloading is off") as info:
        load_movielens(download_missing=False)
    assert_names_file_and_fix(info.value, tmp_path / "empty-cache" / "featint" / "ml-100k")
    assert data.ENV_VAR in str(info.value)


# -- damaged copies: always a DataError that names the file and the fix -----------------------


@pytest.mark.parametrize("name", REQUIRED_FILES)
def test_missing_file(ml_copy, name):
    (ml_copy / name).unlink()
    with pytest.raises(DataError, match="missing") as info:
        load_movielens(ml_copy)
    assert_names_file_and_fix(info.value, ml_copy / name)


@pytest.mark.parametrize("name", REQUIRED_FILES)
def test_truncated_file(ml_copy, name):
    path = ml_copy / name
    content = path.read_bytes()
    path.write_bytes(content[: len(content) // 2])
    with pytest.raises(DataError, match="damaged") as info:
        load_movielens(ml_copy)
    assert_names_file_and_fix(info.value, path)


@pytest.mark.parametrize("name", REQUIRED_FILES)
def test_one_byte_altered(ml_copy, name):
    path = ml_copy / name
    content = bytearray(path.read_bytes())
    middle = len(content) // 2
    content[middle] = ord("7") if content[middle] != ord("7") else ord("8")
    path.write_bytes(bytes(content))  # same size, still parses: only the checksum can tell
    with pytest.raises(DataError, match="damaged") as info:
        load_movielens(ml_copy)
    assert_names_file_and_fix(info.value, path)


def test_damaged_cache_says_to_delete_it(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    cached = copy_official(tmp_path / "xdg" / "featint" / "ml-100k")
    with open(cached / "u.data", "ab") as f:
        f.write(b"1\t1\t5\t881250949\n")
    with pytest.raises(DataError, match="damaged") as info:
        load_movielens()  # the cache exists, so a damaged copy is never silently replaced
    assert_names_file_and_fix(info.value, cached / "u.data")
    assert f"delete {cached}" in str(info.value)


@pytest.mark.parametrize("content", [{}, {"notes.txt": "hello", "data.csv": "a,b\n1,2\n"}])
def test_directory_that_is_not_movielens(tmp_path, content):
    folder = tmp_path / "something-else"
    folder.mkdir()
    for name, text in content.items():
        (folder / name).write_text(text)
    with pytest.raises(DataError, match="does not look like MovieLens 100K") as info:
        load_movielens(folder)
    assert_names_file_and_fix(info.value, folder)
    assert all(name in str(info.value) for name in REQUIRED_FILES)


def test_directory_that_does_not_exist(tmp_path, monkeypatch):
    monkeypatch.setenv(data.ENV_VAR, str(tmp_path / "nowhere"))
    with pytest.raises(DataError, match="does not exist") as info:
        load_movielens()
    assert_names_file_and_fix(info.value, tmp_path / "nowhere")
    assert f"${data.ENV_VAR}" in str(info.value)


# -- downloading -----------------------------------------------------------------------------


def test_no_network_and_no_local_copy(tmp_path, monkeypatch):
    # find_data_dir calls download(cached) with its default URL: point that default at a
    # closed local port so the whole path runs offline.
    monkeypatch.setattr(data, "download", functools.partial(download, url=UNREACHABLE))
    cached = tmp_path / "empty-cache" / "featint" / "ml-100k"
    with pytest.raises(DataError, match="downloading it from") as info:
        load_movielens()
    message = str(info.value)
    assert UNREACHABLE in message and "Fix:" in message and data.ENV_VAR in message
    assert not cached.exists()


def test_download_unreachable_url(tmp_path):
    target = tmp_path / "cache" / "ml-100k"
    with pytest.raises(DataError, match="downloading it from") as info:
        download(target, url=UNREACHABLE)
    assert UNREACHABLE in str(info.value) and "Fix:" in str(info.value)
    assert not target.exists()
    assert not list(target.parent.glob("*ml-100k*"))


def make_zip(path: Path, folder: str = "ml-100k", damage: str | None = None) -> str:
    """Zip the official files under ``folder/`` (optionally with one file truncated); md5."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for file in sorted(OFFICIAL.iterdir()):
            content = file.read_bytes()
            if file.name == damage:
                content = content[:-100]
            zf.writestr(f"{folder}/{file.name}", content)
    return hashlib.md5(path.read_bytes()).hexdigest()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def serve(tmp_path):
    """Serve a folder over HTTP on 127.0.0.1 (a free port) for the length of one test."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_download_succeeds_offline(serve, tmp_path):
    root, base = serve
    md5 = make_zip(root / "ml-100k.zip")
    target = tmp_path / "cache" / "ml-100k"
    assert download(target, url=f"{base}/ml-100k.zip", md5=md5) == target
    data.verify(target, "unused")  # every required file passes its sha256
    for name in REQUIRED_FILES:
        assert (target / name).read_bytes() == (OFFICIAL / name).read_bytes()
    # the archive is removed and no temporary folder is left behind
    assert sorted(p.name for p in target.parent.iterdir()) == ["ml-100k"]
    check_tables(load_movielens(target, download_missing=False), target)


def test_load_downloads_into_the_cache(serve, tmp_path, monkeypatch):
    root, base = serve
    md5 = make_zip(root / "ml-100k.zip")
    monkeypatch.setattr(data, "download",
                        functools.partial(download, url=f"{base}/ml-100k.zip", md5=md5))
    cached = tmp_path / "empty-cache" / "featint" / "ml-100k"
    check_tables(load_movielens(), cached)
    assert sorted(p.name for p in cached.parent.iterdir()) == ["ml-100k"]


def test_download_wrong_md5(serve, tmp_path):
    root, base = serve
    md5 = make_zip(root / "ml-100k.zip")
    wrong = "0" * 32 if md5 != "0" * 32 else "1" * 32
    target = tmp_path / "cache" / "ml-100k"
    with pytest.raises(DataError, match="md5") as info:
        download(target, url=f"{base}/ml-100k.zip", md5=wrong)
    assert "Fix:" in str(info.value)
    assert not target.exists()
    assert list(target.parent.iterdir()) == []  # nothing partial: no folder, no archive


def test_download_damaged_file_inside_archive(serve, tmp_path):
    root, base = serve
    md5 = make_zip(root / "ml-100k.zip", damage="u.item")
    target = tmp_path / "cache" / "ml-100k"
    with pytest.raises(DataError, match="damaged") as info:
        download(target, url=f"{base}/ml-100k.zip", md5=md5)
    assert "u.item" in str(info.value) and "Fix:" in str(info.value)
    assert not target.exists()
    assert not [p for p in target.parent.iterdir() if p.is_dir()]  # no half-extracted folder


def test_download_archive_without_folder(serve, tmp_path):
    root, base = serve
    md5 = make_zip(root / "ml-100k.zip", folder="something")
    target = tmp_path / "cache" / "ml-100k"
    with pytest.raises(DataError, match="no ml-100k/ folder"):
        download(target, url=f"{base}/ml-100k.zip", md5=md5)
    assert not target.exists()
    assert not [p for p in target.parent.iterdir() if p.is_dir()]
