"""Keyword-spotting datasets as one structure, :class:`KWSData`, whatever the source.

:func:`load_kws` reads

* ``"synthetic"``: eSpeak NG clips generated offline (:mod:`labkit.data.synth`), the default;
* ``"mini_speech_commands"``: 8 words, ``<word>/<speaker>_nohash_<n>.wav``;
* ``"speech_commands_v2"``: the 12-class task (10 words + ``_unknown_`` + ``_silence_``) with the
  official ``validation_list.txt`` / ``testing_list.txt`` split;
* ``"speech_commands_test"``: the official 12-class test set (``<label>/<speaker>_nohash_<n>.wav``
  with ``_unknown_/`` and ``_silence_/`` folders);
* any local folder in one of those layouts (pass its path as ``name``).

Every clip becomes float32 in [-1, 1] of exactly 1 s at 16 kHz. Shorter clips are zero-padded
*centred* (the word stays in the middle of the window), longer ones trimmed centred
(``pad="end"`` pads/trims at the end instead, like ``tf.audio.decode_wav``); ``info["padded"]``
counts them.

Splits are deterministic and speaker-disjoint. Except where official lists exist (v2), a clip's
split comes from the SHA-1 hash of its speaker id, exactly as ``which_set`` in the Speech
Commands README does (the file name with ``_nohash_.*`` removed, as a percentage), so adding
files never moves existing ones between splits. The speaker id drops the word prefix that the
official test set's ``_unknown_/`` files carry (``backward_0c540988_nohash_0.wav.wav`` ->
``0c540988``), so a speaker's unknown-word clips land in the same split as their keywords.
A folder in the test-set layout (``_unknown_/`` or ``_silence_/`` folders: the official test set,
the synthetic set) is split 80/10/10 by default with a *salted* hash (:data:`~labkit.data.splits.RESPLIT_SALT`): the
official test set holds exactly the speakers that the unsalted hash sends to "testing", so the
unsalted rule would put all of it in our test split. Plain word folders (mini_speech_commands) use
the unsalted rule, so their test speakers are the official test speakers and their training
speakers never occur in the official test set.
"""
from __future__ import annotations

import dataclasses
import os
import time
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from .. import config
from . import synth
from .audio import CLIP_SAMPLES, PAD_MODES, EmptyFolderError, fix_length, list_wavs, read_wav
from .registry import DATASETS, fetch
from .splits import RESPLIT_SALT, speaker_id, which_set

if TYPE_CHECKING:
    import pandas as pd

UNKNOWN = "_unknown_"
SILENCE = "_silence_"
BACKGROUND = "_background_noise_"
SPLITS = ("train", "val", "test")
_SPLIT_ALIASES = {"train": "train", "training": "train", "val": "val", "valid": "val", "validation": "val",
                  "test": "test", "testing": "test"}
SILENCE_DBFS = (-60.0, -20.0)        # RMS level range of the _silence_ cuts made from background noise


class UnknownWordError(ValueError):
    """A requested keyword is not in the dataset."""


