"""Charts for the annual report, drawn with matplotlib (3.11 shapes Khmer through libraqm).

The object API only (no pyplot): each chart is its own Figure, so drawing in a worker thread
while another request draws is safe.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from functools import cache
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
from matplotlib import font_manager
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

SERIES_COLOURS = ("#1f5f99", "#c0504d", "#4f8f3a", "#8064a2")


@cache
def font_family(font_path: str) -> str:
    """Register the Khmer font with matplotlib once; its family name."""
    path = Path(font_path)
    if not path.exists():
        raise FileNotFoundError(
            f"Khmer font {font_path} is missing: install Debian's fonts-khmeros "
            "(or set REPORTING_KHMER_FONT)"
        )
    font_manager.fontManager.addfont(str(path))
    return font_manager.FontProperties(fname=str(path)).get_name()


def bar_chart_png(
    title: str,
    categories: Sequence[str],
    series: dict[str, Sequence[int | str]],
    *,
    font_path: str,
    width_in: float = 7.5,
    height_in: float = 3.2,
) -> bytes:
    """Grouped bars; a suppressed value ("<5") draws no bar and is labelled "<5"."""
    family = font_family(font_path)
    fig = Figure(figsize=(width_in, height_in), dpi=150)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    count = max(1, len(series))
    width = 0.8 / count
    for i, (name, values) in enumerate(series.items()):
        xs = [x + (i - (count - 1) / 2) * width for x in range(len(categories))]
        heights = [v if isinstance(v, int) else 0 for v in values]
        ax.bar(xs, heights, width=width, label=name, color=SERIES_COLOURS[i % len(SERIES_COLOURS)])
        for x, v in zip(xs, values, strict=True):
            if isinstance(v, str):
                ax.text(x, 0, v, ha="center", va="bottom", fontsize=6, family=family)
    ax.set_xticks(range(len(categories)))
    ax.set_xticklabels(
        categories,
        rotation=45 if len(categories) > 8 else 0,
        fontsize=7,
        family=family,
        ha="right" if len(categories) > 8 else "center",
    )
    ax.set_title(title, family=family, fontsize=10)
    ax.tick_params(axis="y", labelsize=7)
    ax.spines[["top", "right"]].set_visible(False)
    if len(series) > 1:
        ax.legend(prop={"family": family, "size": 7}, frameon=False)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()
