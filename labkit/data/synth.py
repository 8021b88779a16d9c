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
digits chosen so that the kit's speaker-hash split (:func:`labkit.data.which_set` with
:data:`~labkit.data.kws.RESPLIT_SALT`) puts speakers ``j % 10 == 8`` in validation, ``j % 10 == 9``
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

import ctypes
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path
from typing import Any, Sequence

import numpy as np

# NOTE: this file also runs as a stand-alone worker script (``python -P synth.py --worker``), so the
# module level imports only the standard library and NumPy; labkit modules are imported inside the
# functions that the parent process runs.

GENERATOR_VERSION = 1
"""Bump when the clips' recipe changes: cached sets of another version are not reused."""

SAMPLE_RATE = 16000
CHUNK_SIZE = 100
"""Clips per worker process (fixed: it is part of what makes the output reproducible)."""

SPEECH_COMMANDS_WORDS = (
    "backward", "bed", "bird", "cat", "dog", "down", "eight", "five", "follow", "forward", "four", "go",
    "happy", "house", "learn", "left", "marvin", "nine", "no", "off", "on", "one", "right", "seven",
    "sheila", "six", "stop", "three", "tree", "two", "up", "visual", "wow", "yes", "zero",
)
"""The 35 words of Speech Commands v0.02; those that are not keywords are spoken as ``_unknown_``."""

EN_VOICES = ("en-us", "en", "en-029", "en-gb-scotland", "en-gb-x-gbclan", "en-gb-x-gbcwmd", "en-gb-x-rp",
             "en-us-nyc")
UNKNOWN, SILENCE = "_unknown_", "_silence_"
_SPEAKER_STREAM = 0x5EA4E4


class SynthError(RuntimeError):
    """eSpeak NG is missing or a generation worker failed."""


# --------------------------------------------------------------------------------------- eSpeak NG
class _Voice(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char_p), ("languages", ctypes.c_void_p), ("identifier", ctypes.c_char_p),
                ("gender", ctypes.c_ubyte), ("age", ctypes.c_ubyte), ("variant", ctypes.c_ubyte),
                ("xx1", ctypes.c_ubyte), ("score", ctypes.c_int), ("spare", ctypes.c_void_p)]


_SYNTH_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)


class ESpeakNG:
    """libespeak-ng through ctypes, rendering to memory. One per process (the library has global state)."""

    _RATE, _VOLUME, _PITCH, _RANGE = 1, 2, 3, 4
    _AUDIO_OUTPUT_SYNCHRONOUS = 2

    def __init__(self) -> None:
        import espeakng_loader

        lib = ctypes.CDLL(espeakng_loader.get_library_path())
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_ListVoices.argtypes = [ctypes.POINTER(_Voice)]
        lib.espeak_ListVoices.restype = ctypes.POINTER(ctypes.POINTER(_Voice))
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_Synth.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
                                     ctypes.c_uint, ctypes.POINTER(ctypes.c_uint), ctypes.c_void_p]
        lib.espeak_SetSynthCallback.argtypes = [_SYNTH_CALLBACK]
        lib.espeak_Info.argtypes = [ctypes.POINTER(ctypes.c_char_p)]
        lib.espeak_Info.restype = ctypes.c_char_p
        self.sample_rate = lib.espeak_Initialize(self._AUDIO_OUTPUT_SYNCHRONOUS, 0,
                                                 espeakng_loader.get_data_path().encode(), 0)
        if self.sample_rate <= 0:
            raise SynthError("espeak_Initialize failed; reinstall espeakng-loader (pip install -U espeakng-loader)")
        self.lib = lib
        self._chunks: list[np.ndarray] = []
        # eSpeak seeds its noise generator with time(NULL); espeak_ng_SetRandSeed (>= 1.52) fixes it.
        self._set_seed = getattr(lib, "espeak_ng_SetRandSeed", None)
        if self._set_seed is None:
            raise SynthError(f"eSpeak NG {self.version()} lacks espeak_ng_SetRandSeed, so its output is not "
                             "reproducible; upgrade espeakng-loader (pip install -U espeakng-loader)")
        self._set_seed.argtypes = [ctypes.c_long]

        def _collect(wav, n, _events):  # noqa: ANN001 (ctypes callback)
            if n > 0 and wav:
                self._chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
            return 0

        self._callback = _SYNTH_CALLBACK(_collect)   # keep a reference: the library calls it later
        lib.espeak_SetSynthCallback(self._callback)

    def version(self) -> str:
        """eSpeak NG's version string (e.g. ``"1.52.0"``)."""
        return self.lib.espeak_Info(None).decode()

    def variants(self) -> list[str]:
        """The voice variants (``"m1"``, ``"klatt"``, ...), sorted."""
        spec = _Voice()
        key = ctypes.create_string_buffer(b"variant")
        spec.languages = ctypes.cast(key, ctypes.c_void_p)
        voices, out, i = self.lib.espeak_ListVoices(ctypes.byref(spec)), [], 0
        while voices[i]:
            out.append(voices[i].contents.identifier.decode().split("/", 1)[-1])
            i += 1
        return sorted(out)

    def synth(self, text: str, *, voice: str, rate: int, pitch: int, pitch_range: int, seed: int,
              volume: int = 100) -> np.ndarray:
        """``text`` spoken as int16 samples at :attr:`sample_rate` (22,050 Hz)."""
        self._set_seed(int(seed))
        if self.lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise SynthError(f"eSpeak NG has no voice {voice!r}")
        for param, value in ((self._RATE, rate), (self._PITCH, pitch), (self._RANGE, pitch_range),
                             (self._VOLUME, volume)):
            self.lib.espeak_SetParameter(param, int(value), 0)
        self._chunks = []
        buf = text.encode() + b"\0"
        if self.lib.espeak_Synth(buf, len(buf), 0, 1, 0, 0, None, None) != 0:
            raise SynthError(f"espeak_Synth failed for {text!r}")
        return np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.int16)


