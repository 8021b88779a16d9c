"""Every figure of the course, the plot style and the one way figures are saved (``save_fig``).

Figure functions only draw what the library computed, grouped by notebook; ``labkit.session.setup`` applies the style.
"""
from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from . import config, estimate, search, tflite
from .estimate import CORTEX_M4, McuModel
from .io import atomic_write_bytes
from .search import ConstraintPreset
from .tasks import Task


def use_style() -> None:
    """The kit's plot style (readable in the HTML report). Called by ``session.setup`` (every notebook)."""
    plt.rcParams.update({
        "figure.figsize": (7.5, 4.0), "figure.dpi": 100, "savefig.dpi": 120,
        "axes.grid": True, "grid.alpha": 0.3, "axes.spines.top": False, "axes.spines.right": False,
        "font.size": 10,
    })


def figures_dir() -> Path:
    """``reports/figures`` (or under ``$LABKIT_REPORTS``)."""
    path = config.reports_dir() / "figures"
    path.mkdir(parents=True, exist_ok=True)
    return path


def figure_path(name: str) -> Path:
    """Where :func:`save_fig` writes figure ``name``: ``reports/figures/<name>.png``. Used by the tests."""
    return figures_dir() / f"{name}.png"


def figure_caption(fig: "matplotlib.figure.Figure") -> str:
    """A caption for ``fig`` from its own titles: the figure title, else the axes titles (first three)."""
    suptitle = fig.get_suptitle().strip()
    if suptitle:
        return suptitle
    titles = [t for ax in fig.axes if (t := ax.get_title().strip())]
    return " · ".join(titles[:3]) + (" …" if len(titles) > 3 else "")


def save_fig(fig: "matplotlib.figure.Figure", name: str, *, show: bool = True, caption: str | None = None) -> None:
    """Save ``fig`` as ``reports/figures/<name>.png`` (atomically) and show it inline. Used by every notebook.

    The PNG carries a caption (``caption``, else the figure's own titles) and the notebook that made it
    in its metadata; the report's index shows both under the thumbnail. Returns nothing, so that a
    call ending a cell leaves no stray ``Out[n]:`` in the notebook (the file is :func:`figure_path`).
    """
    import os

    buf = io.BytesIO()
    text = caption if caption is not None else figure_caption(fig)
    fig.savefig(buf, format="png", bbox_inches="tight",
                metadata={"Title": text, "Source": os.environ.get("LABKIT_NOTEBOOK", "")})
    atomic_write_bytes(figure_path(name), buf.getvalue())
    if show:
        try:
            from IPython.display import display

            from IPython import get_ipython

            if get_ipython() is not None:
                display(fig)
        except ImportError:  # pragma: no cover
            pass
    plt.close(fig)


def twin_series(frame, columns: list[str], *, title: str = "") -> tuple["matplotlib.figure.Figure", list]:
    """Plot two columns of a time-indexed frame on twin y axes (e.g. temperature and humidity). Used by notebook 00."""
    if len(columns) != 2:
        raise ValueError("twin_series plots exactly two columns")
    fig, ax = plt.subplots(figsize=(8, 3.2))
    ax2 = ax.twinx()
    ax.plot(frame.index, frame[columns[0]], color="tab:red", lw=1.2, label=columns[0])
    ax2.plot(frame.index, frame[columns[1]], color="tab:blue", lw=1.2, label=columns[1])
    ax.set_ylabel(columns[0], color="tab:red")
    ax2.set_ylabel(columns[1], color="tab:blue")
    ax2.grid(False)
    ax.set_title(title)
    fig.autofmt_xdate()
    return fig, [ax, ax2]


# --------------------------------------------------------------------------------------------
# Audio views (waveform / FFT / spectrogram / log-mel / MFCC) and preprocessing cost.
# Used by notebook 01; they take arrays from labkit.features and never compute features.
# --------------------------------------------------------------------------------------------
AUDIO_PANELS: tuple[str, ...] = ("waveform", "fft", "spectrogram", "logmel", "mfcc")
"""The panels :func:`audio_views` can draw, left to right."""


