"""Inline SVG charts of the release report: marginals, association differences, budget bar.

Hand-written like the compliance report's charts (:mod:`dpsynth._util.svg`, whose
tick and font helpers are reused); every label is escaped.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from html import escape

from dpsynth._util.svg import nice_ticks

FONT = 'font-family="system-ui, sans-serif"'
REAL, SYNTH = "#4a5568", "#dd6b20"


def _open(width: float, height: float, label: str) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
            f'viewBox="0 0 {width:.0f} {height:.0f}" role="img" aria-label="{escape(label)}">')


def _short(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def marginal_chart(column: str, labels: Sequence[str], real: Sequence[float],
                   synthetic: Sequence[float], tvd: float, *, width: int = 350,
                   height: int = 220) -> str:
    """Side-by-side bars of the real (training) and synthetic share of each value or bin."""
    left, right, top, bottom = 44, 8, 34, 62
    pw, ph = width - left - right, height - top - bottom
    ticks = nice_ticks(max([*real, *synthetic, 0.01]) * 1.05, 4)
    hi = ticks[-1]
    n = max(len(labels), 1)
    slot = pw / n
    bar = max(1.0, slot * 0.4)
    parts = [_open(width, height, f"{column}: real and synthetic shares"),
             f'<text x="{left}" y="14" {FONT} font-size="12" font-weight="600">'
             f'{escape(_short(column, 30))}</text>',
             f'<text x="{left}" y="28" {FONT} font-size="11" fill="#4a5568">1-way TVD '
             f'{tvd:.3f}</text>']
    for t in ticks:
        y = top + ph * (1 - t / hi)
        parts.append(f'<line x1="{left}" x2="{left + pw}" y1="{y:.1f}" y2="{y:.1f}" '
                     f'stroke="#e2e8f0"/><text x="{left - 4}" y="{y + 3:.1f}" '
                     f'text-anchor="end" {FONT} font-size="9">{t:g}</text>')
    every = max(1, math.ceil(n / 12))
    for i, (lab, p, q) in enumerate(zip(labels, real, synthetic, strict=True)):
        x = left + i * slot + slot / 2
        for offset, value, colour in ((-bar, p, REAL), (0.0, q, SYNTH)):
            h = ph * min(value, hi) / hi
            parts.append(f'<rect x="{x + offset:.1f}" y="{top + ph - h:.1f}" width="{bar:.1f}" '
                         f'height="{h:.1f}" fill="{colour}"><title>{escape(lab)}: '
                         f'{"real" if colour == REAL else "synthetic"} {value:.3f}</title></rect>')
        if i % every == 0:
            ly = top + ph + 8
            parts.append(f'<text x="{x:.1f}" y="{ly}" {FONT} font-size="9" text-anchor="end" '
                         f'transform="rotate(-40 {x:.1f} {ly})">{escape(_short(lab, 14))}</text>')
    parts.append(f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" '
                 'stroke="#a0aec0"/></svg>')
    return "".join(parts)


def legend() -> str:
    """The real / synthetic colour key shared by the marginal charts."""
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="300" height="20" role="img" '
            f'aria-label="legend"><rect x="0" y="5" width="12" height="12" fill="{REAL}"/>'
            f'<text x="18" y="15" {FONT} font-size="12">real (training rows)</text>'
            f'<rect x="160" y="5" width="12" height="12" fill="{SYNTH}"/>'
            f'<text x="178" y="15" {FONT} font-size="12">synthetic</text></svg>')


def _heat(value: float, scale: float) -> str:
    t = min(1.0, max(0.0, value / scale))
    r, g, b = (round(255 + (c - 255) * t) for c in (197, 48, 48))
    return f"rgb({r},{g},{b})"


def association_heatmap(names: Sequence[str], real: Sequence[Sequence[float]],
                        synthetic: Sequence[Sequence[float]], *, scale: float = 0.3) -> str:
    """|Cramér's V real - synthetic| for every pair of columns (white 0, red >= ``scale``)."""
    n = len(names)
    cell = max(22.0, min(44.0, 440.0 / max(n, 1)))
    left, top = 120, 110
    width, height = left + n * cell + 20, top + n * cell + 40
    parts = [_open(width, height, "association difference heat map")]
    for i, name in enumerate(names):
        y = top + i * cell + cell / 2 + 4
        parts.append(f'<text x="{left - 6}" y="{y:.1f}" text-anchor="end" {FONT} '
                     f'font-size="11">{escape(_short(name, 16))}</text>')
        x = left + i * cell + cell / 2
        parts.append(f'<text x="{x:.1f}" y="{top - 6}" {FONT} font-size="11" '
                     f'transform="rotate(-45 {x:.1f} {top - 6})">{escape(_short(name, 16))}'
                     '</text>')
        for j in range(n):
            d = abs(real[i][j] - synthetic[i][j])
            fill = "#edf2f7" if i == j else _heat(d, scale)
            cx, cy = left + j * cell, top + i * cell
            text = "" if i == j else (f'<text x="{cx + cell / 2:.1f}" y="{cy + cell / 2 + 3:.1f}" '
                                      f'text-anchor="middle" {FONT} font-size="9" '
                                      f'fill="{"#fff" if d > scale * 0.6 else "#1a202c"}">'
                                      f'{d:.2f}</text>')
            parts.append(f'<rect x="{cx:.1f}" y="{cy:.1f}" width="{cell:.1f}" '
                         f'height="{cell:.1f}" fill="{fill}" stroke="#fff"><title>'
                         f'{escape(names[i])} × {escape(names[j])}: real {real[i][j]:.3f}, '
                         f'synthetic {synthetic[i][j]:.3f}</title></rect>{text}')
    y = top + n * cell + 22
    parts.append(f'<text x="{left}" y="{y:.0f}" {FONT} font-size="11">|V real − V synthetic|: '
                 f'white 0, red ≥ {scale:g}</text></svg>')
    return "".join(parts)


