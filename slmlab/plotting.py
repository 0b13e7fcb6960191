"""One matplotlib style for every figure in the book."""

from __future__ import annotations

import matplotlib as mpl

PALETTE = ["#3b6ea8", "#d1603d", "#5b9a4b", "#8c5aa8", "#c49a2c", "#4a9ca6", "#a8455b", "#6b6b6b"]

STYLE = {
    "figure.figsize": (6.4, 3.8),
    "figure.dpi": 110,
    "savefig.dpi": 150,
    "savefig.bbox": "tight",
    "axes.prop_cycle": mpl.cycler(color=PALETTE),
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.titlesize": 12,
    "axes.titleweight": "bold",
    "axes.labelsize": 10,
    "legend.frameon": False,
    "legend.fontsize": 9,
    "font.size": 10,
    "lines.linewidth": 1.8,
}


def use_style() -> None:
    """Apply the book's figure style (call once at the top of a notebook)."""
    mpl.rcParams.update(STYLE)
