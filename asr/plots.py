"""Figures: `asr inspect` (one recording through the model) and `asr plot-training` (curves).

Drawn with matplotlib's object API (`Figure`, no pyplot), so no GUI backend or global state
is involved and the functions work in servers, tests and threads alike.
"""

import csv
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from asr.audio import SAMPLE_RATE
from asr.gates import DIRECTION_NAMES, GATE_NAMES
from asr.inspection import FEATURE_SHIFT, Inspection

FIGURE_WIDTH = 11.0  # inches
DPI = 80  # dots per inch: keeps the PNGs small (well under 300 KB)
TOP_TOKENS = 8  # non-blank tokens drawn as curves in the posterior panel
GATE_COLOURS = {"input": "tab:blue", "forget": "tab:red", "output": "tab:green"}
DIRECTION_STYLES = {"forward": "-", "backward": "--"}
BLANK_COLOUR = "0.8"  # light grey: the blank posterior is background, not the message
COLOUR_PERCENTILES = (1.0, 99.5)  # log-mel colour range, percentiles of the valid values
METRICS_FILE = "metrics.csv"  # what Lightning's CSVLogger writes


def _token_label(token: str) -> str:
    return "␣" if token == " " else token


def _draw_waveform(ax, inspection: Inspection) -> None:
    times = np.arange(len(inspection.waveform)) / SAMPLE_RATE
    ax.plot(times, inspection.waveform, color="0.3", linewidth=0.5)
    peak = float(np.abs(inspection.waveform).max()) or 1.0
    ax.set_ylim(-1.05 * peak, 1.05 * peak)
    ax.set_ylabel("waveform")
    ax.set_yticks([])


def _draw_features(ax, inspection: Inspection) -> None:
    feats = inspection.features
    frames, bins = feats.shape
    # Digital silence sits at the log floor, far below speech; leaving it out of the colour
    # range keeps the speech's formants visible instead of one washed-out bright block.
    above_floor = feats[feats > feats.min() + 1e-3]
    vmin = np.percentile(above_floor, COLOUR_PERCENTILES[0]) if above_floor.size else None
    vmax = np.percentile(feats, COLOUR_PERCENTILES[1])
    # Feature frame t is centred at t * 10 ms (centred STFT): each pixel spans ±5 ms.
    extent = (-FEATURE_SHIFT / 2, (frames - 0.5) * FEATURE_SHIFT, -0.5, bins - 0.5)
    ax.imshow(
        inspection.features.T,  # (n_mels, T_in): mel bins up the y axis
        origin="lower",
        aspect="auto",
        extent=extent,
        cmap="magma",
        vmin=vmin,
        vmax=vmax,
        interpolation="nearest",
    )
    ax.set_ylabel("log-mel bin")


def _frame_times(inspection: Inspection) -> np.ndarray:
    """(T,) seconds of each output frame's centre.

    Output frame t's stride-2 convolutions centre on feature frame t * subsampling, which
    is centred at t * frame_shift seconds (centred STFT); the alignment's word times count
    frames the same way (start = first frame * frame_shift).
    """
    return np.arange(inspection.log_probs.shape[0]) * inspection.frame_shift


def _top_tokens(posteriors: np.ndarray) -> list[int]:
    """Non-blank token ids with the highest peak posterior, best first."""
    peaks = posteriors[:, 1:].max(axis=0)  # (V - 1,): column 0 is the blank
    order = np.argsort(-peaks)[:TOP_TOKENS] + 1
    return [int(t) for t in order if posteriors[:, t].max() > 0.01]


def _draw_posteriors(ax, inspection: Inspection) -> None:
    posteriors = np.exp(inspection.log_probs)  # (T, V)
    times = _frame_times(inspection)
    ax.fill_between(times, posteriors[:, 0], color=BLANK_COLOUR, step="mid", label="blank")
    for token in _top_tokens(posteriors):
        ax.plot(times, posteriors[:, token], drawstyle="steps-mid", linewidth=1.2)
    # Label the characters greedy decoding emits: the first frame of each non-blank run of
    # the best path, so the letters spell the transcript where the model put them.
    best = posteriors.argmax(axis=1)  # (T,)
    emitted = (best != 0) & np.concatenate(([True], best[1:] != best[:-1]))
    for t in np.flatnonzero(emitted):
        ax.text(
            times[t],
            posteriors[t, best[t]] + 0.03,
            _token_label(inspection.vocabulary[best[t]]),
            ha="center",
            va="bottom",
            fontsize=9,
        )
    for word in inspection.words:
        ax.axvspan(word.start, word.end, color="tab:orange", alpha=0.12, linewidth=0)
        ax.text(
            (word.start + word.end) / 2,
            1.32,
            word.word,
            ha="center",
            va="top",
            fontsize=10,
            color="tab:orange",
            fontweight="bold",
        )
    ax.set_ylim(0, 1.35)
    ax.set_yticks([0, 0.5, 1])
    ax.set_ylabel("CTC posterior")
    ax.legend(loc="upper right", fontsize=8)


def _draw_gates(ax, inspection: Inspection, layer: int) -> None:
    times = _frame_times(inspection)
    for d in range(inspection.gates.shape[1]):
        for g, gate in enumerate(GATE_NAMES):
            ax.plot(
                times,
                inspection.gates[layer, d, g],
                color=GATE_COLOURS[gate],
                linestyle=DIRECTION_STYLES[DIRECTION_NAMES[d]],
                linewidth=1.2,
                label=f"{gate} ({DIRECTION_NAMES[d]})",
            )
    ax.set_ylim(0, 1)
    ax.set_ylabel(f"LSTM {layer + 1}\nmean gate")