def budget_bar(cap: float, before: float, after: float, *, width: int = 760) -> str:
    """The dataset's cap as one bar: spent before this release, by it, and what is left."""
    left, right, top, bar = 10, 10, 26, 26
    pw = width - left - right
    hi = max(cap, after, 1e-12)

    def x(e: float) -> float:
        return left + pw * min(max(e, 0.0), hi) / hi

    segments = [(0.0, before, "#a0aec0", f"before this release ε {before:.3g}"),
                (before, after, "#3182ce", f"this release ε +{after - before:.3g} (composed)"),
                (after, cap, "#ffffff", f"remaining ε {max(cap - after, 0):.3g}")]
    parts = [_open(width, 86, "dataset budget"),
             f'<text x="{left}" y="16" {FONT} font-size="12" font-weight="600">Dataset budget '
             f'(cap ε = {cap:.3g}; PLD composition of every spend)</text>']
    for lo, hi_, colour, title in segments:
        if hi_ > lo:
            parts.append(f'<rect x="{x(lo):.1f}" y="{top}" width="{x(hi_) - x(lo):.1f}" '
                         f'height="{bar}" fill="{colour}" stroke="#718096"><title>'
                         f'{escape(title)}</title></rect>')
    legend_x = left
    for _, _, colour, title in segments:
        parts.append(f'<rect x="{legend_x}" y="{top + bar + 14}" width="12" height="12" '
                     f'fill="{colour}" stroke="#718096"/><text x="{legend_x + 17}" '
                     f'y="{top + bar + 24}" {FONT} font-size="11">{escape(title)}</text>')
        legend_x += 250
    parts.append("</svg>")
    return "".join(parts)


PALETTE = ("#dd6b20", "#3182ce", "#38a169", "#805ad5", "#d53f8c", "#4a5568")


