"""One chart for every report: grouped bars, one group per label and one bar per model (matplotlib, Agg backend:
no display needed). Used by `evaluate` (accuracy per category) and `probe` (attack rates with intervals)."""

from __future__ import annotations

from pathlib import Path


def grouped_bars(path: Path, labels: list[str], series: dict[str, list[float]], *, ylabel: str, title: str,
                 errors: dict[str, list[list[float]]] | None = None, chance: float | None = None,
                 rotate: bool = False) -> None:
    """Write a PNG to `path`: for each label a group of bars, one per entry of `series` (values in %, 0–100).
    `errors[name]` = [below, above] error-bar lengths per label; `chance` draws a dashed reference line."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(series)
    width = 0.8 / max(1, len(names))
    fig, ax = plt.subplots(figsize=(max(6.0, 0.5 * len(labels) * max(1, len(names)) + 2), 4.5))
    for m, n in enumerate(names):
        xs = [i + (m - (len(names) - 1) / 2) * width for i in range(len(labels))]
        err = (errors or {}).get(n)
        ax.bar(xs, series[n], width, label=n, **({"yerr": err, "capsize": 3} if err else {}))
    if chance is not None:
        ax.axhline(chance, color="grey", lw=0.8, ls="--")
    ax.set_xticks(range(len(labels)))
    ax.set_xticklabels(labels, **({"rotation": 45, "ha": "right", "fontsize": 8} if rotate else {}))
    ax.set_ylabel(ylabel)
    ax.set_ylim(0, 100)
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
