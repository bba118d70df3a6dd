"""Charts as server-side SVG: no script, no chart library; they print, scale and work with JS off.

Each chart is an image with a title for screen readers, and every value it draws is also written
as text beside its mark (and in a table under it on the page), so colour never carries meaning alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from markupsafe import Markup

from labctl.dashboard import palette
from labctl.dashboard.model import CheckRate

# A narrow drawing with large type: scaled down to a phone's width, its text stays readable.
WIDTH = 480
LABEL_WIDTH = 150
VALUE_WIDTH = 105
ROW = 32
FONT = 'font-family="system-ui, sans-serif" font-size="16"'


def _svg(height: int, title: str, body: list[str], name: str) -> Markup:
    head = (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}" role="img" '
        f'class="chart" data-chart="{escape(name)}" preserveAspectRatio="xMinYMin meet" {FONT}>'
        f"<title>{escape(title)}</title>"
    )
    return Markup(head + "".join(body) + "</svg>")


def _short(text: str, limit: int = 16) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def check_pass_rates(rates: Sequence[CheckRate], *, title: str) -> Markup:
    """A horizontal bar per check: the share of graded learners whose latest attempt passed it."""
    height = max(ROW * len(rates) + 10, 40)
    track = WIDTH - LABEL_WIDTH - VALUE_WIDTH
    body: list[str] = []
    if not rates:
        body.append(f'<text x="0" y="24" fill="{palette.MUTED}">no attempts yet</text>')
    for i, r in enumerate(rates):
        y = 5 + i * ROW
        filled = round(track * r.rate, 1)
        colour = palette.BAR_PASS if r.rate >= 0.5 else palette.BAR_FAIL
        value = f"{r.passed}/{r.graded} ({r.rate:.0%})"
        body += [
            f'<g data-check="{escape(r.check)}" data-passed="{r.passed}" data-graded="{r.graded}">',
            f"<title>{escape(r.check)}: {value} passed</title>",
            f'<text x="{LABEL_WIDTH - 8}" y="{y + 20}" text-anchor="end" fill="{palette.TEXT}">'
            f"{escape(_short(r.check))}</text>",
            f'<rect x="{LABEL_WIDTH}" y="{y + 4}" width="{track}" height="20" fill="{palette.BAR_TRACK}"/>',
            f'<rect x="{LABEL_WIDTH}" y="{y + 4}" width="{filled}" height="20" fill="{colour}"/>',
            f'<text x="{LABEL_WIDTH + track + 8}" y="{y + 20}" fill="{palette.TEXT}">{value}</text>',
            "</g>",
        ]
    return _svg(height, title, body, "checks")


_DASH = "\u2013"  # a bucket "0.4 to 0.8" is marked by where it starts; its table row says the whole range


def score_histogram(bins: Sequence[tuple[str, int]], *, title: str) -> Markup:
    """A vertical bar per score bucket: how many learners scored that much."""
    height, top, bottom, left = 220, 24, 40, 8
    body: list[str] = []
    if not bins:
        body.append(f'<text x="0" y="24" fill="{palette.MUTED}">no graded attempts yet</text>')
        return _svg(60, title, body, "scores")
    most = max((n for _, n in bins), default=0) or 1
    slot = (WIDTH - left) / len(bins)
    bar = min(slot * 0.7, 60)
    plot = height - top - bottom
    for i, (label, count) in enumerate(bins):
        x = left + i * slot + (slot - bar) / 2
        h = round(plot * count / most, 1)
        y = top + plot - h
        centre = round(x + bar / 2, 1)
        body += [
            f'<g data-bin="{escape(label)}" data-count="{count}">',
            f"<title>score {escape(label)}: {count} learner{'s' if count != 1 else ''}</title>",
            f'<rect x="{round(x, 1)}" y="{y}" width="{round(bar, 1)}" height="{h}" '
            f'fill="{palette.BAR_SCORE}"/>',
            f'<text x="{centre}" y="{y - 6}" text-anchor="middle" fill="{palette.TEXT}">{count}</text>',
            f'<text x="{centre}" y="{height - bottom + 22}" text-anchor="middle" fill="{palette.MUTED}">'
            f"{escape(label.split(_DASH)[0])}</text>",
            "</g>",
        ]
    body.append(
        f'<line x1="{left}" y1="{top + plot}" x2="{WIDTH}" y2="{top + plot}" stroke="{palette.MUTED}"/>'
    )
    return _svg(height, title, body, "scores")