@dataclasses.dataclass
class KWSData:
    """Waveforms and integer labels of a keyword-spotting dataset, split into train/val/test.

    ``x_*`` are float32 arrays of shape (N, 16000) in [-1, 1]; ``y_*`` int64 indices into
    ``labels``. ``info`` holds counts per split and label (``counts``), speakers per split,
    padded/trimmed clip counts, the source path and how the data was split.
    Used by notebooks 01-08.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    labels: list[str]
    name: str
    info: dict[str, Any] = dataclasses.field(default_factory=dict)
    noise: np.ndarray | None = dataclasses.field(default=None, repr=False)
    """Background-noise clips for training augmentation, (N, 16000) float32: the *training* split's
    ``_silence_`` clips or 1 s cuts of the training part of the ``_background_noise_`` recordings
    (``None`` when the folder has neither). Used by ``train.train_kws``."""
    speakers: dict[str, np.ndarray] | None = dataclasses.field(default=None, repr=False)
    """Speaker id of every clip, per split (aligned with ``y_<split>``; ``""`` for silence cuts).
    Used by :func:`speaker_folds` (benchmarks/kws_real.py)."""

    def split(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """``(x, y)`` of ``"train"``, ``"val"`` or ``"test"`` (``"validation"``/``"testing"`` also work)."""
        try:
            key = _SPLIT_ALIASES[name]
        except KeyError:
            raise ValueError(f"unknown split {name!r}; use one of {SPLITS}") from None
        return getattr(self, f"x_{key}"), getattr(self, f"y_{key}")

    @property
    def num_classes(self) -> int:
        """Number of labels."""
        return len(self.labels)

    def summary(self) -> pd.DataFrame:
        """Clips per label (rows, plus a ``total`` row) and split (columns, plus ``total``). Used by notebook 01."""
        import pandas as pd

        rows = {lab: [int(np.sum(self.split(s)[1] == i)) for s in SPLITS] for i, lab in enumerate(self.labels)}
        df = pd.DataFrame.from_dict(rows, orient="index", columns=list(SPLITS))
        df.index.name = "label"
        df.loc["total"] = df.sum()
        df["total"] = df.sum(axis=1)
        return df

    def __repr__(self) -> str:
        sizes = ", ".join(f"{s}={len(self.split(s)[1])}" for s in SPLITS)
        return f"KWSData(name={self.name!r}, labels={self.labels}, {sizes})"


@dataclasses.dataclass
class _Item:
    label: str
    split: str
    path: Path | None = None       # a clip file ...
    cut: tuple[int, int, float] | None = None   # ... or (noise index, offset, gain) for a silence cut


def _check_split_percent(split: Sequence[float]) -> tuple[float, float, float]:
    if len(split) != 3 or any(p < 0 for p in split) or abs(sum(split) - 100.0) > 1e-6:
        raise ValueError(f"split={tuple(split)} must be three percentages (train, val, test) summing to 100")
    return float(split[0]), float(split[1]), float(split[2])


def _label_dirs(root: Path) -> dict[str, Path]:
    return {p.name: p for p in sorted(root.iterdir()) if p.is_dir() and not p.name.startswith(".")}


def _word_prefix(filename: str) -> str | None:
    """``"dog"`` for the test set's ``_unknown_/dog_<speaker>_nohash_<n>.wav``, else ``None``."""
    head = filename.split("_nohash_")[0] if "_nohash_" in filename else ""
    return head.split("_", 1)[0] if "_" in head else None


def _default_words(word_dirs: Sequence[str], task12: bool) -> list[str]:
    if task12 and all(w in word_dirs for w in config.KWS12_WORDS):
        return list(config.KWS12_WORDS)
    return sorted(word_dirs)


def _read_list(path: Path) -> set[str]:
    return {line.strip() for line in path.read_text().splitlines() if line.strip()} if path.is_file() else set()


