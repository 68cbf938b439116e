"""MovieLens 100K: find it, verify it, load it.

Where the files come from, in this order (protocol v2, ``book/protocol.md``):

1. a directory passed explicitly, or named by ``FEATINT_DATA_DIR``;
2. the user cache, ``$XDG_CACHE_HOME/featint/ml-100k`` (default ``~/.cache/featint/ml-100k``);
3. a download of ``ml-100k.zip`` from GroupLens, checked against its published md5 and
   extracted into the cache.

Every file is checked against the sha256 of the official release before it is parsed, so a
truncated or altered copy is an error, never a silently different data set. The data is never
shipped with featint: the MovieLens licence forbids redistribution.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import pandas as pd

from featint.config import current

ML100K_URL = "https://files.grouplens.org/datasets/movielens/ml-100k.zip"
ML100K_MD5 = "0e33842e24a9c977be4e0107933c0723"
#: The files featint reads; each is verified by sha256 before use.
REQUIRED_FILES = ("u.data", "u.item", "u.user", "u.genre")
ENV_VAR = "FEATINT_DATA_DIR"


class DataError(RuntimeError):
    """The MovieLens files are missing, damaged or cannot be fetched; the message says the fix."""


@dataclass(frozen=True)
class MovieLens:
    """The three tables of MovieLens 100K, with the original 1-based ids.

    ``ratings``: user, item, rating (1..5), timestamp (unix seconds).
    ``users``: indexed by user id; age, gender, occupation, zip.
    ``items``: indexed by item id; title, release_date, then one 0/1 column per genre.
    """

    ratings: pd.DataFrame
    users: pd.DataFrame
    items: pd.DataFrame
    genres: tuple[str, ...]
    source: Path


def official_sha256() -> dict[str, str]:
    """The sha256 of every file of the official release (shipped as ``featint/SHA256SUMS``)."""
    text = resources.files("featint").joinpath("SHA256SUMS").read_text()
    sums = {}
    for line in text.splitlines():
        if line.strip():
            digest, name = line.split()
            sums[name] = digest
    return sums


def cache_dir() -> Path:
    """The folder that holds the downloaded ``ml-100k/``: featint's user cache
    (:attr:`featint.config.Config.cache_root`, which follows ``XDG_CACHE_HOME``)."""
    return current().cache_root


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify(directory: Path, fix: str) -> None:
    """Check every required file of ``directory`` against the official sha256.

    Raises :class:`DataError` naming the first problem and ``fix``; checks all files before
    anything is parsed, so a damaged copy is never partly used.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise DataError(f"MovieLens directory {directory} does not exist. Fix: {fix}")
    present = [name for name in REQUIRED_FILES if (directory / name).is_file()]
    if not present:
        raise DataError(
            f"{directory} does not look like MovieLens 100K: none of "
            f"{', '.join(REQUIRED_FILES)} is there. Fix: {fix}"
        )
    sums = official_sha256()
    for name in REQUIRED_FILES:
        path = directory / name
        if not path.is_file():
            raise DataError(f"MovieLens file {path} is missing. Fix: {fix}")
        actual = _sha256(path)
        if actual != sums[name]:
            size = path.stat().st_size
            raise DataError(
                f"MovieLens file {path} is damaged: its sha256 is {actual[:12]}... "
                f"({size} bytes), the official file's is {sums[name][:12]}... "
                f"(truncated, altered or a different release). Fix: {fix}"
            )


def download(
    target: Path | None = None, url: str | None = None, md5: str = ML100K_MD5
) -> Path:
    """Download ``ml-100k.zip``, check its md5, extract it to ``target`` and verify every file.

    Extraction goes to a temporary folder that is renamed into place only once every file has
    passed its sha256 check, so an interrupted or failed download leaves no partial data.
    """
    import pooch  # imported here: only the download path needs it (and requests)

    url = url or ML100K_URL
    target = Path(target) if target is not None else cache_dir() / "ml-100k"
    target.parent.mkdir(parents=True, exist_ok=True)
    fix = (
        f"check your internet connection and try again, or download ml-100k.zip yourself, "
        f"unzip it and point {ENV_VAR} at the ml-100k folder"
    )
    try:
        archive = pooch.retrieve(
            url, known_hash=f"md5:{md5}", fname="ml-100k.zip", path=target.parent,
            progressbar=False,
        )
    except ValueError as err:  # pooch's hash mismatch
        raise DataError(f"Downloaded ml-100k.zip from {url} failed its md5 check ({err}). "
                        f"Fix: {fix}") from err
    except Exception as err:  # network errors come from requests, whose types vary
        raise DataError(
            f"No local copy of MovieLens 100K was found and downloading it from {url} "
            f"failed: {type(err).__name__}: {err}. Fix: {fix}"
        ) from err
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        with zipfile.ZipFile(archive) as zf:
            zf.extractall(tmp)
        extracted = Path(tmp) / "ml-100k"
        if not extracted.is_dir():
            raise DataError(f"{archive} has no ml-100k/ folder inside. Fix: {fix}")
        verify(extracted, fix)
        if target.exists():
            shutil.rmtree(target)
        extracted.rename(target)
    Path(archive).unlink()
    return target


def find_data_dir(data_dir: str | Path | None = None, download_missing: bool = True) -> Path:
    """Return a verified MovieLens 100K folder, downloading it into the cache if needed."""
    explicit = data_dir if data_dir is not None else current().data_dir
    if explicit:
        source = "the directory you passed" if data_dir is not None else f"${ENV_VAR}"
        path = Path(explicit).expanduser()
        verify(path, f"point {source} at an unmodified copy of the official ml-100k folder "
                     f"(u.data, u.item, u.user, u.genre), or unset it to use the download cache")
        return path
    cached = cache_dir() / "ml-100k"
    if cached.exists():
        verify(cached, f"delete {cached} and run again to download a fresh copy")
        return cached
    if not download_missing:
        raise DataError(
            f"MovieLens 100K is not in the cache ({cached}) and downloading is off. "
            f"Fix: set {ENV_VAR} to an ml-100k folder, or allow the download"
        )
    return download(cached)


def load_movielens(data_dir: str | Path | None = None, download_missing: bool = True) -> MovieLens:
    """Load the verified MovieLens 100K tables (see :func:`find_data_dir` for where from)."""
    path = find_data_dir(data_dir, download_missing)
    ratings = pd.read_csv(
        path / "u.data", sep="\t", names=["user", "item", "rating", "timestamp"],
        dtype="int64",
    )
    users = pd.read_csv(
        path / "u.user", sep="|", names=["user", "age", "gender", "occupation", "zip"],
        dtype={"zip": str},
    ).set_index("user")
    genres = tuple(
        line.split("|")[0]
        for line in (path / "u.genre").read_text(encoding="latin-1").splitlines()
        if line.strip()
    )
    items = pd.read_csv(
        path / "u.item", sep="|", encoding="latin-1",
        names=["item", "title", "release_date", "video_release_date", "url", *genres],
    ).set_index("item").drop(columns=["video_release_date", "url"])
    items["release_date"] = pd.to_datetime(items["release_date"], format="%d-%b-%Y")
    return MovieLens(ratings=ratings, users=users, items=items, genres=genres, source=path)
