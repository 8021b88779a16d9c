"""The offline keyword set: clips spoken by eSpeak NG, augmented like real recordings.

eSpeak NG's shared library and voice data ship inside the ``espeakng-loader`` wheel, so this runs
anywhere pip does, without internet, a sound card or an ``espeak-ng`` executable. Each clip is:

1. a word spoken by a *synthetic speaker*: a draw of voice parameters (one of 8 English accents
   with one of eSpeak's ~100 voice variants, speaking rate, pitch, pitch range, and a microphone
   colouration: spectral tilt + high-pass corner), with small per-utterance changes of rate and
   pitch and a random final punctuation (which changes intonation);
2. resampled 22,050 -> 16,000 Hz, trimmed, given a synthetic room (70 %: RT60 0.1-0.6 s),
   shifted to a random position in the 1 s window at a random level (-20..-1 dBFS peak);
3. mixed with background noise (80 %: white / pink / brown / mains hum / babble of other words,
   SNR 5-30 dB) over a faint pink noise floor.

Labels: the keywords, ``_unknown_`` (other Speech Commands words) and ``_silence_`` (background
only, -60..-20 dBFS RMS). Clip ``j`` of every label is spoken by speaker ``j`` (a seeded voice draw),
so each speaker says each word once, like the real dataset's speakers. Speaker ids are 8 hex
digits chosen so that the kit's speaker-hash split (:func:`labkit.data.splits.which_set` with
:data:`~labkit.data.splits.RESPLIT_SALT`) puts speakers ``j % 10 == 8`` in validation, ``j % 10 == 9``
in test and the rest in train: exactly 80/10/10, every split non-empty even for 12 clips per word,
and no speaker (voice) shared between splits.

Determinism. Every random choice comes from NumPy generators seeded with ``(seed, label, j)``;
eSpeak's own noise generator is reseeded per utterance. eSpeak's pitch "flutter" however depends on
everything the process synthesised before, so clips are generated in *fresh worker processes*, each
handling a fixed chunk (one label, clips ``[k*chunk, (k+1)*chunk)``) in a fixed order: the result is
byte-identical whatever the calling process did before and whatever the number of workers. A run
with more clips per word reproduces the clips of a smaller run as its first clips.

The set is generated once per (words, seed, per_word) and cached under
``data_dir()/synthetic/`` in the Speech Commands test-set layout with a ``manifest.json`` (seed,
per_word, SHA-256 over all clips, eSpeak NG version, per-clip parameters).
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .. import config
from ..io import file_lock
from .audio import read_wav, wav_bytes
from . import espeak as espeak_worker
from .espeak import SAMPLE_RATE, SILENCE, SPEECH_COMMANDS_WORDS, UNKNOWN, ESpeakNG, SynthError
from .splits import RESPLIT_SALT, which_set

GENERATOR_VERSION = 1
"""Bump when the clips' recipe changes: cached sets of another version are not reused."""

CHUNK_SIZE = 100
"""Clips per worker process (fixed: it is part of what makes the output reproducible)."""

__all__ = ["GENERATOR_VERSION", "CHUNK_SIZE", "SynthError", "ESpeakNG", "unknown_pool", "speaker_ids", "generate",
           "dataset_dir", "ensure_dataset", "synthetic_clips"]


# ------------------------------------------------------------------------------ parent-side driver
def _check_espeak() -> None:
    try:
        import espeakng_loader  # noqa: F401
    except ImportError:
        raise SynthError("the synthetic keyword set needs eSpeak NG from the espeakng-loader wheel: "
                         "pip install espeakng-loader (or load a real dataset, e.g. load_kws('mini_speech_commands'))"
                         ) from None


def unknown_pool(words: Sequence[str]) -> list[str]:
    """Words spoken as ``_unknown_`` (and in babble): the Speech Commands words that are not keywords.

    Used by :func:`generate`."""
    return [w for w in SPEECH_COMMANDS_WORDS if w not in set(words)]


def speaker_ids(seed: int, n: int) -> list[str]:
    """Ids of synthetic speakers ``0..n-1`` (8 hex digits), chosen so the salted speaker hash puts
    speakers ``j % 10 == 8`` in val, ``j % 10 == 9`` in test and the others in train (80/10/10).

    Used by :func:`ensure_dataset`."""
    ids: list[str] = []
    seen: set[str] = set()
    for j in range(n):
        target = "val" if j % 10 == 8 else "test" if j % 10 == 9 else "train"
        k = 0
        while True:
            sid = hashlib.sha1(f"labkit-synth:{seed}:{j}:{k}".encode()).hexdigest()[:8]
            if sid not in seen and which_set(sid, 10.0, 10.0, salt=RESPLIT_SALT) == target:
                break
            k += 1
        ids.append(sid)
        seen.add(sid)
    return ids