def _audio_panel(ax, v, panel: str, title: str) -> None:
    """Draw one panel of one clip (few fixed ticks: tick and text layout dominate drawing time)."""
    cfg, sr = v.cfg, v.sample_rate
    duration = cfg.frame_step * (len(v.spectrogram_db) - 1) / sr + cfg.frame_length / sr
    if panel == "waveform":
        ax.plot(np.arange(len(v.waveform)) / sr, v.waveform, lw=0.5)
        ax.set(title=f"{title}: waveform", xlabel="time (s)", ylim=(-1.0, 1.0), yticks=[-1, 0, 1],
               xticks=np.linspace(0, len(v.waveform) / sr, 3).round(2))
        return
    if panel == "fft":
        ax.plot(v.fft_freqs / 1000.0, v.fft_db, lw=0.5)
        ax.set(title="FFT magnitude (dB)", xlabel="frequency (kHz)", ylim=(-80, 2), yticks=[-80, -40, 0],
               xticks=np.linspace(0, sr / 2000.0, 5))
        return
    if panel == "spectrogram":
        img, name, (lo, hi), ylabel, kw = v.spectrogram_db, "spectrogram (dB, -80..0)", (0, sr / 2000.0), "kHz", \
            dict(vmin=-80, vmax=0, cmap="magma")
        ticks = np.linspace(lo, hi, 3)
    elif panel == "logmel":
        n = v.log_mel.shape[1]
        img, name, (lo, hi), ylabel, kw = v.log_mel, f"log-mel ({n} bins)", (0, n), "mel bin", dict(cmap="magma")
        ticks = np.linspace(lo, hi, 3)
    elif panel == "mfcc":
        n = v.mfcc.shape[1]
        # Colour range from c1.. : c0 (the frame's overall log-energy) is an order of magnitude larger and
        # would wash out the others, so its row saturates at the ends of the colour bar.
        lim = float(np.abs(v.mfcc[:, 1:] if n > 1 else v.mfcc).max()) or 1.0
        img, name, (lo, hi), ylabel, kw = v.mfcc, f"MFCC ({n} coeff.; c0 off scale)", (-0.5, n - 0.5), \
            "coefficient", dict(vmin=-lim, vmax=lim, cmap="coolwarm")
        ticks = [0, (n - 1) // 2, n - 1]
    else:
        raise ValueError(f"unknown panel {panel!r}; choose from {AUDIO_PANELS}")
    label = f"{title}: {name}" if ax.get_subplotspec().colspan.start == 0 else name  # before a colour bar
    im = ax.imshow(img.T, origin="lower", aspect="auto", extent=(0, duration, lo, hi), interpolation="nearest", **kw)
    if panel == "mfcc":  # the one panel whose colours are not self-explanatory dB: a colour bar of c1..
        bar = ax.figure.colorbar(im, ax=ax, fraction=0.08, pad=0.02)
        bar.ax.tick_params(labelsize=7)
    ax.set(title=label, xlabel="time (s)", ylabel=ylabel, yticks=np.round(ticks, 1),
           xticks=np.linspace(0, duration, 3).round(2))
    ax.grid(False)


def audio_views(views: "dict[str, object]", *, panels: "tuple[str, ...]" = AUDIO_PANELS, width: float = 15.0,
                row_height: float = 2.1) -> "plt.Figure":
    """One row per clip (``{title: features.AudioViews}``), panels side by side: by default waveform,
    whole-clip FFT magnitude, linear spectrogram, log-mel spectrogram and MFCC (see
    :data:`AUDIO_PANELS`). Used by notebook 01."""
    if not views:
        raise ValueError("audio_views needs at least one clip: {title: features.views(clip)}")
    n = len(views)
    fig, axes = plt.subplots(n, len(panels), figsize=(width * len(panels) / 5, row_height * n), squeeze=False)
    # Fixed margins instead of tight_layout (which costs a full extra draw of up to ~50 axes).
    fig.subplots_adjust(left=0.2 / len(panels), right=0.99, wspace=0.32, top=1 - 0.35 / (row_height * n),
                        bottom=0.45 / (row_height * n), hspace=0.9)
    for row, (title, v) in zip(axes, views.items()):
        for ax, panel in zip(row, panels):
            _audio_panel(ax, v, panel, title)
    fig.labkit_panel_axes = axes  # the panels without their colour bars, row by row (audio_gallery cuts rows)
    return fig


def audio_gallery(views: "dict[str, object]", fig: "plt.Figure | None" = None, *, dpi: int = 72) -> "object":
    """An HTML table: for each clip an audio player next to its row of :func:`audio_views` panels
    (``fig``, drawn once and cut into rows; made here if not given). Plain HTML with embedded WAV and
    PNG, so it also plays in the static report. Used by notebook 01."""
    import base64

    from IPython.display import HTML, Audio

    own = fig is None
    fig = audio_views(views) if own else fig
    saved_dpi = fig.dpi
    fig.set_dpi(dpi)
    try:
        fig.canvas.draw()
        pixels = np.asarray(fig.canvas.buffer_rgba())
        renderer = fig.canvas.get_renderer()
        height = pixels.shape[0]
        tops = []
        grid = getattr(fig, "labkit_panel_axes", None)
        for row in (grid if grid is not None else np.asarray(fig.axes).reshape(len(views), -1)):
            boxes = [ax.get_tightbbox(renderer) for ax in row]
            tops.append((max(b.y1 for b in boxes), min(b.y0 for b in boxes)))
    finally:
        fig.set_dpi(saved_dpi)
        if own:
            plt.close(fig)
    rows = []
    for (title, v), (top, bottom) in zip(views.items(), tops):
        crop = pixels[max(0, int(height - top) - 2): min(height, int(height - bottom) + 2)]
        buf = io.BytesIO()
        plt.imsave(buf, crop, format="png")
        png = base64.b64encode(buf.getvalue()).decode("ascii")
        player = Audio(v.waveform, rate=v.sample_rate)._repr_html_()
        rows.append(f"<tr><td style='vertical-align:middle;text-align:left'><b>{title}</b><br>{player}</td>"
                    f"<td><img style='max-width:100%' src='data:image/png;base64,{png}'></td></tr>")
    return HTML("<table>" + "".join(rows) + "</table>")


def mel_filters(matrix: "object", sample_rate: int = 16000, *, title: str = "") -> "plt.Figure":
    """The triangular mel filters (``features.mel_matrix(cfg)``, shape ``(bins, mel_bins)``) over
    frequency: narrow and dense at low frequencies, wide and sparse at high ones. Used by notebook 01."""
    matrix = np.asarray(matrix)
    freqs = np.linspace(0.0, sample_rate / 2000.0, matrix.shape[0])
    fig, ax = plt.subplots(figsize=(7.5, 2.6))
    ax.plot(freqs, matrix, lw=0.8)
    ax.set(xlabel="frequency (kHz)", ylabel="weight",
           title=title or f"{matrix.shape[1]} mel filters (each line is one band)")
    fig.tight_layout()
    return fig


def cost_bars(table: "object", *, value: str = "ms_per_clip", log: bool = True) -> "plt.Figure":
    """Grouped bar chart of ``features.cost_table`` rows: one group per pipeline, one bar per mode.
    Used by notebook 01."""
    pivot = table.pivot_table(index="pipeline", columns="mode", values=value, sort=False)
    fig, ax = plt.subplots(figsize=(7.5, 3.6))
    width = 0.8 / max(1, len(pivot.columns))
    x = np.arange(len(pivot.index))
    for i, mode in enumerate(pivot.columns):
        bars = ax.bar(x + (i - (len(pivot.columns) - 1) / 2) * width, pivot[mode].to_numpy(), width, label=mode)
        ax.bar_label(bars, fmt="%.2g", fontsize=7, padding=1)
    ax.set_xticks(x, [f"{p}" for p in pivot.index])
    ax.set(ylabel=f"{value.replace('_', ' ')} (median)", title="Preprocessing cost per 1 s clip")
    if log:
        ax.set_yscale("log")
        ax.set_ylim(top=float(np.nanmax(pivot.to_numpy())) * 10)  # room for the legend above the bars
    ax.legend(ncol=len(pivot.columns), fontsize=8, loc="upper left")
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- training (notebooks 03-04)
def training_curves(histories: "dict[str, dict[str, list[float]]]", *, metric: str = "accuracy",
                    title: str = "", ncols: int = 4) -> "matplotlib.figure.Figure":
    """One small panel per run: ``metric`` per epoch for training (solid) and validation (dashed),
    with the best validation epoch marked. ``histories`` maps a run name to a Keras-style history
    (``TrainResult.history``). Used by notebooks 03 and 04."""
    n = len(histories)
    if n == 0:
        raise ValueError("training_curves needs at least one history")
    ncols = min(ncols, n)
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.2 * ncols, 2.6 * nrows), sharey=True, squeeze=False)
    for ax, (name, hist) in zip(axes.flat, histories.items()):
        if metric not in hist:
            raise KeyError(f"history of {name!r} has no {metric!r}; it has {sorted(hist)}")
        epochs = np.arange(1, len(hist[metric]) + 1)
        ax.plot(epochs, hist[metric], color="tab:blue", lw=1.4, label="train")
        val = hist.get(f"val_{metric}")
        if val is not None:
            ax.plot(epochs, val, color="tab:orange", lw=1.4, ls="--", label="validation")
            best = int(np.argmax(val) if metric in ("accuracy", "acc") else np.argmin(val))
            ax.plot(epochs[best], val[best], "o", color="tab:orange", ms=5)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("epoch")
    for ax in axes[:, 0]:
        ax.set_ylabel(metric)
    for ax in list(axes.flat)[n:]:
        ax.set_visible(False)
    axes[0, 0].legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def confusion_matrix(cm, labels: "list[str]", *, title: str = "", normalize: bool = True
                     ) -> "matplotlib.figure.Figure":
    """A confusion matrix (rows = true label, columns = predicted), row-normalised by default, with
    the counts written in each cell. Used by notebooks 03 and 05."""
    cm = np.asarray(cm, dtype=float)
    shown = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1) if normalize else cm
    size = max(4.0, 0.45 * len(labels) + 1.5)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    im = ax.imshow(shown, cmap="Blues", vmin=0, vmax=1 if normalize else None)
    ax.grid(False)
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            if cm[i, j]:
                ax.text(j, i, f"{int(cm[i, j])}", ha="center", va="center", fontsize=7,
                        color="white" if shown[i, j] > 0.6 * (shown.max() or 1) else "black")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="fraction of true label" if normalize else "count")
    ax.set_title(title)
    fig.tight_layout()
    return fig