def load_kws(
    name: str = "synthetic",
    *,
    words: Sequence[str] | None = None,
    source: str | os.PathLike | None = None,
    per_word: int | None = None,
    seed: int = 0,
    max_per_label: int | None = None,
    unknown: bool | None = None,
    silence: bool | None = None,
    split: Sequence[float] = (80, 10, 10),
    pad: str = "center",
    progress: bool = True,
) -> KWSData:
    """Load a keyword-spotting dataset as :class:`KWSData` (1 s float32 clips, int labels, 3 splits).

    ``name``: ``"synthetic"``, a registered dataset (``mini_speech_commands``, ``speech_commands_v2``,
    ``speech_commands_test``; ``source=`` may point to a hand-downloaded archive or extracted folder)
    or the path of a folder in the Speech Commands layout.
    ``words``: the keywords (labels in that order, then ``_unknown_``, ``_silence_``); default: the
    dataset's own (8 for mini/synthetic, the 10 of the 12-class task for v2 and the test set).
    A word the dataset lacks raises :class:`UnknownWordError`; the synthetic set can say any word.
    ``unknown`` / ``silence``: add ``_unknown_`` (other words) / ``_silence_`` (background noise);
    ``None`` = where the dataset has them. When word folders that are not keywords feed ``_unknown_``
    (v2, or a word subset), it is capped per split at the mean keyword count (seeded subsample) so it
    does not swamp the keywords; a test set's own ``_unknown_/`` folder is kept whole.
    ``per_word``: synthetic clips per label (synthetic only; default: the quick profile's 300).
    ``max_per_label``: cap per label, spread over the splits by their percentages (for fast runs).
    ``split``: train/val/test percentages of the speaker-hash split (v2 uses its official lists).
    Used by notebooks 01-08.
    """
    if pad not in PAD_MODES:
        raise ValueError(f"pad={pad!r}; use one of {PAD_MODES}")
    percents = _check_split_percent(split)
    if words is not None:
        words = [str(w) for w in words]
        if not words or len(set(words)) != len(words):
            raise ValueError(f"words={words} must be a non-empty list without duplicates")
        bad = [w for w in words if w.startswith("_")]
        if bad:
            raise ValueError(f"{bad} are not keywords; use unknown=True / silence=True for {UNKNOWN} / {SILENCE}")
    t0 = time.perf_counter()
    extra: dict[str, Any] = {}
    if name == "synthetic":
        if source is not None:
            raise ValueError("the synthetic set is generated, it takes no source=; pass a folder as name instead")
        folder, manifest = synth.ensure_dataset(
            words or config.KWS_WORDS, per_word or config.profile("quick").synth_per_word, seed=seed,
            unknown=unknown is not False, silence=silence is not False, progress=progress)
        root = folder
        extra["synthetic"] = {k: manifest[k] for k in ("seed", "per_word", "sha256", "espeak_ng", "generator_version",
                                                       "generation_s") if k in manifest}
        words = list(words or config.KWS_WORDS)
    else:
        if name in DATASETS:
            if DATASETS[name].kind != "kws":
                raise ValueError(f"{name!r} is a {DATASETS[name].kind} dataset, not a keyword-spotting one")
            root = fetch(name, source=source, progress=progress)
        else:
            root = Path(source if source is not None else name).expanduser()
            if not root.is_dir():
                names = ", ".join(map(repr, ["synthetic", *DATASETS]))
                raise ValueError(f"{name!r} is neither a dataset name ({names}) nor an existing folder in the "
                                 "Speech Commands layout (<word>/<speaker>_nohash_<n>.wav)")
    data = _load_folder(Path(root), name=name, words=words, unknown=unknown, silence=silence, percents=percents,
                        seed=seed, max_per_label=max_per_label, pad=pad, progress=progress)
    data.info.update(extra)
    data.info["load_time_s"] = round(time.perf_counter() - t0, 3)
    return data


