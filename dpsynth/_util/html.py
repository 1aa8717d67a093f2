"""The style sheet shared by dpsynth's self-contained HTML reports (ledger, release, audit)."""

from __future__ import annotations

#: Inline CSS of every report page: layout, headings, metric cards, tables, budget bar.
BASE_CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:2rem auto;max-width:1100px;
color:#1a202c;line-height:1.45;padding:0 1rem}
h1{font-size:1.6rem;margin-bottom:.2rem}h2{margin-top:2.2rem;border-bottom:2px solid #e2e8f0}
.meta{color:#4a5568;font-size:.9rem}.ok{color:#276749}.bad{color:#c53030;font-weight:600}
.cards{display:flex;gap:1rem;flex-wrap:wrap;margin:1rem 0}
.card{border:1px solid #e2e8f0;border-radius:8px;padding:.7rem 1rem;min-width:150px}
.card .v{font-size:1.5rem;font-weight:600}.card .l{color:#4a5568;font-size:.85rem}
.bar{height:14px;background:#edf2f7;border-radius:7px;overflow:hidden;margin:.3rem 0 1rem}
.bar>div{height:100%;background:#3182ce}
table{border-collapse:collapse;width:100%;font-size:.85rem;margin:.5rem 0 1rem}
th,td{border-bottom:1px solid #e2e8f0;padding:.3rem .4rem;text-align:left;vertical-align:top}
th{background:#f7fafc}td.n{text-align:right;font-variant-numeric:tabular-nums}
.explain{background:#f7fafc;border-left:4px solid #3182ce;padding:.5rem 1rem;margin:1rem 0}
code{font-size:.8rem;word-break:break-all}
"""

__all__ = ["BASE_CSS"]