def forecast_vs_truth(truth, predictions: "dict[str, object]", target_names: "list[str]", *, index=None,
                      step: int = 0, title: str = "") -> "matplotlib.figure.Figure":
    """Truth and each model's forecast ``step`` steps ahead (0 = the next step), one panel per target.

    ``truth`` and each prediction are ``(N, steps, targets)`` arrays in real units over consecutive
    windows; ``index`` (e.g. timestamps) labels the x axis. Used by notebook 04.
    """
    truth = np.asarray(truth)
    x = np.arange(len(truth)) if index is None else index
    fig, axes = plt.subplots(len(target_names), 1, figsize=(10, 2.6 * len(target_names)), sharex=True)
    axes = np.atleast_1d(axes)
    for j, (ax, name) in enumerate(zip(axes, target_names)):
        ax.plot(x, truth[:, step, j], color="black", lw=1.8, label="truth")
        for name_p, pred in predictions.items():
            ax.plot(x, np.asarray(pred)[:, step, j], lw=1.1, alpha=0.85,
                    ls=":" if name_p == "persistence" else "-", label=name_p)
        ax.set_ylabel(name)
    axes[0].legend(fontsize=8, ncol=len(predictions) + 1, loc="upper left")
    axes[-1].set_xlabel("time" if index is not None else "window")
    if index is not None:
        fig.autofmt_xdate()
    fig.suptitle(title or f"forecast {step + 1} step(s) ahead vs truth")
    fig.tight_layout()
    return fig


