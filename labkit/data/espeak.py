"""The eSpeak NG engine and the recipe of one synthetic clip, as a stand-alone worker program.

``labkit.data.synth`` runs ``python -P espeak.py --worker`` in fresh processes (one chunk of clips each,
see its docstring for why): this file therefore imports only the standard library and NumPy, never
labkit, so it runs as a plain script as well as a module. The clip recipe (voices, room, microphone,
background noise) is described in :mod:`labkit.data.synth`.
"""
from __future__ import annotations

import ctypes
import json
import sys
import zlib
from typing import Any, Sequence

import numpy as np

__all__ = ["SAMPLE_RATE", "SPEECH_COMMANDS_WORDS", "EN_VOICES", "UNKNOWN", "SILENCE", "SynthError", "ESpeakNG",
           "speaker_params"]

SAMPLE_RATE = 16000

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


if __name__ == "__main__" and "--worker" in sys.argv[1:]:
    sys.exit(_worker_main())
