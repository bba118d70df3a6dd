"""The dashboard's colours, in one place: the stylesheet's variables and the charts read them here.

Every text colour is checked against the background it sits on for WCAG 2.x AA (4.5:1 for body
text), and chart marks against the page (3:1, non-text contrast) by tests/unit/test_dashboard.py.
"""

from __future__ import annotations

PAGE = "#ffffff"
TEXT = "#1b1f24"
MUTED = "#545d68"
LINK = "#0b57d0"
BORDER = "#c4cad1"
FOCUS = "#b3261e"
HEADER_BG = "#1b1f24"
HEADER_TEXT = "#ffffff"
STRIPE = "#f4f6f8"

# Grid cell states: (background, text).
STATES: dict[str, tuple[str, str]] = {
    "passed": ("#d5f0dc", "#0a5a1f"),
    "failed": ("#fbdada", "#8c1111"),
    "error": ("#fde6c4", "#6e3b00"),
    "in-progress": ("#dce8fc", "#0b3a8c"),
    "not-started": ("#f4f6f8", "#545d68"),
    "expired": ("#ebe6f5", "#4b2d7f"),
    "stopped": ("#ebedf0", "#3d444d"),
    "refused": ("#ebedf0", "#3d444d"),
}

# Chart marks on the page background.
BAR_PASS = "#1e7b34"
BAR_FAIL = "#c62828"
BAR_SCORE = "#0b57d0"
BAR_TRACK = "#e3e7eb"  # decoration only: the bar's value is also printed beside it

TEXT_PAIRS: dict[str, tuple[str, str]] = {
    "text": (TEXT, PAGE),
    "muted": (MUTED, PAGE),
    "link": (LINK, PAGE),
    "text on stripe": (TEXT, STRIPE),
    "muted on stripe": (MUTED, STRIPE),
    "link on stripe": (LINK, STRIPE),
    "header": (HEADER_TEXT, HEADER_BG),
    **{f"cell {state}": (fg, bg) for state, (bg, fg) in STATES.items()},
}
MARK_PAIRS: dict[str, tuple[str, str]] = {
    "pass bar": (BAR_PASS, PAGE),
    "fail bar": (BAR_FAIL, PAGE),
    "score bar": (BAR_SCORE, PAGE),
    "focus ring": (FOCUS, PAGE),
}


def luminance(colour: str) -> float:
    """WCAG relative luminance of ``#rrggbb``."""
    channels = [int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(foreground: str, background: str) -> float:
    """WCAG contrast ratio, 1 to 21."""
    a, b = sorted((luminance(foreground), luminance(background)), reverse=True)
    return (a + 0.05) / (b + 0.05)


def css() -> str:
    """The stylesheet's custom properties."""
    lines = [
        f"--page:{PAGE}",
        f"--text:{TEXT}",
        f"--muted:{MUTED}",
        f"--link:{LINK}",
        f"--border:{BORDER}",
        f"--focus:{FOCUS}",
        f"--header-bg:{HEADER_BG}",
        f"--header-text:{HEADER_TEXT}",
        f"--stripe:{STRIPE}",
    ]
    rules = [f".s-{state}{{background:{bg};color:{fg}}}" for state, (bg, fg) in STATES.items()]
    return ":root{" + ";".join(lines) + "}\n" + "\n".join(rules) + "\n"
