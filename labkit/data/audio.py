"""Reading and writing the clips of keyword-spotting datasets: 16-bit PCM, mono, 16 kHz WAV.

Only the standard library's :mod:`wave` and NumPy are used (fast: ~3,000 one-second clips per second
and more).  Every problem a file can have raises a subclass of :class:`AudioError` (itself a
``ValueError``) whose message names the file, says what is wrong and what to do; a file is never
silently resampled, mixed down or truncated.
"""
from __future__ import annotations

import io
import os
import wave
from pathlib import Path

import numpy as np

from ..io import atomic_write_bytes

SAMPLE_RATE = 16000
"""Sample rate of every keyword-spotting clip in the kit (Hz)."""

CLIP_SAMPLES = SAMPLE_RATE
"""Samples in one clip: 1 s at 16 kHz."""

PAD_MODES = ("center", "end")

_CONVERT_HINT = ("convert it first, e.g. `ffmpeg -i IN -ac 1 -ar 16000 -sample_fmt s16 OUT.wav` "
                 "or `sox IN -r 16000 -c 1 -b 16 OUT.wav`")


class AudioError(ValueError):
    """A WAV file (or folder of WAV files) the kit cannot use as it is."""


class NotAWavError(AudioError):
    """The file is not a readable PCM WAV file (wrong format, corrupt header, compressed)."""


class CorruptWavError(AudioError):
    """The WAV header is readable but the audio data is missing or truncated."""


class SampleRateError(AudioError):
    """The clip is not at the expected sample rate (16 kHz)."""


class ChannelsError(AudioError):
    """The clip is not mono."""


class SampleWidthError(AudioError):
    """The clip is not 16-bit PCM."""


class EmptyFolderError(AudioError):
    """A folder that should hold WAV clips holds none."""


def read_wav(path: str | os.PathLike, *, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Read a 16-bit PCM mono WAV file as float32 samples in [-1, 1) (int16 / 32768).

    Raises a subclass of :class:`AudioError` (a ``ValueError``) naming the file and the problem for a
    missing/corrupt/non-WAV file, a sample rate other than ``sample_rate``, more than one channel,
    a sample width other than 16 bits, or a file holding no samples. Used by notebooks 01 and 02
    (through :func:`labkit.data.load_kws`).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such audio file")
    try:
        with wave.open(str(path), "rb") as wf:
            channels, width, rate, nframes = wf.getnchannels(), wf.getsampwidth(), wf.getframerate(), wf.getnframes()
            raw = wf.readframes(nframes)
    except (wave.Error, EOFError) as exc:
        raise NotAWavError(f"{path}: not a readable PCM WAV file ({exc}); {_CONVERT_HINT}") from None
    if channels != 1:
        raise ChannelsError(f"{path}: {channels} channels, expected mono; {_CONVERT_HINT}")
    if width != 2:
        raise SampleWidthError(f"{path}: {8 * width}-bit samples, expected 16-bit PCM; {_CONVERT_HINT}")
    if rate != sample_rate:
        raise SampleRateError(f"{path}: sample rate {rate} Hz, expected {sample_rate} Hz; {_CONVERT_HINT}")
    if nframes == 0:
        raise CorruptWavError(f"{path}: the file holds no samples (empty recording); delete or re-record it")
    if len(raw) != 2 * nframes:
        raise CorruptWavError(
            f"{path}: the header announces {nframes} samples but the file holds {len(raw) // 2}; "
            "the file is truncated (interrupted copy or download?): copy or download it again")
    return np.frombuffer(raw, dtype="<i2").astype(np.float32) / 32768.0


def to_pcm16(x: np.ndarray) -> np.ndarray:
    """Float samples in [-1, 1] -> little-endian int16 (rounded, clipped). Used by :func:`write_wav`."""
    return np.clip(np.round(np.asarray(x, np.float64) * 32768.0), -32768, 32767).astype("<i2")


def wav_bytes(x: np.ndarray, *, sample_rate: int = SAMPLE_RATE) -> bytes:
    """The bytes of a 16-bit PCM mono WAV file holding ``x`` (float in [-1, 1] or int16 samples).

    Used by :func:`write_wav` and the synthetic set's cache (notebook 01)."""
    x = np.asarray(x)
    pcm = x.astype("<i2") if x.dtype == np.int16 else to_pcm16(x)
    buf = io.BytesIO()
    with wave.open(buf, "wb") as wf:
        wf.setnchannels(1)
        wf.setsampwidth(2)
        wf.setframerate(sample_rate)
        wf.writeframes(pcm.tobytes())
    return buf.getvalue()


def write_wav(path: str | os.PathLike, x: np.ndarray, *, sample_rate: int = SAMPLE_RATE) -> Path:
    """Write ``x`` as a 16-bit PCM mono WAV file, atomically (temp file + rename).

    Round trip: ``read_wav(write_wav(p, x))`` equals ``x`` to within one int16 step. Used by the synthetic
    keyword set (notebook 01).
    """
    return atomic_write_bytes(path, wav_bytes(x, sample_rate=sample_rate))


def fix_length(x: np.ndarray, length: int = CLIP_SAMPLES, *, mode: str = "center") -> np.ndarray:
    """Zero-pad or trim ``x`` to exactly ``length`` samples.

    ``mode="center"`` (the kit's default) pads or trims equally on both sides (the extra sample, if any,
    goes at the end), so a short word stays in the middle of the window; ``mode="end"`` pads at the end /
    keeps the first ``length`` samples, like ``tf.audio.decode_wav(desired_samples=...)``.
    Used by :func:`labkit.data.load_kws` (notebook 01).
    """
    if mode not in PAD_MODES:
        raise ValueError(f"pad mode {mode!r} not understood; use one of {PAD_MODES}")
    x = np.asarray(x, dtype=np.float32)
    n = len(x)
    if n == length:
        return x
    if n > length:
        start = (n - length) // 2 if mode == "center" else 0
        return x[start:start + length]
    out = np.zeros(length, dtype=np.float32)
    start = (length - n) // 2 if mode == "center" else 0
    out[start:start + n] = x
    return out


def list_wavs(folder: str | os.PathLike) -> list[Path]:
    """The ``*.wav`` files directly inside ``folder``, sorted by name; :class:`EmptyFolderError` if none.

    Used by :func:`labkit.data.load_kws` (notebook 01).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() == ".wav" and p.is_file())
    if not files:
        raise EmptyFolderError(f"{folder}: the folder holds no .wav files; put 16 kHz mono 16-bit WAV clips "
                               "in it or remove it from the dataset")
    return files