def line_chart(title: str, x_labels: Sequence[str], series: Mapping[str, Sequence[float]], *,
               bands: Mapping[str, tuple[Sequence[float], Sequence[float]]] | None = None,
               references: Mapping[str, float] | None = None, y_label: str = "",
               width: int = 560, height: int = 260) -> str:
    """Lines over ``x_labels`` (min-max whiskers from ``bands``), dashed ``references``."""
    left, right, top, bottom = 52, 170, 30, 46
    pw, ph = width - left - right, height - top - bottom
    values = [v for vs in series.values() for v in vs if v is not None]
    values += list((references or {}).values())
    for lo, hi in (bands or {}).values():
        values += [*lo, *hi]
    vmin, vmax = (min(values), max(values)) if values else (0.0, 1.0)
    pad = max((vmax - vmin) * 0.1, 1e-3)
    lo_, hi_ = vmin - pad, vmax + pad
    n = max(len(x_labels), 2)

    def x(i: float) -> float:
        return left + pw * i / (n - 1)

    def y(v: float) -> float:
        return top + ph * (1 - (v - lo_) / (hi_ - lo_))

    parts = [_open(width, height, title),
             f'<text x="{left}" y="16" {FONT} font-size="12" font-weight="600">'
             f'{escape(title)}</text>',
             f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" '
             'stroke="#a0aec0"/>',
             f'<text x="12" y="{top + ph / 2:.0f}" {FONT} font-size="10" '
             f'transform="rotate(-90 12 {top + ph / 2:.0f})" text-anchor="middle">'
             f'{escape(y_label)}</text>']
    for t in nice_ticks(hi_, 5):
        if lo_ <= t <= hi_:
            parts.append(f'<line x1="{left}" x2="{left + pw}" y1="{y(t):.1f}" y2="{y(t):.1f}" '
                         f'stroke="#edf2f7"/><text x="{left - 4}" y="{y(t) + 3:.1f}" '
                         f'text-anchor="end" {FONT} font-size="9">{t:g}</text>')
    for i, lab in enumerate(x_labels):
        parts.append(f'<text x="{x(i):.1f}" y="{top + ph + 14}" text-anchor="middle" {FONT} '
                     f'font-size="9">{escape(_short(str(lab), 10))}</text>')
    legend_y = top + 4
    for k, (name, ref) in enumerate((references or {}).items()):
        parts.append(_reference(left, pw, y(ref), legend_y, PALETTE[-1 - k % 2], name, ref))
        legend_y += 16
    for k, (name, vs) in enumerate(series.items()):
        colour = PALETTE[k % (len(PALETTE) - 2)]
        pts = [(x(i), y(v)) for i, v in enumerate(vs) if v is not None]
        if bands and name in bands:
            for i, (a, b) in enumerate(zip(*bands[name], strict=True)):
                parts.append(f'<line x1="{x(i):.1f}" x2="{x(i):.1f}" y1="{y(a):.1f}" '
                             f'y2="{y(b):.1f}" stroke="{colour}" stroke-opacity=".45"/>')
        path = " ".join(f"{px:.1f},{py:.1f}" for px, py in pts)
        parts.append(f'<polyline points="{path}" fill="none" stroke="{colour}" '
                     'stroke-width="2"/>')
        parts += [f'<circle cx="{px:.1f}" cy="{py:.1f}" r="3" fill="{colour}"><title>'
                  f'{escape(name)} {escape(str(x_labels[i]))}: {v:.3f}</title></circle>'
                  for i, ((px, py), v) in enumerate(zip(pts, [v for v in vs if v is not None],
                                                         strict=True))]
        parts.append(_key(left + pw + 10, legend_y, colour, name))
        legend_y += 16
    parts.append("</svg>")
    return "".join(parts)


def _reference(left: float, pw: float, y: float, legend_y: float, colour: str, name: str,
               value: float) -> str:
    """A dashed horizontal line at ``y`` and its legend entry."""
    return (f'<line x1="{left}" x2="{left + pw}" y1="{y:.1f}" y2="{y:.1f}" stroke="{colour}" '
            f'stroke-dasharray="5 4"><title>{escape(name)}: {value:.3f}</title></line>'
            + _key(left + pw + 10, legend_y, colour, f"{name} {value:.3f}", dashed=True))


def _key(x: float, y: float, colour: str, label: str, *, dashed: bool = False) -> str:
    dash = ' stroke-dasharray="4 3"' if dashed else ""
    return (f'<line x1="{x:.0f}" x2="{x + 16:.0f}" y1="{y:.0f}" y2="{y:.0f}" stroke="{colour}" '
            f'stroke-width="2"{dash}/><text x="{x + 20:.0f}" y="{y + 3:.0f}" {FONT} '
            f'font-size="10">{escape(_short(label, 26))}</text>')


__all__ = ["association_heatmap", "budget_bar", "legend", "line_chart", "marginal_chart"]