def forecast_step_errors(metrics: "dict[str, dict]", *, targets: "tuple[str, ...]" = ("T", "RH"),
                         units: "tuple[str, ...]" = ("degC", "%RH"), step_label: str = "step",
                         title: str = "") -> "matplotlib.figure.Figure":
    """MAE per forecast step for each model (``metrics[name]["T_mae_steps"]`` ...) with persistence
    (``"persist_T_mae_steps"`` of the first model) dashed, one panel per target. Used by notebook 04."""
    fig, axes = plt.subplots(1, len(targets), figsize=(5.2 * len(targets), 3.4))
    axes = [axes] if len(targets) == 1 else list(axes)
    first = next(iter(metrics.values()))
    for ax, t, unit in zip(axes, targets, units):
        persist = first[f"persist_{t}_mae_steps"]
        steps = range(1, len(persist) + 1)
        ax.plot(steps, persist, color="black", ls="--", marker="o", ms=3, label="persistence")
        for name, m in metrics.items():
            ax.plot(steps, m[f"{t}_mae_steps"], marker="o", ms=3, label=name)
        ax.set_xlabel(step_label)
        ax.set_ylabel(f"{t} MAE ({unit})")
        ax.set_xticks(list(steps))
    axes[0].legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- conversion (notebook 05)
def latency_breakdown(frames: "object", *, title: str = "Latency per prediction (LiteRT, batch 1, 1 thread)"
                      ) -> "matplotlib.figure.Figure":
    """Stacked horizontal bars of ``tasks.Task.latency_breakdown`` rows: one bar per (model, mode), one
    segment per stage (preprocessing, inference, post-processing; medians in ms), with the end-to-end
    ``total`` written at the end of each bar. ``frames`` is one DataFrame or ``{panel title: DataFrame}``
    (one panel each, with its own time axis, e.g. keyword spotting vs forecasting). Used by notebook 05."""
    panels = dict(frames) if isinstance(frames, dict) else {"": frames}
    pivots = {}
    for name, frame in panels.items():
        pivots[name] = frame.pivot_table(index=["model", "mode"], columns="stage", values="ms", sort=False)
    heights = [0.38 * len(p) + 0.9 for p in pivots.values()]
    fig, axes = plt.subplots(len(pivots), 1, figsize=(8.5, sum(heights) + 0.6), squeeze=False,
                             gridspec_kw={"height_ratios": heights})
    colors = {"preprocessing": "tab:orange", "inference": "tab:blue", "postprocessing": "tab:green"}
    for ax, (name, pivot) in zip(axes[:, 0], pivots.items()):
        labels = [f"{m} · {md}" if md else str(m) for m, md in pivot.index]
        y = list(range(len(pivot)))[::-1]
        left = [0.0] * len(pivot)
        for stage in [s for s in colors if s in pivot.columns]:
            vals = pivot[stage].fillna(0.0).to_list()
            ax.barh(y, vals, left=left, color=colors[stage], label=stage, height=0.7)
            left = [a + b for a, b in zip(left, vals)]
        totals = pivot["total"].fillna(0.0).to_list() if "total" in pivot.columns else []
        right = max(left + totals + [0.0]) or 1.0
        for yi, end, tot in zip(y, left, totals):  # each label right of its bar, inside the axes
            ax.text(end + 0.01 * right, yi, f"total {tot:.3g} ms", va="center", fontsize=7)
        ax.set_yticks(y, labels, fontsize=8)
        ax.set_xlim(0, right * 1.45)  # room for the longest "total ... ms" label
        ax.set_title(name, fontsize=9, loc="left")
    axes[-1, 0].set_xlabel("median ms per prediction")
    handles, names = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, names, loc="upper center", ncol=len(names), fontsize=8, frameon=False,
               bbox_to_anchor=(0.5, 0.955))
    fig.suptitle(title)
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    return fig


