"""PNG reports under ``$CANDLECAST_HOME/reports/``: predictions, loss curves, errors.

Matplotlib runs on the Agg backend (files only, no display needed).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from training.walkforward import WalkForwardResult


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def report_paths(
    folder: Path, stem: str, results: dict[str, WalkForwardResult], title: str = ""
) -> list[Path]:
    """Write every plot for one backtest; returns the files written."""
    folder.mkdir(parents=True, exist_ok=True)
    written = [
        predictions_plot(results, folder / f"{stem}_predictions.png", title),
        errors_plot(results, folder / f"{stem}_errors.png", title),
    ]
    for family, result in results.items():
        if result.histories:
            written.append(loss_plot(result, folder / f"{stem}_{family}_loss.png"))
    return written


def predictions_plot(results: dict[str, WalkForwardResult], path: Path, title: str = "") -> Path:
    """Actual next-hour close vs each model's out-of-sample forecast over the test period."""
    plt = _pyplot()
    first = next(iter(results.values())).predictions
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(13, 8), sharex=True, height_ratios=[3, 1])
    times = first["event_timestamp"]
    top.plot(times, first["next_close"], color="black", lw=1.4, label="actual next-hour close")
    naive_err = (first["price_now"] - first["next_close"]).abs()
    for family, result in results.items():
        preds = result.predictions
        err = (preds["predicted"] - preds["next_close"]).abs()
        label = f"{family} (MAE {err.mean():.0f}, ratio {err.mean() / naive_err.mean():.3f})"
        top.plot(preds["event_timestamp"], preds["predicted"], lw=0.8, label=label)
        bottom.plot(preds["event_timestamp"], err.rolling(24).mean(), lw=0.9, label=family)
    bottom.plot(
        times, naive_err.rolling(24).mean(), color="black", ls="--", lw=1.0, zorder=5,
        label=f"persistence (MAE {naive_err.mean():.0f})",
    )  # fmt: skip
    top.set_title(f"{title} walk-forward forecasts vs actual (weekly refits)".strip())
    top.set_ylabel("USD")
    top.legend(loc="best", fontsize=8)
    bottom.set_ylabel("24h rolling |error|")
    bottom.legend(loc="upper left", fontsize=7, ncol=len(results) + 1)
    return _save(fig, path)


def errors_plot(results: dict[str, WalkForwardResult], path: Path, title: str = "") -> Path:
    """Distribution of forecast errors per model, with persistence for reference."""
    plt = _pyplot()
    first = next(iter(results.values())).predictions
    naive = (first["price_now"] - first["next_close"]).to_numpy()
    errors = {
        f: (r.predictions["predicted"] - r.predictions["next_close"]).to_numpy()
        for f, r in results.items()
    }
    span = np.nanpercentile(np.abs(np.concatenate([naive, *errors.values()])), 99)
    bins = np.linspace(-span, span, 60)
    fig, ax = plt.subplots(figsize=(10, 5))
    ax.hist(naive, bins=bins, histtype="step", color="black", lw=1.5, label="persistence")
    for family, err in errors.items():
        ax.hist(
            err,
            bins=bins,
            histtype="step",
            lw=1.1,
            label=f"{family} (MAE {np.mean(np.abs(err)):.0f})",
        )
    ax.set_xlabel("forecast - actual (USD)")
    ax.set_ylabel("hours")
    ax.set_title(
        f"{title} error distribution (persistence MAE {np.mean(np.abs(naive)):.0f})".strip()
    )
    ax.legend(fontsize=8)
    return _save(fig, path)


def loss_plot(result: WalkForwardResult, path: Path) -> Path:
    """Train and validation loss per epoch for every fold (validation = tail of training)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(10, 5))
    cmap = plt.get_cmap("viridis", max(2, len(result.histories)))
    for i, hist in enumerate(result.histories):
        ax.plot(hist.get("loss", []), color=cmap(i), lw=0.9, alpha=0.6)
        ax.plot(hist.get("val_loss", []), color=cmap(i), lw=1.2, ls="--", label=f"fold {i + 1}")
    ax.set_yscale("log")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.legend(fontsize=7, ncol=2)
    ax.set_xlabel("epoch")
    ax.set_ylabel("MSE (standardized target)")
    ax.set_title(f"{result.family} loss per fold: solid = train, dashed = validation")
    return _save(fig, path)


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    _pyplot().close(fig)
    return path