def _run_chunk(job: dict[str, Any]) -> dict[str, Any]:
    cmd = [sys.executable, "-P", os.path.abspath(espeak_worker.__file__), "--worker"]
    proc = subprocess.run(cmd, input=json.dumps(job).encode(), capture_output=True, check=False)
    if proc.returncode != 0:
        tail = proc.stderr.decode(errors="replace").strip().splitlines()[-8:]
        raise SynthError("a synthesis worker failed (label {!r}, clips {}-{}):\n{}".format(
            job["label"], job["start"], job["stop"] - 1, "\n".join(tail)))
    with np.load(job["out"]) as z:
        return {"pcm": z["pcm"], **json.loads(z["meta"].tobytes().decode())}


def generate(labels: Sequence[str], per_word: int, *, seed: int = 0, pool: Sequence[str] | None = None,
             workers: int | None = None, chunk_size: int = CHUNK_SIZE, progress: bool = True) -> dict[str, Any]:
    """Synthesise ``per_word`` clips for each label in fresh worker processes (in memory, no cache).

    Returns a dict with ``pcm`` (N, 16000) int16 in label-major order, ``labels`` and ``index`` per clip,
    ``infos`` (per-clip parameters), ``sha256`` over all clips, ``espeak_ng`` version and ``seconds``.
    The output depends only on (labels, per_word, seed, pool, chunk_size), not on ``workers``.
    Used by :func:`ensure_dataset` (notebook 01, through ``load_kws("synthetic")``).
    """
    from concurrent.futures import ThreadPoolExecutor, as_completed

    from tqdm.auto import tqdm

    _check_espeak()
    if per_word < 1:
        raise ValueError(f"per_word={per_word} must be at least 1")
    pool = list(pool) if pool is not None else unknown_pool([w for w in labels if not w.startswith("_")])
    workers = max(1, min(workers or os.cpu_count() or 1, 4))
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="labkit-synth-") as tmp:
        jobs = [{"seed": int(seed), "label": lab, "start": s, "stop": min(s + chunk_size, per_word), "pool": pool,
                 "out": os.path.join(tmp, f"{li:03d}_{s:06d}.npz")}
                for li, lab in enumerate(labels) for s in range(0, per_word, chunk_size)]
        results: list[dict[str, Any] | None] = [None] * len(jobs)
        ex = ThreadPoolExecutor(max_workers=workers)
        try:
            with tqdm(total=len(labels) * per_word, desc="synthesising keywords (eSpeak NG)", unit="clip",
                      disable=not progress) as bar:
                futures = {ex.submit(_run_chunk, job): i for i, job in enumerate(jobs)}
                for fut in as_completed(futures):   # the bar advances as chunks finish
                    results[futures[fut]] = fut.result()
                    bar.update(jobs[futures[fut]]["stop"] - jobs[futures[fut]]["start"])
        finally:   # on an error or Ctrl-C, do not start the remaining chunks
            ex.shutdown(wait=True, cancel_futures=True)
    pcm = np.concatenate([r["pcm"] for r in results])            # type: ignore[index]
    versions = {r["espeak_ng"] for r in results}                   # type: ignore[index]
    return {
        "pcm": pcm,
        "labels": [job["label"] for job in jobs for _ in range(job["start"], job["stop"])],
        "index": [j for job in jobs for j in range(job["start"], job["stop"])],
        "infos": [info for r in results for info in r["infos"]],   # type: ignore[index]
        "sha256": hashlib.sha256(pcm.tobytes()).hexdigest(),
        "espeak_ng": ",".join(sorted(versions)),
        "pool": pool,
        "seconds": round(time.perf_counter() - t0, 2),
        "workers": workers,
        "chunk_size": chunk_size,
    }


def _labels(words: Sequence[str], unknown: bool, silence: bool) -> list[str]:
    words = [str(w) for w in words]
    bad = [w for w in words if not w.replace("-", "").replace("'", "").isalpha()]
    if bad:
        raise ValueError(f"synthetic keywords must be plain words (letters, '-', \"'\"); got {bad}")
    return words + ([UNKNOWN] if unknown else []) + ([SILENCE] if silence else [])


def dataset_dir(words: Sequence[str], per_word: int, *, seed: int = 0, unknown: bool = True,
                silence: bool = True) -> Path:
    """Where the synthetic set for these arguments is (or would be) cached under ``data_dir()/synthetic``.

    Used by :func:`ensure_dataset`."""
    labels = _labels(words, unknown, silence)
    key = hashlib.sha1(json.dumps({"v": GENERATOR_VERSION, "labels": labels, "chunk": CHUNK_SIZE}).encode())
    return config.data_dir() / "synthetic" / f"kws-{key.hexdigest()[:10]}-seed{seed}-n{per_word}"