# --------------------------------------------------------------------------- estimation (notebook 02)
def plot_macs(profiles: Mapping[str, pd.DataFrame], *, ncols: int = 2) -> "matplotlib.figure.Figure":
    """Horizontal bars of MACs per layer (layers with MACs only, from ``estimate.profile`` tables), one panel per
    model. Used by notebook 02."""
    names = list(profiles)
    nrows = math.ceil(len(names) / ncols)
    heights = [max(1, int((profiles[n]["macs"].iloc[:-1] > 0).sum())) for n in names]
    fig, axes = plt.subplots(nrows, ncols, figsize=(12, 0.9 + 0.28 * max(heights) * nrows + 0.6 * nrows),
                             squeeze=False)
    for ax, name in zip(axes.flat, names):
        df = profiles[name]
        df = df[(df["name"] != "total") & (df["macs"] > 0)]
        ax.barh(df["name"][::-1], df["macs"][::-1], color="tab:blue")
        total = int(profiles[name]["macs"].iloc[-1])
        ax.set_title(f"{name}: {total:,} MACs", fontsize=10)
        ax.set_xlabel("MACs")
        ax.ticklabel_format(axis="x", style="sci", scilimits=(0, 3))
    for ax in list(axes.flat)[len(names):]:
        ax.set_visible(False)
    fig.tight_layout()
    return fig


def plot_memory(model, dtype: str = "int8", *, align: int = estimate.TFLM_ALIGNMENT) -> "matplotlib.figure.Figure":
    """Live activation bytes while each op runs (``estimate.memory_timeline``), peak highlighted. Used by
    notebook 02."""
    tl = estimate.memory_timeline(model, dtype, align=align)
    peak = tl["live_bytes"].max()
    fig, ax = plt.subplots(figsize=(7.5, 3.2))
    colors = ["tab:red" if v == peak else "tab:gray" for v in tl["live_bytes"]]
    ax.bar(tl["op"], tl["live_bytes"], color=colors)
    ax.set_ylabel(f"live bytes ({dtype})")
    ax.set_title(f"{model.name}: peak {peak:,} B of activations ({dtype}, batch 1)")
    from matplotlib.patches import Patch
    ax.legend(handles=[Patch(color="tab:red", label="ops at the peak"), Patch(color="tab:gray", label="other ops")],
              fontsize=8)
    ax.tick_params(axis="x", rotation=60)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- quantization (notebook 06)
_METRIC_LABELS = {"top1": "test top-1 accuracy", "T_mae": "T MAE (degC)", "RH_mae": "RH MAE (%RH)"}


def plot_bit_sweep(frames: pd.DataFrame | Mapping[str, pd.DataFrame], metrics: str | Sequence[str] = "top1",
                   *, title: str = "", reference: Mapping[str, float] | None = None) -> "matplotlib.figure.Figure":
    """The course's figure: ``metric`` against bit width (2..8), one line per method (PTQ W, PTQ W+A,
    QAT W+A ...), the float model as a dashed line, ``reference`` (forecasting: persistence's MAE per metric)
    dotted; one panel per model (``frames`` maps a model name to its rows from
    ``experiments.quantization.ptq_sweep`` + ``qat_sweep``) and per metric. Used by notebook 06."""
    if isinstance(frames, pd.DataFrame):
        frames = {str(frames["model"].iloc[0]) if "model" in frames else "": frames}
    metrics = [metrics] if isinstance(metrics, str) else list(metrics)
    panels = [(n, f, m) for n, f in frames.items() for m in metrics]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels), 3.6), squeeze=False)
    styles = {"PTQ W": ("tab:blue", "o"), "PTQ W (per-tensor)": ("tab:cyan", "v"), "PTQ W+A": ("tab:orange", "s"),
              "PTQ W+A (clipped)": ("tab:brown", "D"),
              "QAT W+A": ("tab:green", "^")}
    for ax, (name, frame, metric) in zip(axes[0], panels):
        if metric not in frame:
            raise ValueError(f"no column {metric!r} in the sweep of {name!r}; columns: {list(frame.columns)}")
        fp = frame[frame["method"] == "FP32"]
        bit_rows = frame[frame["method"] != "FP32"]
        for method, rows in bit_rows.groupby("method", sort=False):
            rows = rows.sort_values("bits")
            color, marker = styles.get(method, (None, "o"))
            ax.plot(rows["bits"], rows[metric], marker=marker, color=color, lw=1.5, label=method)
        if len(fp):
            ax.axhline(float(fp[metric].iloc[0]), color="black", ls="--", lw=1, label="FP32")
        if reference and metric in reference:
            ax.axhline(float(reference[metric]), color="gray", ls=":", lw=1.5, label="persistence")
        ax.set_xticks(sorted(bit_rows["bits"].unique()))
        ax.set(xlabel="bit width (W: weights; W+A: weights and activations)", ylabel=_METRIC_LABELS.get(metric, metric),
               title=f"{name}: {_METRIC_LABELS.get(metric, metric).split(' (')[0]}")
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- pruning (notebook 07)
_STYLES = {  # (method, training) -> (label, marker, linestyle)
    ("sparse", "one-shot"): ("sparse, one-shot", "o", "--"),
    ("sparse", "fine-tuned"): ("sparse, fine-tuned", "o", "-"),
    ("structured", "one-shot"): ("structured, one-shot", "s", "--"),
    ("structured", "fine-tuned"): ("structured, fine-tuned", "s", "-"),
    ("alpha", "retrained"): ("width multiplier, retrained", "^", ":"),
}