def _load_folder(root: Path, *, name: str, words: list[str] | None, unknown: bool | None, silence: bool | None,
                 percents: tuple[float, float, float], seed: int, max_per_label: int | None, pad: str,
                 progress: bool) -> KWSData:
    dirs = _label_dirs(root)
    is_v2 = (root / "validation_list.txt").is_file() or BACKGROUND in dirs
    word_dirs = {k: v for k, v in dirs.items() if not k.startswith("_")}
    if not word_dirs and UNKNOWN not in dirs:
        raise EmptyFolderError(f"{root}: no label folders (<word>/<speaker>_nohash_<n>.wav) here; pass the folder "
                               "that holds them, or use load_kws('synthetic')")
    has_unknown_dir = UNKNOWN in dirs
    test_layout = not is_v2 and (has_unknown_dir or SILENCE in dirs)
    words = list(words) if words is not None else _default_words(list(word_dirs), is_v2 or has_unknown_dir)
    unknown_files = list_wavs(dirs[UNKNOWN]) if has_unknown_dir else []
    # test-set layout: other words live in _unknown_ as <word>_<speaker>_nohash_<n>.wav
    prefixed: dict[str, list[Path]] = {}
    for f in unknown_files:
        prefix = _word_prefix(f.name)
        if prefix is not None:
            prefixed.setdefault(prefix, []).append(f)
    missing = [w for w in words if w not in word_dirs and w not in prefixed]
    if missing:
        have = sorted(set(word_dirs) | set(prefixed))
        raise UnknownWordError(f"{root}: no clips of {missing}; this dataset has {have}. Pick words from that list, "
                               "or use load_kws('synthetic', words=[...]), which can say any word")
    use_unknown = (is_v2 or has_unknown_dir) if unknown is None else bool(unknown)
    has_silence_src = SILENCE in dirs or BACKGROUND in dirs
    use_silence = has_silence_src if silence is None else bool(silence)
    if use_silence and not has_silence_src:
        raise ValueError(f"{root}: silence=True but there is neither a {SILENCE}/ nor a {BACKGROUND}/ folder to take "
                         "silence clips from; pass silence=None/False")
    labels = words + ([UNKNOWN] if use_unknown else []) + ([SILENCE] if use_silence else [])

    if is_v2:
        val_list, test_list = _read_list(root / "validation_list.txt"), _read_list(root / "testing_list.txt")

        def split_of(path: Path) -> str:
            rel = f"{path.parent.name}/{path.name}"
            return "val" if rel in val_list else "test" if rel in test_list else "train"
        split_rule = "official validation_list.txt / testing_list.txt"
    else:
        salt = RESPLIT_SALT if test_layout else ""

        def split_of(path: Path) -> str:
            return which_set(speaker_id(path.name), percents[1], percents[2], salt=salt)
        split_rule = (f"sha1({salt!r} + speaker) train/val/test = "
                      f"{percents[0]:g}/{percents[1]:g}/{percents[2]:g} %")

    items: list[_Item] = []
    for w in words:
        files = (list_wavs(word_dirs[w]) if w in word_dirs else []) + prefixed.get(w, [])
        items += [_Item(w, split_of(f), path=f) for f in files]
    unknown_words: set[str] = set()
    if use_unknown:
        pool = [f for f in unknown_files if _word_prefix(f.name) not in words]
        unknown_words |= {p for p in map(_word_prefix, (f.name for f in pool)) if p is not None}
        for d, path in word_dirs.items():
            if d not in words:
                pool += list_wavs(path)
                unknown_words.add(d)
        items += [_Item(UNKNOWN, split_of(f), path=f) for f in pool]

    rng = np.random.default_rng(seed)
    n = Counter((it.split, it.label) for it in items)
    per_split_mean = {s: max(1, int(round(np.mean([n[s, w] for w in words])))) for s in SPLITS}
    noise: list[np.ndarray] = []
    if use_silence:
        if SILENCE in dirs:
            items += [_Item(SILENCE, split_of(f), path=f) for f in list_wavs(dirs[SILENCE])]
        else:
            noise = [read_wav(f) for f in list_wavs(dirs[BACKGROUND])]
            items += _silence_cuts(noise, per_split_mean, percents, rng)
    if use_unknown and any(d not in words for d in word_dirs):
        items = _cap_label(items, UNKNOWN, per_split_mean, rng)   # other word folders feed _unknown_
    if max_per_label is not None:
        caps = {s: max(1, int(round(max_per_label * p / 100))) for s, p in zip(SPLITS, percents)}
        for lab in labels:
            items = _cap_label(items, lab, caps, rng)
    for lab in labels:
        if not any(it.label == lab for it in items):
            hint = (" (every word folder is a keyword and there is no _unknown_/ folder: pass fewer words or "
                    "unknown=False)" if lab == UNKNOWN else "")
            raise EmptyFolderError(f"{root}: no clips for label {lab!r}{hint}")

    order = {lab: i for i, lab in enumerate(labels)}
    items.sort(key=lambda it: (SPLITS.index(it.split), order[it.label], str(it.path or ""), it.cut or ()))
    train_noise = _training_noise(dirs, split_of, noise, percents)
    x, n_padded, n_trimmed = _decode(items, noise, pad=pad, progress=progress, desc=str(name))
    y = np.array([order[it.label] for it in items], dtype=np.int64)
    split_idx = np.array([SPLITS.index(it.split) for it in items])
    clip_speakers = np.array([speaker_id(it.path.name) if it.path is not None else "" for it in items], dtype=object)
    arrays, by_split = {}, {}
    for i, s in enumerate(SPLITS):
        sel = split_idx == i
        arrays[f"x_{s}"], arrays[f"y_{s}"] = x[sel], y[sel]
        by_split[s] = clip_speakers[sel].astype(str)

    speakers = {s: sorted({speaker_id(it.path.name) for it in items
                           if it.split == s and it.path is not None and "_nohash_" in it.path.name}) for s in SPLITS}
    info = {
        "source": str(root),
        "layout": ("speech_commands_v2 (official lists)" if is_v2 else
                   "test-set layout (_unknown_/_silence_ folders)" if test_layout else "word folders"),
        "split_rule": split_rule,
        "counts": {s: {lab: int(np.sum(arrays[f"y_{s}"] == order[lab])) for lab in labels} for s in SPLITS},
        "speakers": {**{s: len(v) for s, v in speakers.items()}, "total": len(set().union(*speakers.values()))},
        "clips": int(len(items)),
        "padded": n_padded,
        "trimmed": n_trimmed,
        "pad": pad,
        "unknown_words": sorted(unknown_words),
        "silence_source": (SILENCE if SILENCE in dirs else BACKGROUND) if use_silence else None,
        "seed": seed,
        "max_per_label": max_per_label,
    }
    overlap = set(speakers["train"]) & (set(speakers["val"]) | set(speakers["test"]))
    info["speaker_overlap"] = len(overlap)   # 0 for the hash split; the official v2 lists are disjoint too
    info["noise_clips"] = 0 if train_noise is None else int(len(train_noise))
    return KWSData(**arrays, labels=labels, name=str(name), info=info, noise=train_noise, speakers=by_split)


