"""Hand-written inline SVG charts shared by the HTML reports (no plotting dependency).

Axis ticks (:func:`nice_ticks`) for every chart, and the two budget charts of the compliance
and release reports: cumulative epsilon over time as a step line under the cap, and a
horizontal bar chart of epsilon by purpose. Every label is escaped; the output is a standalone
``<svg>`` element that can be pasted into HTML.
"""

from __future__ import annotations

import datetime as _dt
import math
from collections.abc import Sequence
from html import escape

STATUS_COLOURS = {"committed": "#2b6cb0", "aborted": "#dd6b20", "interrupted": "#c53030"}
_FONT = 'font-family="system-ui, sans-serif" font-size="12"'


def nice_ticks(hi: float, count: int = 5) -> list[float]:
    """Round tick values from 0 to at least ``hi`` (about ``count`` of them)."""
    if not hi > 0 or not math.isfinite(hi):
        return [0.0, 1.0]
    raw = hi / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    return [round(i * step, 10) for i in range(int(math.ceil(hi / step - 1e-9)) + 1)]


def _fmt(value: float) -> str:
    return f"{value:.3g}"


def _time_labels(times: Sequence[str], count: int = 5) -> list[tuple[int, str]]:
    """About ``count`` evenly spread ``(index, label)`` pairs: time of day if all spends share
    a date, else the date (and time when few dates repeat)."""
    stamps = [_dt.datetime.fromisoformat(t).astimezone(_dt.timezone.utc) for t in times]
    if not stamps:
        return []
    same_day = len({s.date() for s in stamps}) == 1
    fmt = "%H:%M:%S" if same_day else "%Y-%m-%d %H:%M"
    n = len(stamps)
    picks = sorted({round(i * (n - 1) / max(1, count - 1)) for i in range(min(count, n))})
    return [(i, stamps[i].strftime(fmt)) for i in picks]


def cumulative_chart(times: Sequence[str], epsilons: Sequence[float],
                     statuses: Sequence[str], cap: float, *, width: int = 760,
                     height: int = 300) -> str:
    """Step chart of the composed epsilon after each spend, in order, with the cap line.

    ``times`` are the ISO reservation times; the x axis is the order of the spends (so a fit's
    burst of spends stays readable next to releases weeks apart), labelled with their times.
    """
    left, right, top, bottom = 56, 24, 28, 44
    pw, ph = width - left - right, height - top - bottom
    finite = [e for e in epsilons if math.isfinite(e)]
    ticks = nice_ticks(max([cap, *finite]) * 1.08)
    y_hi, n = ticks[-1], len(epsilons)

    def x(i: float) -> float:
        return left + pw * (i + 0.5) / max(n, 1)

    def y(e: float) -> float:
        return top + ph * (1 - min(e, y_hi) / y_hi)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img" '
             'aria-label="Cumulative epsilon spent over time">',
             f'<text x="{left}" y="16" {_FONT} font-weight="600">Cumulative ε spent (PLD) after '
             'each spend, in order of time (UTC)</text>']
    for tick in ticks:
        parts.append(f'<line x1="{left}" x2="{left + pw}" y1="{y(tick):.1f}" y2="{y(tick):.1f}" '
                     'stroke="#e2e8f0"/>')
        parts.append(f'<text x="{left - 6}" y="{y(tick) + 4:.1f}" text-anchor="end" {_FONT}>'
                     f'{_fmt(tick)}</text>')
    for i, label in _time_labels(times):
        # Keep edge labels inside the picture (about 7 px per character).
        half = 3.6 * len(label)
        lx = min(max(x(i), half + 2), width - half - 2)
        parts.append(f'<line x1="{x(i):.1f}" x2="{x(i):.1f}" y1="{top + ph}" '
                     f'y2="{top + ph + 4}" stroke="#a0aec0"/>'
                     f'<text x="{lx:.1f}" y="{top + ph + 18}" text-anchor="middle" {_FONT}>'
                     f'{escape(label)}</text>')
    parts.append(f'<line x1="{left}" x2="{left + pw}" y1="{y(cap):.1f}" y2="{y(cap):.1f}" '
                 'stroke="#c53030" stroke-dasharray="6 4" stroke-width="1.5"/>')
    parts.append(f'<text x="{left + pw - 4}" y="{y(cap) - 6:.1f}" text-anchor="end" {_FONT} '
                 f'fill="#c53030">cap ε = {_fmt(cap)}</text>')
    if n:
        path = [f"M {left} {y(0):.1f}"]
        path += [f"H {x(i):.1f} V {y(e):.1f}" for i, e in enumerate(epsilons)]
        path.append(f"H {left + pw:.1f}")
        parts.append(f'<path d="{" ".join(path)}" fill="none" stroke="#2b6cb0" '
                     'stroke-width="2"/>')
        for i, (e, status) in enumerate(zip(epsilons, statuses, strict=True)):
            colour = STATUS_COLOURS.get(status, "#4a5568")
            parts.append(f'<circle cx="{x(i):.1f}" cy="{y(e):.1f}" r="3.5" fill="{colour}">'
                         f'<title>{escape(times[i])} {escape(status)}: ε = {_fmt(e)}</title>'
                         '</circle>')
    parts.append(_legend(left, height - 6))
    parts.append(f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" '
                 'stroke="#a0aec0"/></svg>')
    return "".join(parts)


