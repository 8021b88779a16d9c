"""Preprocessing cost per 1 s clip: STFT (32x32), log-mel (49x40) and MFCC (49x10, 38x10) computed
eagerly, by a compiled tf.function per clip, by a tf.function on a batch (time / batch size) and by
librosa; plus the TF-vs-librosa parity of each pipeline on the same clips.

    .venv/bin/python benchmarks/preprocessing.py [--runs 200] [--warmup 20] [--batch-size 32]

Clips: real Speech Commands test clips from ../shared/data when present (developers and CI), else
deterministic noise. Numbers depend on the machine and its load: run it on an idle machine.
"""
from __future__ import annotations

import argparse
import os
import platform
import time

import labkit  # noqa: F401  (before TensorFlow)
import numpy as np

from labkit import config, features


def load_clips(count: int, seed: int = 0) -> tuple[np.ndarray, str]:
    """Up to ``count`` real 1 s clips (Speech Commands, else micro_speech), else seeded noise."""
    from labkit.data.audio import fix_length, read_wav

    root = config.shared_data_dir()
    if root is not None:
        speech = root / "speech_commands_test_v0.02_part_a"
        files = sorted(speech.glob("[a-z]*/*.wav")) if speech.is_dir() else []
        if not files:
            files = sorted((root / "micro_speech_testdata").glob("*_1000ms.wav"))
        if files:
            rng = np.random.default_rng(seed)
            picked = [files[i] for i in sorted(rng.choice(len(files), min(count, len(files)), replace=False))]
            return np.stack([fix_length(read_wav(f)) for f in picked]), f"{len(picked)} real clips from {root}"
    noise = 0.1 * np.random.default_rng(seed).standard_normal((count, 16000))
    return noise.astype(np.float32), f"{count} noise clips (no shared data)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200, help="timed runs per measurement (median reported)")
    parser.add_argument("--warmup", type=int, default=20, help="untimed runs before timing")
    parser.add_argument("--batch-size", type=int, default=32, help="clips per call in the 'batched' mode")
    parser.add_argument("--presets", default="stft,logmel,mfcc_a,mfcc_b")
    parser.add_argument("--max-seconds", type=float, default=None,
                        help="cap on the timed seconds of one measurement (default: no cap, all runs)")
    args = parser.parse_args()

    clips, source = load_clips(args.batch_size)
    print(f"clips: {source}; {os.cpu_count()} CPUs, {platform.processor() or platform.machine()}")
    print(f"librosa warm-up (numba): {features.warmup():.1f} s (excluded from timings)")
    presets = [p.strip() for p in args.presets.split(",") if p.strip()]
    for name in presets:
        print(f"  {features.describe(name)}")

    start = time.perf_counter()
    table = features.cost_table(clips, presets, runs=args.runs, warmup=args.warmup, batch_size=args.batch_size,
                                max_seconds=args.max_seconds)
    runs = sorted(set(table["runs"]))
    print(f"\nPer-clip preprocessing cost in ms (median of {runs[0]}-{runs[-1]} runs after {args.warmup} "
          f"warm-up runs; batched = batch of {args.batch_size}; {time.perf_counter() - start:.0f} s):")
    pivot = table.pivot_table(index=["pipeline", "shape"], columns="mode", values="ms_per_clip", sort=False)
    print(pivot[list(features.MODES)].round(3).to_string())

    print(f"\nParity TF vs librosa on the same {len(clips)} clips (max |diff|, tolerance PARITY_ATOL):")
    for name in presets:
        cfg = features.get(name)
        p = features.parity(clips, cfg)
        print(f"  {name:7s} max {p['max_abs_diff']:.2e}  mean {p['mean_abs_diff']:.2e}  "
              f"(values {p['feature_min']:.1f}..{p['feature_max']:.1f}; tolerance {features.PARITY_ATOL[cfg.kind]:g})")


if __name__ == "__main__":
    main()
