"""Bar charts as inline SVG made on the server (no charting library, nothing from a CDN).
Labels are escaped; the bars carry <title>s so a screen reader and a hover say the value."""

from __future__ import annotations

from html import escape
from typing import Any

WIDTH, BAR_H, GAP, LABEL_W = 560, 18, 6, 200


def bars(rows: list[dict[str, Any]], label: str, value: str, unit: str = "") -> str:
    if not rows:
        return '<p class="muted">nothing to chart</p>'
    top = max(float(r[value] or 0) for r in rows) or 1.0
    height = len(rows) * (BAR_H + GAP)
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {height}" role="img" '
        f'aria-label="{escape(value)} by {escape(label)}" preserveAspectRatio="xMinYMin meet">'
    ]
    for i, r in enumerate(rows):
        y = i * (BAR_H + GAP)
        v = float(r[value] or 0)
        w = max(1.0, (WIDTH - LABEL_W - 90) * v / top)
        name = escape(str(r[label] or "(none)"))[:60]
        shown = f"{v:,.0f}{unit}" if v >= 1 or v == 0 else f"{v:.1%}"
        parts.append(
            f"<g><title>{name}: {escape(shown)}</title>"
            f'<text x="0" y="{y + 13}" class="lbl">{name}</text>'
            f'<rect x="{LABEL_W}" y="{y}" width="{w:.1f}" height="{BAR_H}" rx="2"></rect>'
            f'<text x="{LABEL_W + w + 6:.1f}" y="{y + 13}" class="val">{escape(shown)}</text></g>'
        )
    parts.append("</svg>")
    return "".join(parts)
