"""Bar charts as inline SVG, drawn on the server: no script, no style attribute (strict CSP),
readable by screen readers (role="img", a title and a description, a <title> per bar) and
backed by a data table on the page."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

BAR = "#1f5f99"


def bar_chart_svg(
    chart_id: str,
    title: str,
    description: str,
    labels: Sequence[str],
    values: Sequence[int | str],
    *,
    width: int = 720,
    height: int = 260,
) -> str:
    """One series of bars; a suppressed value ("<5") draws no bar and is written instead."""
    left, bottom, top = 40, 48, 16
    plot_h = height - bottom - top
    numeric = [v for v in values if isinstance(v, int)]
    peak = max([*numeric, 1])
    n = max(1, len(labels))
    slot = (width - left - 8) / n
    bar_w = max(2.0, slot * 0.7)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" id="{escape(chart_id)}" class="chart" '
        f'role="img" viewBox="0 0 {width} {height}" width="100%" '
        f'aria-labelledby="{escape(chart_id)}-title {escape(chart_id)}-desc">',
        f'<title id="{escape(chart_id)}-title">{escape(title)}</title>',
        f'<desc id="{escape(chart_id)}-desc">{escape(description)}</desc>',
        f'<line x1="{left}" y1="{top + plot_h}" x2="{width - 4}" y2="{top + plot_h}" '
        'stroke="#555" stroke-width="1"/>',
        f'<text x="{left - 6}" y="{top + 4}" text-anchor="end" font-size="11" '
        f'fill="#333">{peak}</text>',
        f'<text x="{left - 6}" y="{top + plot_h}" text-anchor="end" font-size="11" '
        'fill="#333">0</text>',
    ]
    rotate = n > 12
    for i, (label, value) in enumerate(zip(labels, values, strict=True)):
        x = left + i * slot + (slot - bar_w) / 2
        cx = x + bar_w / 2
        text = escape(str(value))
        if isinstance(value, int) and value > 0:
            h = plot_h * value / peak
            y = top + plot_h - h
            parts.append(
                f'<rect class="bar" x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" '
                f'height="{h:.1f}" fill="{BAR}" data-label="{escape(label)}" '
                f'data-value="{text}"><title>{escape(label)}: {text}</title></rect>'
            )
        else:
            parts.append(
                f'<text x="{cx:.1f}" y="{top + plot_h - 4}" text-anchor="middle" '
                f'font-size="10" fill="#333" data-label="{escape(label)}" '
                f'data-value="{text}">{text}</text>'
            )
        transform = f' transform="rotate(-45 {cx:.1f} {top + plot_h + 14})"' if rotate else ""
        anchor = "end" if rotate else "middle"
        parts.append(
            f'<text x="{cx:.1f}" y="{top + plot_h + 14}" text-anchor="{anchor}" font-size="11" '
            f'fill="#333"{transform}>{escape(label)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)
