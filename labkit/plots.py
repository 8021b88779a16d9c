"""Plot style and the one way figures are saved (``save_fig``), shared by all notebooks."""
from __future__ import annotations

import io
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt

from . import config
from .results import atomic_write_bytes


def use_style() -> None:
    """The kit's plot style (readable in the HTML report). Called by notebooks' setup."""
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


def save_fig(fig: "matplotlib.figure.Figure", name: str, *, show: bool = True) -> Path:
    """Save ``fig`` as ``reports/figures/<name>.png`` (atomically) and show it inline. Used by every notebook."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    path = atomic_write_bytes(figures_dir() / f"{name}.png", buf.getvalue())
    if show:
        try:
            from IPython.display import display

            from IPython import get_ipython

            if get_ipython() is not None:
                display(fig)
        except ImportError:  # pragma: no cover
            pass
    plt.close(fig)
    return path


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
def audio_views(views: "dict[str, object]", *, width: float = 16.0, row_height: float = 2.3) -> "plt.Figure":
    """One row per clip (``{title: features.AudioViews}``), five panels side by side: waveform, whole-clip
    FFT magnitude, linear spectrogram, log-mel spectrogram and MFCC. Used by notebook 01."""
    import numpy as np

    if not views:
        raise ValueError("audio_views needs at least one clip: {title: features.views(clip)}")
    fig, axes = plt.subplots(len(views), 5, figsize=(width, row_height * len(views)), squeeze=False)
    for row, (title, v) in zip(axes, views.items()):
        cfg, sr = v.cfg, v.sample_rate
        t = np.arange(len(v.waveform)) / sr
        row[0].plot(t, v.waveform, lw=0.5)
        row[0].set(title=f"{title}: waveform", xlabel="time (s)", ylim=(-1.0, 1.0))
        row[1].plot(v.fft_freqs / 1000.0, v.fft_db, lw=0.5)
        row[1].set(title="FFT magnitude", xlabel="frequency (kHz)", ylabel="dB", ylim=(-80, 2))
        duration = cfg.frame_step * (len(v.spectrogram_db) - 1) / sr + cfg.frame_length / sr
        images = [
            (v.spectrogram_db, "spectrogram (dB)", (0, sr / 2000.0), "frequency (kHz)", dict(vmin=-80, vmax=0)),
            (v.log_mel, f"log-mel ({v.log_mel.shape[1]} bins)", (0, v.log_mel.shape[1]), "mel bin", {}),
            (v.mfcc, f"MFCC ({v.mfcc.shape[1]} coeff.)", (0, v.mfcc.shape[1]), "coefficient", {}),
        ]
        for ax, (img, name, (lo, hi), ylabel, kw) in zip(row[2:], images):
            im = ax.imshow(img.T, origin="lower", aspect="auto", extent=(0, duration, lo, hi),
                           cmap="magma" if ax is not row[4] else "coolwarm", **kw)
            ax.set(title=name, xlabel="time (s)", ylabel=ylabel)
            ax.grid(False)
            fig.colorbar(im, ax=ax, pad=0.01)
    fig.tight_layout()
    return fig


def audio_gallery(views: "dict[str, object]") -> "object":
    """An HTML table: for each clip an audio player next to its row of :func:`audio_views` panels.
    Plain HTML with embedded WAV and PNG, so it also plays in the static report. Used by notebook 01."""
    import base64

    from IPython.display import HTML, Audio

    rows = []
    for title, v in views.items():
        fig = audio_views({title: v})
        buf = io.BytesIO()
        fig.savefig(buf, format="png", bbox_inches="tight")
        plt.close(fig)
        png = base64.b64encode(buf.getvalue()).decode("ascii")
        player = Audio(v.waveform, rate=v.sample_rate)._repr_html_()
        rows.append(f"<tr><td style='vertical-align:middle'><b>{title}</b><br>{player}</td>"
                    f"<td><img style='max-width:100%' src='data:image/png;base64,{png}'></td></tr>")
    return HTML("<table>" + "".join(rows) + "</table>")


def cost_bars(table: "object", *, value: str = "ms_per_clip", log: bool = True) -> "plt.Figure":
    """Grouped bar chart of ``features.cost_table`` rows: one group per pipeline, one bar per mode.
    Used by notebook 01."""
    import numpy as np

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
    ax.legend(ncol=len(pivot.columns), fontsize=8, loc="upper left")
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- training (notebooks 03-04)
def training_curves(histories: "dict[str, dict[str, list[float]]]", *, metric: str = "accuracy",
                    title: str = "") -> "matplotlib.figure.Figure":
    """Loss and ``metric`` per epoch, train (solid) vs validation (dashed), one colour per run.

    ``histories`` maps a run name to a Keras-style history dict (``TrainResult.history``).
    Used by notebooks 03 and 04.
    """
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (name, hist) in enumerate(histories.items()):
        c = colors[i % len(colors)]
        for ax, key in zip(axes, ("loss", metric)):
            if key in hist:
                epochs = range(1, len(hist[key]) + 1)
                ax.plot(epochs, hist[key], color=c, lw=1.4, label=f"{name} train")
                if f"val_{key}" in hist:
                    ax.plot(epochs, hist[f"val_{key}"], color=c, lw=1.4, ls="--", label=f"{name} val")
    for ax, key in zip(axes, ("loss", metric)):
        ax.set_xlabel("epoch")
        ax.set_ylabel(key)
    axes[1].legend(fontsize=7, ncol=2, loc="best")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def confusion_matrix(cm, labels: "list[str]", *, title: str = "", normalize: bool = True
                     ) -> "matplotlib.figure.Figure":
    """A confusion matrix (rows = true label, columns = predicted), row-normalised by default, with
    the counts written in each cell. Used by notebooks 03 and 05."""
    import numpy as np

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
    import numpy as np

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