def plot_inspection(inspection: Inspection, path: str | Path) -> None:
    """Draw waveform, log-mel, posteriors with words and per-layer gates on one time axis.

    Args:
        inspection: from `asr.inspection.inspect_audio`.
        path: image file to write (format from the suffix: .png, .pdf, .svg).
    """
    layers = inspection.gates.shape[0]
    heights = [1.0, 1.6, 1.6] + [1.2] * layers
    fig = Figure(figsize=(FIGURE_WIDTH, 1.2 * sum(heights)), dpi=DPI, layout="constrained")
    axes = fig.subplots(len(heights), 1, sharex=True, gridspec_kw={"height_ratios": heights})
    _draw_waveform(axes[0], inspection)
    _draw_features(axes[1], inspection)
    _draw_posteriors(axes[2], inspection)
    for layer in range(layers):
        _draw_gates(axes[3 + layer], inspection, layer)
    axes[3].legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)
    for ax in axes:
        for word in inspection.words:  # word edges through every panel, for lining things up
            for edge in (word.start, word.end):
                ax.axvline(edge, color="tab:orange", linewidth=0.6, alpha=0.6)
    end = max([inspection.duration] + [w.end for w in inspection.words])
    axes[-1].set_xlim(0, end)
    axes[-1].set_xlabel("time (s)")
    fig.suptitle(f"“{inspection.text}”" if inspection.text else "(nothing recognised)")
    save(fig, path)


def find_metrics(logdir: str | Path) -> list[Path]:
    """Every metrics.csv at or under `logdir`, oldest first (a file path is returned as is).

    A resumed run (`asr fit` again after a stop) logs to a new version folder, so one
    training's curves are spread over several files.

    Raises:
        FileNotFoundError: there is none.
    """
    logdir = Path(logdir)
    if logdir.is_file():
        return [logdir]
    found = sorted(logdir.rglob(METRICS_FILE), key=lambda p: p.stat().st_mtime)
    if not found:
        raise FileNotFoundError(f"no {METRICS_FILE} under {logdir} (was CSVLogger enabled?)")
    return found


def read_metrics(
    paths: str | Path | Sequence[str | Path],
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """CSVLogger's metrics.csv files -> {metric: (steps, values)}, skipping empty cells.

    CSVLogger writes one row per logging call with blanks in the other metrics' columns.
    Several files (the parts of a resumed run, oldest first) are merged and sorted by step;
    a part resumed from a checkpoint older than the previous part's last row trains those
    steps again, so the previous part's rows from the resumed part's first step on are
    dropped (they belong to the training that was killed).
    """
    if isinstance(paths, str | Path):
        paths = [paths]
    series: dict[str, list[tuple[float, float]]] = {}
    for path in paths:
        try:
            with open(path, encoding="utf-8", newline="") as f:
                rows = [(float(row.get("step") or "nan"), row) for row in csv.DictReader(f)]
        except UnicodeDecodeError:
            raise ValueError(f"{path}: not a metrics.csv (not UTF-8 text)") from None
        # Only a part that trained resumes anything (`asr validate` logs at step 0).
        steps = [step for step, row in rows if step == step and row.get("train_loss")]
        if steps:
            resumed_at = min(steps)
            series = {k: [(a, b) for a, b in v if not a >= resumed_at] for k, v in series.items()}
        for step, row in rows:
            for key, value in row.items():
                if key in ("step", "epoch") or not value:
                    continue
                series.setdefault(key, []).append((step, float(value)))
    return {k: tuple(np.array(sorted(v)).T) for k, v in series.items() if v}  # type: ignore[misc]


def plot_training(metrics: dict[str, tuple[np.ndarray, np.ndarray]], path: str | Path) -> None:
    """Train/val loss and val WER/CER against optimizer steps.

    Args:
        metrics: from `read_metrics`; uses train_loss, val_loss, val_wer, val_cer if present.
        path: image file to write.
    """
    if not any(k in metrics for k in ("train_loss", "val_loss", "val_wer")):
        raise ValueError(f"no train_loss, val_loss or val_wer among {sorted(metrics)}")
    fig = Figure(figsize=(FIGURE_WIDTH, 3.6), dpi=DPI, layout="constrained")
    loss_ax, wer_ax = fig.subplots(1, 2, sharex=True)
    for key, style in (("train_loss", "-"), ("val_loss", "o-")):
        if key in metrics:
            steps, values = metrics[key]
            loss_ax.plot(steps, values, style, label=key.replace("_", " "), markersize=4)
    if any(v.min() > 0 for k, (_, v) in metrics.items() if k.endswith("_loss")):
        loss_ax.set_yscale("log")  # CTC loss falls over orders of magnitude
    loss_ax.set_ylabel("CTC loss")
    loss_ax.legend()
    for key in ("val_wer", "val_cer"):
        if key in metrics:
            steps, values = metrics[key]
            label = f"val {key.removeprefix('val_').upper()}"
            wer_ax.plot(steps, 100 * values, "o-", label=label, markersize=4)
            best = int(np.argmin(values))
            if key == "val_wer":
                wer_ax.annotate(
                    f"best WER {100 * values[best]:.1f}% (step {steps[best]:.0f})",
                    (steps[best], 100 * values[best]),
                    textcoords="offset points",
                    xytext=(10, 25),
                    arrowprops={"arrowstyle": "->", "color": "0.4"},
                )
    wer_ax.set_ylabel("error rate (%)")
    wer_ax.set_ylim(bottom=-3)  # a little room below 0%, so points at 0 are not clipped
    if wer_ax.has_data():
        wer_ax.legend()
    for ax in (loss_ax, wer_ax):
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    save(fig, path)


def save(fig: Figure, path: str | Path) -> None:
    """Write `fig` to `path` (format from its suffix), making its folder when needed, as
    the other `asr` commands' outputs do."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