# --------------------------------------------------------------------------------------------- DSP
def _resample(x: np.ndarray, sr_in: int, sr_out: int = SAMPLE_RATE) -> np.ndarray:
    """Band-limited FFT resampling of int16 samples to float32 in [-1, 1]."""
    y = x.astype(np.float32) / 32768.0
    if sr_in == sr_out or len(y) == 0:
        return y
    n_out = int(round(len(y) * sr_out / sr_in))
    spec = np.fft.rfft(y)
    if sr_out < sr_in:
        spec = spec[:n_out // 2 + 1]
    return (np.fft.irfft(spec, n_out) * (n_out / len(y))).astype(np.float32)


def _trim(x: np.ndarray, thresh_db: float = -40.0, margin: int = 160) -> np.ndarray:
    """Cut leading/trailing parts quieter than ``thresh_db`` below the peak (keeping ``margin`` samples)."""
    if len(x) == 0:
        return x
    env = np.abs(x)
    idx = np.nonzero(env > env.max() * 10 ** (thresh_db / 20))[0]
    return x[max(idx[0] - margin, 0): idx[-1] + margin] if len(idx) else x[:0]


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.asarray(x, np.float64) ** 2)) + 1e-12)


def _noise(rng: np.random.Generator, n: int, kind: str) -> np.ndarray:
    """Unit-RMS noise: white, pink (1/f), brown (1/f^2) or mains hum (50/60 Hz + harmonics)."""
    w = rng.standard_normal(n).astype(np.float32)
    if kind == "white":
        y = w
    elif kind in ("pink", "brown"):
        f = np.fft.rfftfreq(n)
        f[0] = f[1]
        y = np.fft.irfft(np.fft.rfft(w) / (np.sqrt(f) if kind == "pink" else f), n).astype(np.float32)
    elif kind == "hum":
        t = np.arange(n) / SAMPLE_RATE
        f0 = float(rng.choice([50.0, 60.0]))
        y = sum(np.sin(2 * np.pi * f0 * k * t + rng.uniform(0, 2 * np.pi)) / k for k in (1, 2, 3, 4))
        y = (y + 0.05 * w).astype(np.float32)
    else:
        raise ValueError(f"unknown noise kind {kind!r}")
    return y / (np.sqrt(np.mean(y ** 2)) + 1e-9)


