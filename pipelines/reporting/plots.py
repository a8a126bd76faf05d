"""Training plots logged with each run: calibration, ROC, precision-recall and gains."""

from __future__ import annotations

import numpy as np
import pandas as pd

from leadq.models.metrics import calibration_table, gains_table


def training_figures(test_frame: pd.DataFrame) -> dict:
    """Matplotlib figures keyed by file name, from test labels and scores."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import precision_recall_curve, roc_curve

    y, score = test_frame["label"].to_numpy(), test_frame["score"].to_numpy()
    figs = {}

    fig, ax = plt.subplots(figsize=(5, 5))
    cal = calibration_table(y, score)
    top = max(cal["predicted"].max(), cal["observed"].max(), 0.05)
    ax.plot([0, top], [0, top], ls="--", c="grey", label="perfect")
    ax.plot(cal["predicted"], cal["observed"], marker="o", label="model")
    ax.set(xlabel="predicted conversion", ylabel="observed conversion",
           title="Calibration on out-of-time test leads")
    ax.legend()
    figs["calibration.png"] = fig

    fig, axes = plt.subplots(1, 2, figsize=(10, 4.5))
    fpr, tpr, _ = roc_curve(y, score)
    axes[0].plot(fpr, tpr)
    axes[0].plot([0, 1], [0, 1], ls="--", c="grey")
    axes[0].set(xlabel="false positive rate", ylabel="true positive rate", title="ROC")
    prec, rec, _ = precision_recall_curve(y, score)
    axes[1].plot(rec, prec)
    axes[1].axhline(np.mean(y), ls="--", c="grey")
    axes[1].set(xlabel="recall", ylabel="precision", title="Precision-recall")
    figs["roc_pr.png"] = fig

    fig, ax = plt.subplots(figsize=(5, 4.5))
    gains = gains_table(y, score)
    ax.plot([0, *gains["leads_share"]], [0, *gains["conversions_share"]], marker="o")
    ax.plot([0, 1], [0, 1], ls="--", c="grey")
    ax.set(xlabel="share of leads (best first)", ylabel="share of conversions",
           title="Cumulative gains")
    figs["gains.png"] = fig
    return figs
