"""Plots of the model registry: training loss curves and 2-D maps of an embedding space (server-side SVG)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib import colormaps

from catalog.plots import ACCENT, axes, svg

MAP_MAX_POINTS = 1500


def loss_curve(history: Sequence[dict[str, float]]) -> str:
    figure, ax = axes("Training loss", "Epoch", "Sub-center ArcFace loss")
    if history:
        epochs = [h["epoch"] for h in history]
        ax.plot(epochs, [h["loss"] for h in history], marker="o", color=ACCENT)
        ax.set_xticks(epochs)
    return svg(figure)


def embedding_map(vectors: np.ndarray, labels: Sequence[str], title: str, seed: int = 0) -> str:
    """t-SNE of the vectors to 2-D, one colour per individual: tight, separate clusters are what a good
    re-identification model makes."""
    from sklearn.manifold import TSNE

    figure, ax = axes(title, "", "")
    figure.set_size_inches(6.4, 5.0)
    if len(vectors) >= 3:
        points = TSNE(
            n_components=2, perplexity=min(30.0, (len(vectors) - 1) / 3), init="pca", random_state=seed
        ).fit_transform(vectors)
        names = sorted(set(labels))
        palette = colormaps["tab20"]
        colours = [palette(names.index(label) % 20) for label in labels]
        ax.scatter(points[:, 0], points[:, 1], c=colours, s=14, linewidths=0)
        if len(names) <= 20:
            for name in names:
                centre = points[[i for i, label in enumerate(labels) if label == name]].mean(axis=0)
                ax.annotate(name, centre, fontsize=7, ha="center")
    ax.set_xticks([])
    ax.set_yticks([])
    return svg(figure)
