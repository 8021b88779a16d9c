"""Datasets for the notebooks: one registry + ``fetch`` for downloads, loaders that return the same
structure whatever the source (``load_kws`` -> :class:`KWSData`, ``load_weather`` -> DataFrame,
``make_windows`` -> :class:`Windows`), the offline synthetic keyword set (eSpeak NG), and the rules
that pick samples (``splits``: the speaker-hash split, ``evenly_spaced`` subsets).

Modules, imports one way: ``splits``, ``audio`` and ``espeak`` (the synthesis worker: standard library
and NumPy only) <- ``synth`` <- ``kws`` (with ``registry``); ``registry`` <- ``weather`` <- ``windows``.

Nothing is read, downloaded or generated at import time.
"""
from __future__ import annotations

from .audio import (
    AudioError,
    ChannelsError,
    CorruptWavError,
    EmptyFolderError,
    NotAWavError,
    SampleRateError,
    SampleWidthError,
    fix_length,
    read_wav,
    write_wav,
)
from .kws import KWSData, UnknownWordError, check_splits, load_kws, speaker_folds
from .registry import (
    DATASETS,
    ChecksumError,
    DatasetError,
    DownloadError,
    LayoutError,
    UnsafeArchiveError,
    available,
    fetch,
)
from .splits import evenly_spaced, speaker_id, which_set
from .synth import SynthError, synthetic_clips
from .weather import load_weather
from .windows import Windows, make_windows

__all__ = [
    "DATASETS", "AudioError", "ChannelsError", "ChecksumError", "CorruptWavError", "DatasetError",
    "DownloadError", "EmptyFolderError", "evenly_spaced", "KWSData", "LayoutError", "NotAWavError", "SampleRateError",
    "SampleWidthError", "SynthError", "UnknownWordError", "UnsafeArchiveError", "Windows", "available",
    "fetch", "fix_length", "load_kws", "load_weather", "make_windows", "read_wav", "speaker_id",
    "check_splits", "speaker_folds",
    "synthetic_clips", "which_set", "write_wav",
]