def _training_noise(dirs: dict[str, Path], split_of: Any, noise: list[np.ndarray],
                    percents: tuple[float, float, float]) -> np.ndarray | None:
    """Background noise for augmentation from the training split only: the ``_silence_`` clips whose
    split is "train", else 1 s cuts of the first ``percents[0]`` % of every ``_background_noise_``
    recording (the region :func:`_silence_cuts` draws training silence from)."""
    if SILENCE in dirs:
        clips = [fix_length(read_wav(f), CLIP_SAMPLES) for f in list_wavs(dirs[SILENCE]) if split_of(f) == "train"]
    elif BACKGROUND in dirs:
        recordings = noise or [read_wav(f) for f in list_wavs(dirs[BACKGROUND])]
        clips = []
        for rec in recordings:
            usable = rec[:int(percents[0] / 100.0 * len(rec))]
            clips += [usable[i:i + CLIP_SAMPLES] for i in range(0, len(usable) - CLIP_SAMPLES + 1, CLIP_SAMPLES)]
    else:
        return None
    return np.stack(clips).astype(np.float32) if clips else None


def check_splits(data: Any) -> None:
    """Fail early, and say what to do, when a split training needs (train, validation) is empty: which
    split, the clip counts, the speakers per split and the split rule (instead of a ``buffer_size must be
    greater than zero`` deep inside tf.data). Used by ``train.train_kws``."""
    sizes = {s: len(getattr(data, f"y_{s}")) for s in SPLITS}
    empty = [s for s in ("train", "val") if sizes[s] == 0]
    if not empty:
        return
    info = getattr(data, "info", None) or {}
    speakers = info.get("speakers")
    who = ("; speakers per split " + ", ".join(f"{k} {v}" for k, v in speakers.items())
           if isinstance(speakers, dict) else "")
    raise ValueError(
        f"dataset {getattr(data, 'name', '?')!r}: the {' and '.join(empty)} split{'s are' if len(empty) > 1 else ' is'} "
        f"empty (clips train/val/test = {sizes['train']}/{sizes['val']}/{sizes['test']}{who}); split rule: "
        f"{info.get('split_rule', 'unknown')}. Clips go to a split by a hash of their SPEAKER (the file-name prefix "
        "before '_nohash_'), so a folder with few speakers can put all of them in one split. Add clips from more "
        "speakers, change the percentages with load_kws(..., split=(train, val, test)), or build speaker-disjoint "
        "folds with data.speaker_folds(...).")