def plot_tradeoffs(table: pd.DataFrame, task: Task, *, mcu: McuModel = CORTEX_M4,
                   title: str = "") -> "matplotlib.figure.Figure":
    """Metric vs non-zero parameters, vs MACs, vs measured CPU latency (int8 TFLite) and vs estimated
    MCU latency, one line per (method, training), the baseline as a star (``experiments.pruning.sweep``
    rows). Used by notebook 07."""
    table = table[table["task"] == task.name]
    axes_spec = [("nonzero_params", "non-zero parameters", True), ("macs", "MACs per inference", True),
                 ("cpu_ms", "CPU latency, int8 TFLite (ms, measured)", False),
                 ("mcu_ms_est", f"MCU latency (ms, ESTIMATE: {mcu.cycles_per_mac:.1f} cycles/MAC "
                                f"@ {mcu.clock_hz / 1e6:.0f} MHz)", False)]
    fig, axes = plt.subplots(1, 4, figsize=(17, 3.9), sharey=True)
    base = table[table["method"] == "baseline"].iloc[0]
    for ax, (col, label, log) in zip(axes, axes_spec):
        for (method, training), (name, marker, ls) in _STYLES.items():
            part = table[(table["method"] == method) & (table["training"] == training)].sort_values(col)
            if len(part):
                ax.plot(part[col], part[task.metric], marker=marker, ls=ls, lw=1.3, ms=5, label=name)
        ax.plot([base[col]], [base[task.metric]], "k*", ms=12, label="baseline")
        ax.set_xlabel(label, fontsize=9)
        if log:
            ax.set_xscale("log")
    axes[0].set_ylabel(task.metric_label + (" (higher is better)" if task.higher_is_better else
                                            " (lower is better)"))
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", ncol=len(labels), fontsize=9, frameon=False,
               bbox_to_anchor=(0.5, 0.0))  # below the panels, never over the data
    fig.suptitle(title or f"{task.name}: {task.model_name} pruned (Keras float metric)")
    fig.tight_layout()
    return fig


