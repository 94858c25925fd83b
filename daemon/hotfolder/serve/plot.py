"""The last 24 hours as an SVG bar chart drawn into the page: jobs done and failures per hour."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from hotfolder.core.status import Status

HOURS: Final = 24
WIDTH: Final = 720
HEIGHT: Final = 160
_LEFT, _BOTTOM, _TOP = 40, 22, 10
FAILURES: Final = frozenset({Status.QUARANTINED, Status.FAILED})


@dataclass(frozen=True)
class Hour:
    """One bar: the hour it starts, jobs done and failures in it."""

    start: datetime
    done: int
    failed: int


def hours(rows: Iterable[tuple[str, str, int]], now: datetime) -> list[Hour]:
    """Ledger rows (hour 'YYYY-MM-DDTHH', status, n) into the last 24 hourly bins, oldest first."""
    top = now.replace(minute=0, second=0, microsecond=0)
    starts = [top - timedelta(hours=HOURS - 1 - i) for i in range(HOURS)]
    done = dict.fromkeys(starts, 0)
    failed = dict.fromkeys(starts, 0)
    for hour, status, n in rows:
        try:
            start = datetime.fromisoformat(hour + ":00:00+00:00")
        except ValueError:
            continue
        if start in done:
            if status == Status.DONE:
                done[start] += n
            elif status in FAILURES:
                failed[start] += n
    return [Hour(s, done[s], failed[s]) for s in starts]


def svg(bins: list[Hour]) -> str:
    """Bars of done (green) with failures (red) stacked on them, a y scale and hour labels."""
    peak = max([b.done + b.failed for b in bins] + [1])
    plot_w, plot_h = WIDTH - _LEFT - 8, HEIGHT - _BOTTOM - _TOP
    step = plot_w / len(bins)
    parts = [
        f'<svg viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'class="plot" aria-label="jobs per hour, last 24 hours">',
        f'<line x1="{_LEFT}" y1="{_TOP + plot_h}" x2="{WIDTH - 8}" y2="{_TOP + plot_h}" class="axis"/>',
        f'<text x="{_LEFT - 6}" y="{_TOP + 8}" class="tick" text-anchor="end">{peak}</text>',
        f'<text x="{_LEFT - 6}" y="{_TOP + plot_h}" class="tick" text-anchor="end">0</text>',
    ]
    for i, b in enumerate(bins):
        x = _LEFT + i * step + 1
        h_done = plot_h * b.done / peak
        h_fail = plot_h * b.failed / peak
        base = _TOP + plot_h
        label = f"{b.start:%H}:00 UTC: {b.done} done, {b.failed} failed"
        w = f"{step - 2:.1f}"
        parts.append(
            f"<g><title>{label}</title>"
            f'<rect x="{x:.1f}" y="{base - h_done:.1f}" width="{w}" height="{h_done:.1f}" class="done"/>'
            f'<rect x="{x:.1f}" y="{base - h_done - h_fail:.1f}" width="{w}" height="{h_fail:.1f}" '
            'class="failed"/></g>'
        )
        if i % 3 == 0:
            parts.append(
                f'<text x="{x + step / 2:.1f}" y="{HEIGHT - 6}" class="tick" text-anchor="middle">'
                f"{b.start:%H}h</text>"
            )
    parts.append("</svg>")
    return "".join(parts)