def speaker_folds(data: KWSData, folds: int = 5, *, val_fraction: float = 0.1, seed: int = 0) -> list[KWSData]:
    """Speaker-disjoint k-fold cross-validation splits of ``data`` (all three splits pooled).

    Speakers (``data.speakers``, from the Speech Commands file names) are shuffled with ``seed`` and dealt
    to ``folds`` folds, each to the fold with the fewest clips so far (largest speakers first), so the folds
    hold about the same number of clips. Fold ``i`` tests on its own speakers, validates on about
    ``val_fraction`` of the other speakers' clips (whole speakers, drawn with ``seed + 1 + i``) and trains
    on the rest: no speaker is in two splits of a fold, and every speaker is tested exactly once. Silence
    cuts without a speaker count as speakers of their own. ``noise`` is kept. Returns one
    :class:`KWSData` per fold (``info["fold"]``, ``info["split_rule"]``, ``info["counts"]``).
    Used by benchmarks/kws_real.py.
    """
    if data.speakers is None:
        raise ValueError("speaker_folds needs the speaker id of every clip (data.speakers); load the data with "
                         "load_kws, which reads them from the Speech Commands file names")
    folds = int(folds)
    if folds < 2:
        raise ValueError(f"folds must be >= 2, got {folds}")
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction!r}")
    x = np.concatenate([data.x_train, data.x_val, data.x_test])
    y = np.concatenate([data.y_train, data.y_val, data.y_test])
    spk = np.concatenate([np.asarray(data.speakers[s], dtype=object) for s in SPLITS])
    spk = np.array([s if s else f"_cut{i}" for i, s in enumerate(spk)]).astype(str)
    names, counts = np.unique(spk, return_counts=True)
    if len(names) < folds:
        raise ValueError(f"{len(names)} speakers cannot fill {folds} speaker-disjoint folds; use fewer folds")
    order = np.random.default_rng(seed).permutation(len(names))
    order = order[np.argsort(-counts[order], kind="stable")]    # largest speakers first, ties shuffled
    fold_of: dict[str, int] = {}
    load = np.zeros(folds, dtype=np.int64)
    for i in order:
        f = int(np.argmin(load))
        fold_of[str(names[i])] = f
        load[f] += counts[i]
    clip_fold = np.array([fold_of[s] for s in spk])
    size = dict(zip(names.tolist(), counts.tolist()))
    out = []
    for f in range(folds):
        rest = sorted(set(spk[clip_fold != f].tolist()))
        picked, total, target = set(), 0, val_fraction * sum(size[n] for n in rest)
        for i in np.random.default_rng(seed + 1 + f).permutation(len(rest)):
            if total >= target:
                break
            picked.add(rest[i])
            total += size[rest[i]]
        split = np.where(clip_fold == f, 2, np.where(np.isin(spk, list(picked)), 1, 0))
        arrays, speakers = {}, {}
        for i, s in enumerate(SPLITS):
            sel = split == i
            arrays[f"x_{s}"], arrays[f"y_{s}"] = x[sel], y[sel]
            speakers[s] = np.asarray([t if not t.startswith("_cut") else "" for t in spk[sel]])
        info = {**data.info, "fold": f, "folds": folds,
                "split_rule": f"speaker-disjoint {folds}-fold cross-validation (seed {seed}): fold {f} tests, "
                              f"~{val_fraction:.0%} of the other speakers validate",
                "counts": {s: {lab: int(np.sum(arrays[f"y_{s}"] == k)) for k, lab in enumerate(data.labels)}
                           for s in SPLITS},
                "speakers": {s: len(set(speakers[s]) - {""}) for s in SPLITS}}
        out.append(KWSData(**arrays, labels=list(data.labels), name=f"{data.name} fold {f}/{folds}", info=info,
                           noise=data.noise, speakers=speakers))
    return out


