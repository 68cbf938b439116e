"""MovieLens: find a release, verify it, load it into the same tables.

featint reads every MovieLens release GroupLens publishes as a stable benchmark (:data:`RELEASES`:
100K, 1M, 10M, 20M, 25M, 32M). Each is parsed into the same three tables (:class:`MovieLens`):
ratings, users (with the demographics only 100K and 1M have) and movies (title, release year,
one 0/1 column per genre). The book's task is defined on MovieLens 100K; the others carry the
same protocol with the fields they have (``book/protocol.md``, "Other MovieLens releases").

Where a release comes from, in this order (:func:`find_data_dir`):

1. a folder (or the archive itself) passed explicitly; for MovieLens 100K also the folder
   named by ``FEATINT_DATA_DIR``;
2. ``FEATINT_DATA_ROOT``: a folder holding releases as GroupLens ships them, each either as
   its archive (``ml-1m.zip``) or as the folder featint extracted from it (``ml-1m/``);
3. the user cache, ``$XDG_CACHE_HOME/featint/<folder>`` (default ``~/.cache/featint/...``);
4. a download of the archive from GroupLens into the cache.

Nothing is used unverified. MovieLens 100K's files are checked one by one against the sha256 of
the official release, shipped as ``featint/SHA256SUMS``. Every other release is checked through
its archive: the zip must match the md5 GroupLens publishes beside it (:data:`RELEASES`); featint
then extracts it into the cache with a manifest of the sha256 of every file it reads, and checks
those files against the manifest at every load. A folder someone unzipped by hand cannot be
checked that way, so it is refused with the instruction to provide the archive. A release
whose published md5 featint does not know is refused too, never accepted silently. The data
is never shipped with featint: the MovieLens licence forbids redistribution.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from featint.config import current

BASE_URL = "https://files.grouplens.org/datasets/movielens/"
ML100K_URL = BASE_URL + "ml-100k.zip"
ML100K_MD5 = "0e33842e24a9c977be4e0107933c0723"
#: The files of MovieLens 100K featint reads; each is verified by sha256 before use.
REQUIRED_FILES = ("u.data", "u.item", "u.user", "u.genre")
ENV_VAR = "FEATINT_DATA_DIR"
ROOT_VAR = "FEATINT_DATA_ROOT"
#: The manifest featint writes into a release it extracted from a verified archive.
MANIFEST = "featint-verified.json"
#: The genre string of a movie without genres (10M and later).
NO_GENRES = "(no genres listed)"


class DataError(RuntimeError):
    """The MovieLens files are missing, damaged or cannot be fetched; the message says the fix."""


@dataclass(frozen=True)
class Release:
    """One MovieLens release as GroupLens publishes it.

    ``name``: the archive's name without ``.zip`` (and ``--dataset``); ``folder``: the folder
    the archive unzips to; ``files``: the files featint reads; ``md5``: the md5 GroupLens
    publishes beside the archive (``<archive>.md5``), None where featint does not know it;
    ``ratings``: the count the release's README announces (``featint data`` checks it).
    """

    name: str
    title: str
    folder: str
    files: tuple[str, ...]
    md5: str | None
    ratings: int

    @property
    def archive(self) -> str:
        return f"{self.name}.zip"

    @property
    def url(self) -> str:
        return BASE_URL + self.archive


# The md5 of each archive is the one GroupLens publishes in <archive>.md5 beside it
# (https://files.grouplens.org/datasets/movielens/<name>.zip.md5). They could not be fetched
# where this was written (no network but package registries): 100K's is the one the protocol
# has always used; the others were taken from several independent public projects that verify
# these archives, which all agree. A download is refused if its md5 differs.
RELEASES: dict[str, Release] = {r.name: r for r in (
    Release("ml-100k", "MovieLens 100K", "ml-100k", REQUIRED_FILES, ML100K_MD5,
            100_000),
    Release("ml-1m", "MovieLens 1M", "ml-1m", ("ratings.dat", "users.dat", "movies.dat"),
            "c4d9eecfca2ab87c1945afe126590906", 1_000_209),
    Release("ml-10m", "MovieLens 10M", "ml-10M100K", ("ratings.dat", "movies.dat"),
            "ce571fd55effeba0271552578f2648bd", 10_000_054),
    Release("ml-20m", "MovieLens 20M", "ml-20m", ("ratings.csv", "movies.csv"),
            "cd245b17a1ae2cc31bb14903e1204af3", 20_000_263),
    Release("ml-25m", "MovieLens 25M", "ml-25m", ("ratings.csv", "movies.csv"),
            "6b51fb2759a8657d3bfcbfc42b592ada", 25_000_095),
    Release("ml-32m", "MovieLens 32M", "ml-32m", ("ratings.csv", "movies.csv"),
            "d472be332d4daa821edc399621853b57", 32_000_204),
)}
DEFAULT_RELEASE = "ml-100k"


@dataclass(frozen=True)
class MovieLens:
    """The tables of a MovieLens release, with the original ids.

    ``ratings``: user, item, rating (1..5; half stars from 10M on), timestamp (unix seconds).
    ``users``: indexed by user id; age, gender, occupation, zip where the release has them
    (100K, 1M), no columns otherwise. ``items``: indexed by movie id, the movies with at
    least one rating; title, year (the release year, NaN where unknown), 100K's
    release_date, then one 0/1 column per genre of ``genres``. ``release``: its name in
    :data:`RELEASES` (``"synthetic"`` for featint's generated data).
    """

    ratings: pd.DataFrame
    users: pd.DataFrame
    items: pd.DataFrame
    genres: tuple[str, ...]
    source: Path
    release: str = DEFAULT_RELEASE

    @property
    def demographics(self) -> tuple[str, ...]:
        """The user columns the release has (empty after 1M)."""
        return tuple(self.users.columns)


def release_of(name: str) -> Release:
    """The :class:`Release` called ``name`` (``"ml-1m"``, ...); an unknown name is a
    :class:`DataError` that lists the known ones."""
    if name not in RELEASES:
        raise DataError(f"unknown MovieLens release {name!r}; featint reads "
                        f"{', '.join(RELEASES)}")
    return RELEASES[name]


def official_sha256() -> dict[str, str]:
    """The sha256 of every file of the official 100K release (shipped as
    ``featint/SHA256SUMS``)."""
    text = resources.files("featint").joinpath("SHA256SUMS").read_text()
    sums = {}
    for line in text.splitlines():
        if line.strip():
            digest, name = line.split()
            sums[name] = digest
    return sums


def cache_dir() -> Path:
    """The folder that holds the downloaded releases (``ml-100k/``, ``ml-1m/``, ...): featint's
    user cache (:attr:`featint.config.Config.cache_root`, which follows ``XDG_CACHE_HOME``)."""
    return current().cache_root


def _digest(path: Path, algorithm: str = "sha256") -> str:
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _sha256(path: Path) -> str:
    return _digest(path, "sha256")


def verify(directory: Path, fix: str, release: str = DEFAULT_RELEASE) -> None:
    """Check every file of ``release`` in ``directory`` before anything is parsed.

    MovieLens 100K: each file against the official sha256. Other releases: against the
    manifest featint wrote when it extracted them from their verified archive. Raises
    :class:`DataError` naming the first problem and ``fix``.
    """
    rel = release_of(release)
    directory = Path(directory)
    if not directory.is_dir():
        raise DataError(f"MovieLens directory {directory} does not exist. Fix: {fix}")
    present = [name for name in rel.files if (directory / name).is_file()]
    if not present:
        raise DataError(
            f"{directory} does not look like {rel.title}: none of "
            f"{', '.join(rel.files)} is there. Fix: {fix}"
        )
    if rel.name == "ml-100k":
        sums = official_sha256()
    else:
        sums = _manifest(directory, rel, fix)
    for name in rel.files:
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


def _manifest(directory: Path, rel: Release, fix: str) -> dict[str, str]:
    """The sha256 of ``rel``'s files recorded when featint extracted them from the archive
    with the published md5 (which must still be the one featint knows)."""
    path = directory / MANIFEST
    if not path.is_file():
        raise DataError(
            f"{directory} holds {rel.title} files that featint cannot verify: it checks "
            f"{rel.title} through its archive, whose md5 GroupLens publishes, and this folder "
            f"was not extracted by featint (no {MANIFEST}). Fix: put {rel.archive} (from "
            f"{rel.url}) into the folder you pass or into ${ROOT_VAR}, and featint checks and "
            f"extracts it; or {fix}")
    manifest = json.loads(path.read_text(encoding="utf-8"))
    if rel.md5 is None or manifest.get("md5") != rel.md5:
        raise DataError(
            f"{directory} was extracted from an archive with md5 {manifest.get('md5')}, "
            f"not the published md5 of {rel.archive} that featint knows ({rel.md5}). "
            f"Fix: {fix}")
    sums = manifest.get("sha256", {})
    missing = [name for name in rel.files if name not in sums]
    if missing:
        raise DataError(f"{path} does not list {', '.join(missing)}. Fix: {fix}")
    return sums


def _unknown_md5(rel: Release, what: object) -> str:
    return (f"featint does not know the md5 GroupLens publishes for {rel.archive}, so it "
            f"cannot verify {what} and will not use it. Fix: add the md5 to RELEASES in "
            f"featint/data.py after reading it from {rel.url}.md5")


def check_archive(archive: Path, release: str, md5: str | None = None) -> None:
    """Check ``archive`` against the published md5 of ``release`` (``md5`` replaces it, for
    tests); an unknown md5 or a mismatch is a :class:`DataError`."""
    rel = release_of(release)
    md5 = md5 or rel.md5
    if md5 is None:
        raise DataError(_unknown_md5(rel, archive))
    actual = _digest(Path(archive), "md5")
    if actual != md5:
        raise DataError(
            f"{archive} has md5 {actual}, not the published md5 of {rel.archive} ({md5}): "
            f"truncated, altered or another release. Fix: download it again from {rel.url}")


def extract(archive: Path, target: Path, release: str = DEFAULT_RELEASE,
            md5: str | None = None, fix: str | None = None) -> Path:
    """Check ``archive`` against its published md5, extract it and move the release's folder
    to ``target``, verified: 100K's files by their official sha256, any other release's with
    a manifest of the sha256 of every file read (:data:`MANIFEST`).

    Extraction goes to a temporary folder beside ``target`` that is renamed into place only
    once every file has passed, so a failure leaves no partial data.
    """
    rel = release_of(release)
    fix = fix or f"download {rel.archive} again from {rel.url}"
    check_archive(archive, release, md5)
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        with zipfile.ZipFile(archive) as zf:
            zf.extractall(tmp)
        extracted = Path(tmp) / rel.folder
        if not extracted.is_dir():
            raise DataError(f"{archive} has no {rel.folder}/ folder inside. Fix: {fix}")
        if rel.name != "ml-100k":
            missing = [n for n in rel.files if not (extracted / n).is_file()]
            if missing:
                raise DataError(f"{archive} lacks {', '.join(missing)}. Fix: {fix}")
            manifest = {"archive": rel.archive, "md5": md5 or rel.md5,
                        "sha256": {n: _sha256(extracted / n) for n in rel.files}}
            (extracted / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
        verify(extracted, fix, release)
        if target.exists():
            shutil.rmtree(target)
        extracted.rename(target)
    return target


def download(
    target: Path | None = None, url: str | None = None, md5: str | None = None,
    release: str = DEFAULT_RELEASE,
) -> Path:
    """Download ``release``'s archive, check its md5, extract it to ``target`` (default: the
    cache) and verify every file (:func:`extract`). A release whose published md5 featint
    does not know is refused before anything is fetched."""
    import pooch  # imported here: only the download path needs it (and requests)

    rel = release_of(release)
    url = url or rel.url
    md5 = md5 or rel.md5
    target = Path(target) if target is not None else cache_dir() / rel.folder
    fix = (
        f"check your internet connection and try again, or download {rel.archive} yourself, "
        + (f"unzip it and point {ENV_VAR} at the ml-100k folder" if rel.name == "ml-100k"
           else f"and put it into the folder named by {ROOT_VAR}")
    )
    if md5 is None:
        raise DataError(_unknown_md5(rel, url))
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        archive = pooch.retrieve(
            url, known_hash=f"md5:{md5}", fname=rel.archive, path=target.parent,
            progressbar=False,
        )
    except ValueError as err:  # pooch's hash mismatch
        raise DataError(f"Downloaded {rel.archive} from {url} failed its md5 check ({err}). "
                        f"Fix: {fix}") from err
    except Exception as err:  # network errors come from requests, whose types vary
        raise DataError(
            f"No local copy of {rel.title} was found and downloading it from {url} "
            f"failed: {type(err).__name__}: {err}. Fix: {fix}"
        ) from err
    try:
        extract(Path(archive), target, release, md5, fix)
    finally:
        Path(archive).unlink(missing_ok=True)
    return target


def layout(release: str) -> str:
    """Where featint looks for ``release`` and what to put there (the text of the error when
    it is not found)."""
    rel = release_of(release)
    cache = cache_dir() / rel.folder
    return (f"{rel.title} is found as (1) a folder or archive you pass (--data-dir), "
            + (f"or the ml-100k folder named by ${ENV_VAR}; " if rel.name == "ml-100k" else "; ")
            + f"(2) ${ROOT_VAR}/{rel.archive} (the archive from {rel.url}); (3) the cache, "
            f"{cache}; (4) a download of {rel.url} into the cache, e.g. `featint data "
            f"--dataset {rel.name}`")


def _local(path: Path, rel: Release, fix: str) -> Path:
    """A verified release folder from ``path``: the release's folder itself, a folder that
    holds its archive or its extracted folder, or the archive file. An archive is checked
    and extracted into the cache."""
    if path.is_file():
        return extract(path, cache_dir() / rel.folder, rel.name, fix=fix)
    if path.is_dir() and not any((path / n).is_file() for n in rel.files):
        if (path / rel.folder).is_dir():
            path = path / rel.folder
        elif (path / rel.archive).is_file():
            return extract(path / rel.archive, cache_dir() / rel.folder, rel.name, fix=fix)
    verify(path, fix, rel.name)
    return path


def find_data_dir(data_dir: str | Path | None = None, download_missing: bool = True,
                  release: str = DEFAULT_RELEASE) -> Path:
    """Return a verified folder of ``release``, downloading it into the cache if needed (the
    order of the places is in the module's docstring)."""
    rel = release_of(release)
    config = current()
    explicit = data_dir if data_dir is not None else (
        config.data_dir if rel.name == "ml-100k" else None)
    if explicit:
        source = "the directory you passed" if data_dir is not None else f"${ENV_VAR}"
        path = Path(explicit).expanduser()
        if rel.name == "ml-100k":
            fix = (f"point {source} at an unmodified copy of the official ml-100k folder "
                   f"(u.data, u.item, u.user, u.genre), or unset it to use the download cache")
        else:
            fix = (f"pass the {rel.archive} archive from {rel.url}, or a folder that holds it")
        return _local(path, rel, fix)
    if config.data_root is not None:
        root = config.data_root
        for candidate in (root / rel.folder, root / rel.archive):
            if candidate.exists():
                return _local(candidate, rel, f"replace {candidate} with the archive from "
                                              f"{rel.url}, or remove it from ${ROOT_VAR}")
    cached = cache_dir() / rel.folder
    if cached.exists():
        verify(cached, f"delete {cached} and run again to download a fresh copy", rel.name)
        return cached
    if not download_missing:
        if rel.name == "ml-100k":
            raise DataError(
                f"MovieLens 100K is not in the cache ({cached}) and downloading is off. "
                f"Fix: set {ENV_VAR} to an ml-100k folder, or allow the download")
        raise DataError(f"{rel.title} is not in the cache ({cached}) and downloading is "
                        f"off. Fix: {layout(rel.name)}")
    return download(cached, release=rel.name)


def load_movielens(data_dir: str | Path | None = None, download_missing: bool = True,
                   release: str = DEFAULT_RELEASE) -> MovieLens:
    """Load the verified tables of ``release`` (see :func:`find_data_dir` for where from)."""
    path = find_data_dir(data_dir, download_missing, release)
    reader = {"ml-100k": _read_100k, "ml-1m": _read_1m}.get(release, _read_later)
    return reader(path, release)


# -- the formats ---------------------------------------------------------------------------
def _read_100k(path: Path, release: str) -> MovieLens:
    """``u.data`` (tab-separated), ``u.user`` and ``u.item`` (``|``-separated, Latin-1, 19
    genre flags named by ``u.genre``)."""
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
    items.insert(1, "year", items["release_date"].dt.year.astype(np.float64))
    return MovieLens(ratings=ratings, users=users, items=items, genres=genres, source=path,
                     release=release)


def _text(path: Path) -> str:
    """A ``.dat`` file's text: UTF-8, or Latin-1 where it is not valid UTF-8 (1M's titles are
    Latin-1; the 10M README names no encoding)."""
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _dat(path: Path, names: list[str], dtype: dict | None = None) -> pd.DataFrame:
    """A ``::``-separated file (1M, 10M). The two-character separator would need pandas'
    slow Python parser; no field contains a tab, so it becomes one and the C parser reads
    it, with quote characters taken literally (titles contain them)."""
    text = _text(path).replace("::", "\t")
    return pd.read_csv(io.StringIO(text), sep="\t", names=names, dtype=dtype,
                       quoting=csv.QUOTE_NONE)


def _read_1m(path: Path, release: str) -> MovieLens:
    """``ratings.dat``, ``users.dat`` (gender, age group code, occupation code 0-20, zip)
    and ``movies.dat`` (title with the year, ``|``-separated genres), Latin-1."""
    ratings = _dat(path / "ratings.dat", ["user", "item", "rating", "timestamp"],
                   dict.fromkeys(["user", "item", "rating", "timestamp"], "int64"))
    users = _dat(path / "users.dat", ["user", "gender", "age", "occupation", "zip"],
                 {"user": "int64", "gender": str, "age": "int64", "occupation": "int64",
                  "zip": str}).set_index("user")[["age", "gender", "occupation", "zip"]]
    movies = _dat(path / "movies.dat", ["item", "title", "genres"],
                  {"item": "int64", "title": str, "genres": str})
    return _assemble(ratings, users, movies, path, release)


def _read_later(path: Path, release: str) -> MovieLens:
    """10M (``::``-separated ``.dat``) and 20M, 25M, 32M (``ratings.csv`` and ``movies.csv``
    with a header, titles that contain commas quoted): ratings in half stars, no users
    table."""
    columns = {"user": "int64", "item": "int64", "rating": "float64", "timestamp": "int64"}
    if release == "ml-10m":
        ratings = _dat(path / "ratings.dat", list(columns), columns)
        movies = _dat(path / "movies.dat", ["item", "title", "genres"],
                      {"item": "int64", "title": str, "genres": str})
    else:
        ratings = pd.read_csv(path / "ratings.csv", dtype=dict(zip(
            ["userId", "movieId", "rating", "timestamp"], columns.values(), strict=True)))
        ratings.columns = list(columns)
        movies = pd.read_csv(path / "movies.csv", encoding="utf-8",
                             dtype={"movieId": "int64", "title": str, "genres": str})
        movies.columns = ["item", "title", "genres"]
    users = pd.DataFrame(index=pd.Index(np.unique(ratings["user"].to_numpy()), name="user"))
    return _assemble(ratings, users, movies, path, release)


YEAR_IN_TITLE = re.compile(r"\((\d{4})\)\s*$")


def title_year(titles: pd.Series) -> pd.Series:
    """The release year at the end of each title (``"Toy Story (1995)"`` -> 1995.0), NaN where
    a title has none (some of 10M and later: ``"Babylon 5"``, a range ``"(2007-)"``)."""
    return titles.str.extract(YEAR_IN_TITLE, expand=False).astype(np.float64)


def _assemble(ratings: pd.DataFrame, users: pd.DataFrame, movies: pd.DataFrame, path: Path,
              release: str) -> MovieLens:
    """The tables of a release with a ``genres`` string per movie: genre flags from the
    ``|``-separated string (:data:`NO_GENRES` sets none), the year from the title, and only
    the movies someone rated (the catalogue a target can come from)."""
    unknown = ~ratings["item"].isin(movies["item"])
    if unknown.any():
        raise DataError(f"{path}: {int(unknown.sum())} ratings name movies that are not in "
                        f"its movies file (e.g. {ratings['item'][unknown].iloc[0]}). Fix: "
                        f"use an unmodified copy of the release")
    movies = movies[movies["item"].isin(ratings["item"])].set_index("item").sort_index()
    flags = movies["genres"].fillna(NO_GENRES).str.get_dummies(sep="|")
    flags = flags.drop(columns=[NO_GENRES], errors="ignore").astype(np.int64)
    genres = tuple(flags.columns)  # sorted by name
    items = pd.concat([movies[["title"]].assign(year=title_year(movies["title"])), flags],
                      axis=1)
    return MovieLens(ratings=ratings, users=users, items=items, genres=genres, source=path,
                     release=release)