def _room(rng: np.random.Generator, x: np.ndarray) -> tuple[np.ndarray, float]:
    """A cheap synthetic room: direct sound + exponentially decaying noise tail."""
    rt60 = float(rng.uniform(0.1, 0.6))
    n = int(rt60 * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    ir = rng.standard_normal(n).astype(np.float32) * np.exp(-6.9 * t / rt60).astype(np.float32)
    ir *= rng.uniform(0.05, 0.4) / (np.sqrt(np.sum(ir ** 2)) + 1e-9)   # reverberant-to-direct ratio
    ir[0] = 1.0
    m = len(x) + n - 1
    nfft = 1 << (m - 1).bit_length()
    return np.fft.irfft(np.fft.rfft(x, nfft) * np.fft.rfft(ir, nfft), nfft)[:m].astype(np.float32), rt60


def _mic(x: np.ndarray, tilt: float, highpass_hz: float) -> np.ndarray:
    """Microphone colouration: spectral tilt around 1 kHz and a ~2nd-order high-pass."""
    f = np.fft.rfftfreq(len(x), 1 / SAMPLE_RATE) + 1.0
    gain = (f / 1000.0) ** tilt / np.sqrt(1 + (highpass_hz / f) ** 4)
    return np.fft.irfft(np.fft.rfft(x) * gain, len(x)).astype(np.float32)


# ------------------------------------------------------------------------------------ the generator
def speaker_params(seed: int, j: int, variants: Sequence[str]) -> dict[str, Any]:
    """Voice parameters of synthetic speaker ``j`` (the same for every word that speaker says).

    Used by the generation workers (notebook 01 shows them via the manifest)."""
    r = np.random.default_rng([seed, _SPEAKER_STREAM, j])
    voice = EN_VOICES[int(r.integers(len(EN_VOICES)))]
    if r.random() < 0.85:
        voice += "+" + variants[int(r.integers(len(variants)))]
    return {"voice": voice, "rate": int(r.integers(120, 221)), "pitch": int(r.integers(15, 86)),
            "pitch_range": int(r.integers(10, 91)), "tilt": round(float(r.uniform(-0.6, 0.3)), 4),
            "highpass_hz": round(float(r.uniform(40, 300)), 1)}


class _Generator:
    """Makes clips in one (worker) process."""

    def __init__(self) -> None:
        self.tts = ESpeakNG()
        self.variants = self.tts.variants()

    def _say(self, rng: np.random.Generator, word: str, voice: str, rate: int, pitch: int,
             pitch_range: int) -> np.ndarray:
        punct = ("", ".", "!", "?")[int(rng.integers(4))]
        raw = self.tts.synth(word + punct, voice=voice, rate=rate, pitch=pitch, pitch_range=pitch_range,
                             seed=int(rng.integers(2**31 - 1)))
        return _trim(_resample(raw, self.tts.sample_rate))[:SAMPLE_RATE]

    def _random_voice(self, rng: np.random.Generator) -> dict[str, Any]:
        voice = EN_VOICES[int(rng.integers(len(EN_VOICES)))]
        if rng.random() < 0.85:
            voice += "+" + self.variants[int(rng.integers(len(self.variants)))]
        return {"voice": voice, "rate": int(rng.integers(110, 241)), "pitch": int(rng.integers(15, 86)),
                "pitch_range": int(rng.integers(10, 91))}

    def _background(self, rng: np.random.Generator, babble_words: Sequence[str]) -> tuple[np.ndarray, str]:
        kind = ("white", "pink", "brown", "hum", "babble")[int(rng.integers(5))]
        if kind != "babble":
            return _noise(rng, SAMPLE_RATE, kind), kind
        y = np.zeros(SAMPLE_RATE, np.float32)
        for _ in range(int(rng.integers(3, 7))):
            w = self._say(rng, babble_words[int(rng.integers(len(babble_words)))], **self._random_voice(rng))
            offset = int(rng.integers(0, SAMPLE_RATE - len(w) + 1))
            y[offset:offset + len(w)] += w * rng.uniform(0.3, 1.0)
        return y / _rms(y), kind

    def clip(self, seed: int, label: str, j: int, pool: Sequence[str]) -> tuple[np.ndarray, dict[str, Any]]:
        """Clip ``j`` of ``label`` (a keyword, ``_unknown_`` or ``_silence_``) as float32[16000]."""
        rng = np.random.default_rng([seed, zlib.crc32(label.encode()), j])
        out = np.zeros(SAMPLE_RATE, np.float32)
        info: dict[str, Any] = {}
        if label != SILENCE:
            word = pool[int(rng.integers(len(pool)))] if label == UNKNOWN else label
            spk = speaker_params(seed, j, self.variants)
            rate = int(round(spk["rate"] * rng.uniform(0.9, 1.1)))
            pitch = int(np.clip(spk["pitch"] + rng.integers(-6, 7), 0, 99))
            pitch_range = int(np.clip(spk["pitch_range"] + rng.integers(-10, 11), 0, 99))
            x = self._say(rng, word, spk["voice"], rate, pitch, pitch_range)
            rt60 = None
            if rng.random() < 0.7:
                x, rt60 = _room(rng, x)
            x = _trim(_mic(x, spk["tilt"], spk["highpass_hz"]), thresh_db=-50)[:SAMPLE_RATE]
            offset = int(rng.integers(0, SAMPLE_RATE - len(x) + 1))
            x = x / (np.abs(x).max() + 1e-9) * 10 ** (rng.uniform(-20, -1) / 20)
            out[offset:offset + len(x)] = x
            info.update(word=word, voice=spk["voice"], rate=rate, pitch=pitch, pitch_range=pitch_range,
                        rt60_s=None if rt60 is None else round(rt60, 3), speech_s=round(len(x) / SAMPLE_RATE, 4),
                        offset_s=round(offset / SAMPLE_RATE, 4))
        if label == SILENCE or rng.random() < 0.8:    # 20 % of the spoken clips stay clean
            bg, kind = self._background(rng, pool)
            if label == SILENCE:
                gain = 10 ** (rng.uniform(-60, -20) / 20)                  # absolute level, dBFS RMS
            else:
                snr = float(rng.uniform(5, 30))
                gain = _rms(out[offset:offset + len(x)]) / 10 ** (snr / 20)
                info["snr_db"] = round(snr, 2)
            out += bg * gain
            info["noise"] = kind
        else:
            info["noise"] = "none"
        out += _noise(rng, SAMPLE_RATE, "pink") * 10 ** (rng.uniform(-75, -55) / 20)   # noise floor
        peak = float(np.abs(out).max())
        if peak > 0.999:
            out *= 0.999 / peak
        return out, info


def _to_pcm16(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round(np.asarray(x, np.float64) * 32768.0), -32768, 32767).astype("<i2")


def _worker_main() -> int:
    """Worker entry point: one chunk spec as JSON on stdin -> an .npz file (clips + info)."""
    job = json.loads(sys.stdin.read())
    gen = _Generator()
    pcm = np.empty((job["stop"] - job["start"], SAMPLE_RATE), dtype="<i2")
    infos = []
    for i, j in enumerate(range(job["start"], job["stop"])):
        x, info = gen.clip(job["seed"], job["label"], j, job["pool"])
        pcm[i] = _to_pcm16(x)
        infos.append(info)
    meta = json.dumps({"infos": infos, "espeak_ng": gen.tts.version(), "variants": len(gen.variants)})
    with open(job["out"], "wb") as fh:
        np.savez(fh, pcm=pcm, meta=np.frombuffer(meta.encode(), dtype=np.uint8))
    return 0


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
    from .kws import RESPLIT_SALT, which_set

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
    cmd = [sys.executable, "-P", os.path.abspath(__file__), "--worker"]
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
    from .. import config

    labels = _labels(words, unknown, silence)
    key = hashlib.sha1(json.dumps({"v": GENERATOR_VERSION, "labels": labels, "chunk": CHUNK_SIZE}).encode())
    return config.data_dir() / "synthetic" / f"kws-{key.hexdigest()[:10]}-seed{seed}-n{per_word}"


def ensure_dataset(words: Sequence[str], per_word: int, *, seed: int = 0, unknown: bool = True, silence: bool = True,
                   workers: int | None = None, progress: bool = True) -> tuple[Path, dict[str, Any]]:
    """The cached synthetic set's folder and manifest, generating it first if needed.

    Layout: ``<label>/<speaker>_nohash_0.wav`` (``_unknown_/<word>_<speaker>_nohash_0.wav``) and
    ``manifest.json``; the folder appears atomically (built in a temp folder, then renamed).
    Used by :func:`labkit.data.load_kws` (notebooks 01-08).
    """
    from .audio import wav_bytes

    labels = _labels(words, unknown, silence)
    folder = dataset_dir(words, per_word, seed=seed, unknown=unknown, silence=silence)
    manifest_path = folder / "manifest.json"
    if manifest_path.is_file():
        manifest = json.loads(manifest_path.read_text())
        if all((folder / f).is_file() for f in manifest["files"]):
            return folder, manifest
        import shutil
        import warnings

        warnings.warn(f"{folder} is incomplete (files missing); generating it again", RuntimeWarning, stacklevel=2)
        shutil.rmtree(folder)
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
    return folder, manifest


def synthetic_clips(labels: Sequence[str], per_word: int, *, seed: int = 0,
                    progress: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """``per_word`` synthetic clips of each label, to mix into a real training set.

    ``labels`` may include ``"_unknown_"`` and ``"_silence_"``. Returns ``(x, y)``: float32 (N, 16000)
    waveforms and an array of label *names* (map them to your dataset's indices). Cached like the
    synthetic set; use a different ``seed`` from any synthetic set you evaluate on. Used by
    :func:`labkit.train.train_kws` (``extra_synthetic=N``, notebook 03).
    """
    from .audio import read_wav

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


if __name__ == "__main__" and "--worker" in sys.argv[1:]:
    sys.exit(_worker_main())