def plot_sizes(table: pd.DataFrame, task: Task) -> "matplotlib.figure.Figure":
    """.tflite size and zlib-compressed size (float32 and int8) of the fine-tuned sparse models against
    their sparsity: the raw file does not shrink, the compressed one does. Used by notebook 07."""
    t = table[(table["task"] == task.name) & (table["method"].isin(["baseline", "sparse"]))
              & (table["training"] != "one-shot")].copy()
    t["sparsity"] = np.where(t["method"] == "baseline", 0.0, t["level"])
    t = t.sort_values("sparsity")
    fig, ax = plt.subplots(figsize=(7, 3.8))
    for prefix, color in (("fp32", "tab:blue"), ("int8", "tab:orange")):
        ax.plot(t["sparsity"], t[f"{prefix}_kb"], color=color, ls="--", marker="o", label=f"{prefix} .tflite")
        ax.plot(t["sparsity"], t[f"{prefix}_zlib_kb"], color=color, marker="o", label=f"{prefix} zlib -9")
    ax.set(xlabel="target sparsity of the pruned kernels (depthwise and output kernels stay dense)", ylabel="kB",
           title=f"{task.name}: {task.model_name}, file size vs sparsity (fine-tuned)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_norms(frame: pd.DataFrame, task: Task) -> "matplotlib.figure.Figure":
    """Metric of one-shot channel pruning vs kept width, one line per ranking norm
    (``experiments.pruning.compare_norms``). Used by notebook 07."""
    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    for norm, part in frame.groupby("norm", sort=False):
        part = part.sort_values("keep_width")
        ax.plot(part["keep_width"], part[task.metric], marker="o", label=norm)
    ax.set(xlabel="fraction of channels kept", ylabel=task.metric_label,
           title=f"{task.name}: filter ranking norm, one-shot channel pruning")
    ax.legend(title="norm")
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- trade-offs (notebook 08)
_PANELS: dict[str, list[tuple[str, str]]] = {
    "kws": [("size_kb", "top1"), ("inference_ms", "top1"), ("total_ms", "top1")],
    "forecast": [("size_kb", "T_mae"), ("size_kb", "RH_mae"), ("inference_ms", "T_mae")],
}
_LABELS = {"top1": "test top-1 (.tflite)", "T_mae": "test T MAE (°C)", "RH_mae": "test RH MAE (%RH)",
           "size_kb": "zlib-compressed .tflite (kB)", "inference_ms": "inference latency (ms, LiteRT)",
           "total_ms": "total latency (ms: features + inference + argmax)"}
_SENSE = {"top1": "max", "T_mae": "min", "RH_mae": "min", "size_kb": "min", "inference_ms": "min", "total_ms": "min"}


def _bounds(preset: ConstraintPreset, metric: str) -> tuple[float, float] | None:
    """The feasible interval of ``metric`` under ``preset`` (None if the preset does not constrain it)."""
    lo, hi, found = -math.inf, math.inf, False
    for c in preset.constraints:
        if c.metric == metric:
            found = True
            lo, hi = (lo, min(hi, c.limit)) if c.op == "<" else (max(lo, c.limit), hi)
    return (lo, hi) if found else None


def _fitted_range(values: np.ndarray, limits: Sequence[float]) -> tuple[list[float], list[float]]:
    """Split preset ``limits`` into those near the data (within one data span of it: the axis extends to show
    them) and those far from it (the axis stays fitted to the data; the limit is named at the edge)."""
    a, b = float(np.nanmin(values)), float(np.nanmax(values))
    span = max(b - a, 0.1 * abs(b), 1e-9)
    near = [v for v in limits if a - span <= v <= b + span]
    return near, [v for v in limits if v not in near]


def plot_fronts(trials: pd.DataFrame, task: str, *, panels: Sequence[tuple[str, str]] | None = None,
                presets: Iterable[ConstraintPreset] | None = None, reference: Mapping[str, float] | None = None,
                title: str = "") -> "matplotlib.figure.Figure":
    """Every trial (colour = model, marker = conversion mode), the Pareto front of each panel's two
    objectives (line) and each constraint preset's feasible region (shaded box, named in the legend; a preset
    that bounds only one of the two axes spans the other). Axes are fitted to the data: a limit far outside
    it (a latency limit every trial meets by orders of magnitude) is not drawn to scale but named at the
    panel's edge. ``reference`` (forecasting: ``search.persistence_reference``) is drawn as a star and a dotted
    line; trials with ``beats_persistence`` False are hollow and never on the front. Used by notebook 08."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch, Rectangle
    from matplotlib.ticker import MaxNLocator

    if task not in search.TASKS:
        raise ValueError(f"unknown task {task!r}; choose one of {search.TASKS}")
    panels = list(panels or _PANELS[task])
    presets = list(presets if presets is not None else search.presets_for(task))
    fig, axes = plt.subplots(1, len(panels), figsize=(4.8 * len(panels), 4.2), squeeze=False)
    models = sorted(trials["model"].unique()) if len(trials) else []
    colors = {m: plt.get_cmap("tab10")(i % 10) for i, m in enumerate(models)}
    marks = {"fp32": "o", "fp16": "D", "int8_w": "s", "int8_wa": "^"}
    box_colors = {p.name: plt.get_cmap("Set2")(i % 8) for i, p in enumerate(presets)}
    beats = (trials["beats_persistence"].astype(bool) if "beats_persistence" in trials.columns
             else pd.Series(True, index=trials.index))
    ref = dict(reference or {})
    for ax, (x, y) in zip(axes[0], panels):
        data = trials.dropna(subset=[x, y]) if len(trials) else trials
        for (m, mode), part in data.groupby(["model", "mode"]) if len(data) else []:
            good = beats.loc[part.index]
            for ok, sub in ((True, part[good]), (False, part[~good])):
                ax.scatter(sub[x], sub[y], marker=marks.get(mode, "o"), s=36, alpha=0.85, linewidth=1.0,
                           facecolor=colors[m] if ok else "none", edgecolor="white" if ok else colors[m], zorder=3)
        has_ref = all(k in ref and ref[k] == ref[k] for k in (x, y))
        if len(data):
            pool = data[beats.loc[data.index]][[x, y]]
            if has_ref:
                pool = pd.concat([pd.DataFrame([{x: ref[x], y: ref[y]}]), pool], ignore_index=True)
            front = pool[search.pareto_mask(pool, {x: "min", y: _SENSE[y]})].sort_values(x)
            ax.step(front[x], front[y], where="post", color="black", lw=1.2, zorder=2)
            ax.scatter(front[x], front[y], facecolor="none", edgecolor="black", s=90, lw=1.0, zorder=4)
            xs = data[x].to_numpy(float)
            if x.endswith("_kb") and xs.min() > 0 and xs.max() / xs.min() > 20 and not has_ref:
                ax.set_xscale("log")
        if y in ref and ref[y] == ref[y]:
            ax.axhline(ref[y], color="black", ls=":", lw=1.0, zorder=2)
            if has_ref:
                ax.scatter([ref[x]], [ref[y]], marker="*", s=160, color="black", zorder=5)
        ax.set_xlabel(_LABELS.get(x, x))
        ax.set_ylabel(_LABELS.get(y, y))
        xs = np.concatenate([data[x].to_numpy(float), [ref[x]] if has_ref else []]) if len(data) else np.array([1.0])
        ys = np.concatenate([data[y].to_numpy(float), [ref[y]] if y in ref else []]) if len(data) else np.array([1.0])
        near_x, far_x = _fitted_range(xs, [v for p in presets for b in [_bounds(p, x)] if b for v in b
                                           if math.isfinite(v)])
        limits_y = [v for p in presets for b in [_bounds(p, y)] if b for v in b if math.isfinite(v)]
        near_y, _ = _fitted_range(ys, limits_y)
        x0, x1 = ax.get_xlim()
        y0, y1 = ax.get_ylim()
        if ax.get_xscale() == "linear":  # sizes and latencies start at 0
            x0 = min(x0, 0.0)
        if near_x:
            x0 = min(x0, min(near_x) / (1.3 if ax.get_xscale() == "log" else 1))
            x1 = max(x1, max(near_x) * 1.08)
        if _SENSE[y] == "min" and limits_y:  # errors start at 0: every error limit is on the axis
            y0, near_y = 0.0, limits_y
        if near_y:
            y0, y1 = min(y0, min(near_y)), max(y1, max(near_y))
            if _SENSE[y] == "max":  # a lower bound on accuracy: give the feasible band a readable height
                y1 = max(y1, max(near_y) + 0.35 * (max(near_y) - y0))
                y1 = min(y1, 1.0 + 0.02 * (y1 - y0)) if y == "top1" else y1
            pad = 0.04 * (y1 - y0)
            y0, y1 = y0 - (pad if y0 != 0 else 0), y1 + pad
        ax.set_xlim(x0, x1)
        ax.set_ylim(y0, y1)
        regions: dict[tuple[float, ...], list[str]] = {}  # presets with the same region here: one box, one label
        for p in presets:
            bx, by = _bounds(p, x), _bounds(p, y)
            if bx is None and by is None:
                continue
            lx, hx = (max(bx[0], x0), min(bx[1], x1)) if bx else (x0, x1)
            ly, hy = (max(by[0], y0), min(by[1], y1)) if by else (y0, y1)
            if hx > lx and hy > ly:
                regions.setdefault((lx, hx, ly, hy), []).append(p.name)
        placed: list[tuple[float, float]] = []  # label anchors in pixels: move a label down past its neighbours
        for (lx, hx, ly, hy), names in sorted(regions.items(), key=lambda kv: -kv[0][3]):
            color = box_colors[names[0]] if len(names) == 1 else (0.6, 0.6, 0.6, 1.0)
            ax.add_patch(Rectangle((lx, ly), hx - lx, hy - ly, facecolor=(*color[:3], 0.16), edgecolor=color, lw=1.4,
                                   zorder=1))
            px, py = ax.transData.transform((hx, min(hy, y1)))
            dy = 0.0
            while any(abs(px - qx) < 75 and abs(py - dy - qy) < 13 for qx, qy in placed):
                dy += 13
            placed.append((px, py - dy))
            ax.annotate(", ".join(names), (hx, min(hy, y1)), xytext=(-3, -3 - dy * 72 / fig.dpi),
                        textcoords="offset points", ha="right", va="top", fontsize=8, color="dimgray", zorder=6,
                        bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.7})
        far = sorted({v for v in far_x if v > x1})
        for k, v in enumerate(far):
            names = [p for p in presets if (_bounds(p, x) or (0, 0))[1] == v]
            unit = next((c.unit for c in names[0].constraints if c.metric == x), "")
            ax.annotate(f"{', '.join(p.name for p in names)}: limit {v:g} {unit}, off the axis →", (0.99, 0.88 - 0.08 * k),
                        xycoords="axes fraction", ha="right", va="top", fontsize=8, color="dimgray", zorder=6,
                        bbox={"boxstyle": "round,pad=0.2", "fc": "white", "ec": "none", "alpha": 0.8})
        if ax.get_xscale() == "linear":
            ax.xaxis.set_major_locator(MaxNLocator(5))
    handles = [Line2D([], [], color=colors[m], marker="o", ls="", label=m) for m in models]
    used = sorted(trials["mode"].unique()) if len(trials) else []
    handles += [Line2D([], [], color="gray", marker=marks.get(md, "o"), ls="", label=tflite.MODE_LABELS.get(md, md))
                for md in used]
    handles += [Line2D([], [], color="black", lw=1.2, marker="o", mfc="none", label="Pareto front")]
    if ref:
        handles += [Line2D([], [], color="black", marker="*", ms=10, ls=":", label=str(ref.get("config", "reference"))),
                    Line2D([], [], color="gray", marker="o", mfc="none", ls="", label="does not beat persistence")]
    boxes = [Patch(facecolor=box_colors[p.name], alpha=0.5, edgecolor=box_colors[p.name],
                   label=str(p).replace("_mae", " MAE").replace("size_kb", "size")) for p in presets]
    fig.legend(handles=handles, loc="upper center", ncol=min(len(handles), 7), frameon=False,
               bbox_to_anchor=(0.5, 0.0), fontsize=9)
    fig.legend(handles=boxes, loc="upper center", ncol=min(len(boxes), 3), frameon=False,
               bbox_to_anchor=(0.5, -0.07), fontsize=9, title="feasible region of each preset (shaded)",
               title_fontsize=9)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
