"""Which samples go where: the speaker-hash split of keyword-spotting clips and evenly spaced subsets.

* :func:`speaker_id` / :func:`which_set`: the Speech Commands README's SHA-1 rule, so a speaker's clips
  always land in the same split (:data:`RESPLIT_SALT` re-splits folders that are themselves test sets);
  used by :func:`labkit.data.load_kws` and the synthetic set's speaker ids.
* :func:`evenly_spaced`: the one rule for "up to k samples spread over n" (calibration inputs of the
  int8 converter, fine-tuning subsets of the smoke profile, BatchNorm re-estimation).

No labkit imports: the rules here depend on nothing else.
"""
from __future__ import annotations

import hashlib
import os
import re

import numpy as np

__all__ = ["MAX_NUM_WAVS_PER_CLASS", "RESPLIT_SALT", "speaker_id", "which_set", "evenly_spaced"]

MAX_NUM_WAVS_PER_CLASS = 2**27 - 1   # as in the Speech Commands README's which_set
RESPLIT_SALT = "labkit-resplit:"
"""Salt of the speaker hash for folders in the test-set layout. The official test set holds only the
speakers that the unsalted ``which_set`` puts in "testing", so re-using that hash would put every clip
in our test split; a salted hash spreads them 80/10/10 instead."""


def speaker_id(filename: str | os.PathLike) -> str:
    """The speaker id of a Speech Commands file name: the part before ``_nohash_`` without a word prefix.

    ``"0c540988_nohash_0.wav"`` and ``"backward_0c540988_nohash_0.wav.wav"`` give ``"0c540988"``; a name
    without ``_nohash_`` (the test set's ``_silence_/1024.wav``) gives its stem (``"1024"``).
    Used by :func:`labkit.data.load_kws` (notebook 01).
    """
    base = os.path.basename(os.fspath(filename))
    if "_nohash_" in base:
        return re.sub(r"_nohash_.*$", "", base).rsplit("_", 1)[-1]
    return base.split(".", 1)[0]


def which_set(speaker: str, validation_percentage: float = 10.0, testing_percentage: float = 10.0, *,
              salt: str = "") -> str:
    """``"train"``, ``"val"`` or ``"test"`` for a speaker id, by the Speech Commands README's SHA-1 rule.

    The same speaker always lands in the same split, whatever else is in the dataset. ``salt`` is
    prepended before hashing (:data:`RESPLIT_SALT` re-splits a folder that is itself a test set).
    Used by :func:`labkit.data.load_kws` (notebook 01).
    """
    hashed = hashlib.sha1((salt + speaker).encode("utf-8")).hexdigest()
    percentage = (int(hashed, 16) % (MAX_NUM_WAVS_PER_CLASS + 1)) * (100.0 / MAX_NUM_WAVS_PER_CLASS)
    if percentage < validation_percentage:
        return "val"
    if percentage < validation_percentage + testing_percentage:
        return "test"
    return "train"


def evenly_spaced(n: int, k: int | None) -> np.ndarray:
    """Indices of up to ``k`` of ``n`` samples spread evenly from the first to the last (all ``n`` when
    ``k`` is ``None`` or at least ``n``): ``unique(round(linspace(0, n - 1, min(k, n))))``.

    The one subset rule of the kit: the int8 converter's calibration samples, the smoke profile's
    fine-tuning subsets and BatchNorm re-estimation all pick their samples with it (notebooks 05-08).
    """
    n = int(n)
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if k is None or int(k) >= n:
        return np.arange(n)
    if int(k) < 1:
        raise ValueError(f"k must be >= 1 (or None for all samples), got {k}")
    return np.unique(np.linspace(0, n - 1, int(k)).round().astype(int))