def _cap_label(items: list[_Item], label: str, caps: dict[str, int], rng: np.random.Generator) -> list[_Item]:
    """Keep at most ``caps[split]`` clips of ``label`` per split (a seeded, order-independent choice)."""
    out = [it for it in items if it.label != label]
    for s in SPLITS:
        group = sorted((it for it in items if it.label == label and it.split == s),
                       key=lambda it: (str(it.path or ""), it.cut or ()))
        if len(group) > caps[s]:
            keep = np.sort(rng.choice(len(group), size=caps[s], replace=False))
            group = [group[i] for i in keep]
        out += group
    return out


def _silence_cuts(noise: list[np.ndarray], counts: dict[str, int], percents: tuple[float, float, float],
                  rng: np.random.Generator) -> list[_Item]:
    """1 s ``_silence_`` cuts of the background-noise recordings at random levels.

    Each recording is divided in time into train/val/test regions by the split percentages, so no
    noise sample appears in two splits; the cut's RMS level is drawn in :data:`SILENCE_DBFS`.
    """
    items = []
    bounds = np.cumsum((0.0,) + percents) / 100.0
    for si, s in enumerate(SPLITS):
        usable = [(k, int(bounds[si] * len(n)), int(bounds[si + 1] * len(n))) for k, n in enumerate(noise)]
        usable = [u for u in usable if u[2] - u[1] >= CLIP_SAMPLES]
        if not usable:
            continue
        for _ in range(counts[s]):
            k, lo, hi = usable[int(rng.integers(len(usable)))]
            offset = int(rng.integers(lo, hi - CLIP_SAMPLES + 1))
            level = 10 ** (rng.uniform(*SILENCE_DBFS) / 20)
            items.append(_Item(SILENCE, s, cut=(k, offset, float(level))))
    return items


def _decode(items: list[_Item], noise: list[np.ndarray], *, pad: str, progress: bool,
            desc: str) -> tuple[np.ndarray, int, int]:
    from tqdm.auto import tqdm

    x = np.empty((len(items), CLIP_SAMPLES), dtype=np.float32)
    n_padded = n_trimmed = 0
    for i, it in enumerate(tqdm(items, desc=f"load {desc}", unit="clip", disable=not progress or len(items) < 2000,
                                leave=False)):
        if it.cut is not None:
            k, offset, level = it.cut
            cut = noise[k][offset:offset + CLIP_SAMPLES].astype(np.float64)
            rms = float(np.sqrt(np.mean(cut ** 2)))
            x[i] = np.clip(cut * (level / rms if rms > 0 else 0.0), -1.0, 1.0)
            continue
        clip = read_wav(it.path)
        n_padded += len(clip) < CLIP_SAMPLES
        n_trimmed += len(clip) > CLIP_SAMPLES
        x[i] = fix_length(clip, CLIP_SAMPLES, mode=pad)
    return x, int(n_padded), int(n_trimmed)