def _legend(x0: float, y0: float) -> str:
    out, x = [], x0
    for status, colour in STATUS_COLOURS.items():
        out.append(f'<circle cx="{x + 4}" cy="{y0 - 4}" r="4" fill="{colour}"/>'
                   f'<text x="{x + 12}" y="{y0}" {_FONT}>{status}</text>')
        x += 110
    return "".join(out)


def purpose_chart(items: Sequence[tuple[str, float]], cap: float, *, width: int = 760) -> str:
    """Horizontal bars: epsilon of each purpose's spends composed alone (PLD)."""
    left, right, bar, gap, top = 200, 70, 18, 8, 28
    height = top + len(items) * (bar + gap) + 24
    pw = width - left - right
    hi = max([cap, *(v for _, v in items if math.isfinite(v))])
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img" aria-label="Epsilon by purpose">',
             f'<text x="0" y="16" {_FONT} font-weight="600">ε by purpose (each composed '
             'alone, PLD; cap shown as a dashed line)</text>']
    for i, (label, value) in enumerate(items):
        y = top + i * (bar + gap)
        w = pw * min(value, hi) / hi if math.isfinite(value) and hi > 0 else pw
        short = label if len(label) <= 30 else label[:29] + "…"
        parts.append(f'<text x="{left - 8}" y="{y + bar - 5}" text-anchor="end" {_FONT}>'
                     f'{escape(short)}</text>')
        parts.append(f'<rect x="{left}" y="{y}" width="{max(w, 1):.1f}" height="{bar}" '
                     f'fill="#4299e1"><title>{escape(label)}: ε = {_fmt(value)}</title></rect>')
        parts.append(f'<text x="{left + max(w, 1) + 6:.1f}" y="{y + bar - 5}" {_FONT}>'
                     f'{_fmt(value)}</text>')
    cap_x = left + pw * cap / hi if hi > 0 else left
    parts.append(f'<line x1="{cap_x:.1f}" x2="{cap_x:.1f}" y1="{top - 4}" '
                 f'y2="{height - 20}" stroke="#c53030" stroke-dasharray="6 4"/>')
    parts.append(f'<text x="{cap_x:.1f}" y="{height - 6}" text-anchor="middle" {_FONT} '
                 f'fill="#c53030">cap {_fmt(cap)}</text></svg>')
    return "".join(parts)


__all__ = ["STATUS_COLOURS", "cumulative_chart", "nice_ticks", "purpose_chart"]
