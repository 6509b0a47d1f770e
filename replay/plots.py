"""PNG plots of a replay: metric bars per method and weights over time for a few users."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from replay.prequential import ReplayResult
from weighting.factors import FACTORS


def plot_metrics(result: ReplayResult, k: int, path: Path) -> Path:
    names = list(result.metrics)
    figure, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for axis, metric in zip(axes, (f"HR@{k}", f"NDCG@{k}"), strict=True):
        axis.barh(names, [result.metrics[n][metric] for n in names], color="#4477aa")
        axis.set_title(metric)
        axis.invert_yaxis()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def plot_weights(result: ReplayResult, path: Path) -> Path:
    users = [u for u, points in result.weight_history.items() if points][:4]
    figure, axes = plt.subplots(len(users) or 1, 1, figsize=(10, 2.6 * max(len(users), 1)), squeeze=False)
    for axis, user in zip(axes[:, 0], users, strict=False):
        points = result.weight_history[user]
        steps = range(len(points))
        for f, name in enumerate(FACTORS):
            axis.plot(steps, [w[f] for _, w in points], label=name)
        axis.set_title(f"user {user}: factor weights before each evaluated event")
        axis.set_ylim(0, 1)
    axes[0, 0].legend(loc="upper right", fontsize="small", ncol=3)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