def ensure_dataset(words: Sequence[str], per_word: int, *, seed: int = 0, unknown: bool = True, silence: bool = True,
                   workers: int | None = None, progress: bool = True) -> tuple[Path, dict[str, Any]]:
    """The cached synthetic set's folder and manifest, generating it first if needed.

    Layout: ``<label>/<speaker>_nohash_0.wav`` (``_unknown_/<word>_<speaker>_nohash_0.wav``) and
    ``manifest.json``; the folder appears atomically (built in a temp folder, then renamed). Generation holds
    a file lock (:func:`lock_path`): a second process asking for the same set meanwhile (notebooks 01 and 03
    side by side in a report run) waits and then loads it, instead of generating it again.
    Used by :func:`labkit.data.load_kws` (notebooks 01-08).
    """
    labels = _labels(words, unknown, silence)
    folder = dataset_dir(words, per_word, seed=seed, unknown=unknown, silence=silence)
    found = _cached(folder)
    if found is None:
        with file_lock(lock_path(folder)):  # a second process asking for the same set waits, then finds it
            found = _cached(folder) or _generate_into(folder, labels, per_word, seed=seed, workers=workers,
                                                      progress=progress)
    return folder, found


def lock_path(folder: Path) -> Path:
    """The lock file beside a synthetic set's folder, held while it is generated. Used by :func:`ensure_dataset`."""
    return folder.parent / f".{folder.name}.lock"


def _cached(folder: Path) -> dict[str, Any] | None:
    """The manifest of a complete cached set in ``folder``; an incomplete one is removed (with a warning)."""
    manifest_path = folder / "manifest.json"
    if not manifest_path.is_file():
        return None
    manifest = json.loads(manifest_path.read_text())
    if all((folder / f).is_file() for f in manifest["files"]):
        return manifest
    import shutil
    import warnings

    warnings.warn(f"{folder} is incomplete (files missing); generating it again", RuntimeWarning, stacklevel=3)
    shutil.rmtree(folder)
    return None


def _generate_into(folder: Path, labels: list[str], per_word: int, *, seed: int, workers: int | None,
                   progress: bool) -> dict[str, Any]:
    """Generate the set and move it into ``folder`` atomically (built in a temp folder, then renamed)."""
    gen = generate(labels, per_word, seed=seed, workers=workers, progress=progress)
    ids = speaker_ids(seed, per_word)
    files = []
    for lab, j, info in zip(gen["labels"], gen["index"], gen["infos"]):
        stem = f"{ids[j]}_nohash_0.wav"
        files.append(f"{lab}/{info['word']}_{stem}" if lab == UNKNOWN else f"{lab}/{stem}")
    from importlib import metadata

    manifest = {
        "generator": "labkit.data.synth", "generator_version": GENERATOR_VERSION, "seed": seed,
        "per_word": per_word, "labels": labels, "unknown_words": gen["pool"], "n_clips": len(files),
        "sha256": gen["sha256"], "espeak_ng": gen["espeak_ng"],
        "espeakng_loader": metadata.version("espeakng-loader"), "generation_s": gen["seconds"],
        "workers": gen["workers"], "chunk_size": gen["chunk_size"], "created_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "speakers": ids,   # speaker j (index in this list) says clip j of every label
        "files": files,
        "clips": gen["infos"],
    }
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".partial", dir=folder.parent))
    try:
        for lab in labels:
            (tmp / lab).mkdir()
        for rel, pcm in zip(files, gen["pcm"]):
            (tmp / rel).write_bytes(wav_bytes(pcm))
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
        try:
            os.replace(tmp, folder)
        except OSError:   # another process finished the same set first: keep theirs
            if not (folder / "manifest.json").is_file():
                raise
    finally:
        if tmp.exists():
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)
    return manifest


def synthetic_clips(labels: Sequence[str], per_word: int, *, seed: int = 0,
                    progress: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """``per_word`` synthetic clips of each label, to mix into a real training set.

    ``labels`` may include ``"_unknown_"`` and ``"_silence_"``. Returns ``(x, y)``: float32 (N, 16000)
    waveforms and an array of label *names* (map them to your dataset's indices). Cached like the
    synthetic set; use a different ``seed`` from any synthetic set you evaluate on. Used by
    :func:`labkit.train.train_kws` (``extra_synthetic=N``, notebook 03).
    """
    labels = list(labels)
    words = [w for w in labels if not w.startswith("_")]
    unknown_flag, silence_flag = UNKNOWN in labels, SILENCE in labels
    odd = [w for w in labels if w.startswith("_") and w not in (UNKNOWN, SILENCE)]
    if odd:
        raise ValueError(f"{odd}: the synthetic set has only keywords, {UNKNOWN!r} and {SILENCE!r}")
    folder, manifest = ensure_dataset(words, per_word, seed=seed, unknown=unknown_flag, silence=silence_flag,
                                      progress=progress)
    x = np.stack([read_wav(folder / f) for f in manifest["files"]]) if manifest["files"] else np.zeros((0, SAMPLE_RATE))
    y = np.array([f.split("/", 1)[0] for f in manifest["files"]])
    return x.astype(np.float32), y
