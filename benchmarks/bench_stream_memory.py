"""Memory of the streamed encoding pass: pyarrow's Parquet pre-buffer cache against none.

The streamed fit's encoding pass (:meth:`dpsynth.data.stream.StreamedTable.encode`) is run
on the first ``--rows`` rows of a Parquet file (the 15-column table of ``bench_scale.py``),
in a child process per setting, which samples its resident memory (``/proc/self/status``:
VmRSS, RssAnon, RssFile) and pyarrow's allocated bytes every 5,242,880 rows (20 batches).
Settings: the Parquet reader with ``pre_buffer=True`` (pyarrow's default, which dpsynth used
until the reader was changed) and ``pre_buffer=False`` (what ``StreamedTable`` uses now);
then the DP discovery pass (:class:`~dpsynth.data.discover.DiscoveryCounts` of ``age``,
``hours-per-week``, ``occupation`` and ``region`` left undeclared) with ``pre_buffer=False``.
The baseline is measured in the same run; the figures to compare are the growth of RSS and
of pyarrow's allocations between the first and the last sample.

    python benchmarks/bench_stream_memory.py --rows 30000000 \\
        --path /tmp/dpsynth-bench-scale/adult15-100000000.parquet
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
EVERY = 20 * 262_144


def _status() -> dict[str, int]:
    out = {}
    with open("/proc/self/status") as fh:
        for line in fh:
            key = line.split(":")[0]
            if key in ("VmRSS", "RssAnon", "RssFile", "VmHWM"):
                out[key + "_MB"] = int(line.split()[1]) // 1024
    return out


def child(path: str, rows: int, pre_buffer: bool, discover: bool = False) -> dict:
    """Encode the first ``rows`` rows as ``StreamedTable.encode`` does, sampling memory
    (``discover``: accumulate the DP discovery counts of four undeclared columns instead, as
    the first pass of a streamed fit with undeclared domains does)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    sys.path.insert(0, str(HERE))
    from bench_scale import schema

    from dpsynth.data.stream import StreamedTable, code_dtype
    from dpsynth.synthesizers.marginal.binning import codecs_for

    original = pq.ParquetFile

    class Reader(original):  # type: ignore[misc, valid-type]
        def __init__(self, source, **kwargs):  # type: ignore[no-untyped-def]
            kwargs["pre_buffer"] = pre_buffer
            super().__init__(source, **kwargs)

    pq.ParquetFile = Reader  # type: ignore[misc]
    sch = schema()
    found = None
    if discover:
        from dpsynth.data.discover import DiscoveryCounts
        from dpsynth.schema import Column

        for name in ("age", "hours-per-week", "occupation", "region"):
            kind = "integer" if sch[name].kind == "integer" else "categorical"
            sch = sch.replace_column(Column(name, kind, public=False))
        found = DiscoveryCounts(sch, sch.undeclared())
    codecs = codecs_for(sch, 32) if found is None else []
    dtype = code_dtype([c.size for c in codecs])
    samples, n = [], 0
    t0 = time.process_time()
    with tempfile.TemporaryDirectory(prefix="bench-stream-memory-") as tmp, \
            open(Path(tmp) / "codes.bin", "wb") as fh:
        for frame in StreamedTable(Path(path)).batches(sch):
            if found is not None:
                found.add(frame)
            else:
                codes = np.empty((len(frame), len(codecs)), dtype=dtype)
                for i, codec in enumerate(codecs):
                    codes[:, i] = codec.encode(frame[codec.name])
                fh.write(codes.tobytes())
            n += len(frame)
            if n % EVERY < len(frame) or n >= rows:
                samples.append({"rows": n, **_status(),
                                "arrow_allocated_MB": pa.total_allocated_bytes() // 2**20})
            if n >= rows:
                break
    first, last = samples[0], samples[-1]
    return {
        "pass": "discovery counts" if discover else "encode", "pre_buffer": pre_buffer,
        "rows": n, "cpu_s": round(time.process_time() - t0, 1),
        "arrow_pool": pa.default_memory_pool().backend_name, "samples": samples,
        "rss_growth_MB": last["VmRSS_MB"] - first["VmRSS_MB"],
        "arrow_growth_MB": last["arrow_allocated_MB"] - first["arrow_allocated_MB"],
        "bytes_per_row_growth": round((last["VmRSS_MB"] - first["VmRSS_MB"]) * 2**20
                                      / max(last["rows"] - first["rows"], 1), 2),
        "peak_rss_MB": max(s["VmHWM_MB"] for s in samples),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--path", required=True, help="Parquet file of bench_scale.py's table")
    ap.add_argument("--rows", type=int, default=30_000_000)
    ap.add_argument("--out", default=str(HERE / "results" / "stream_memory.json"))
    ap.add_argument("--child", choices=["0", "1", "discover"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child is not None:
        print(json.dumps(child(args.path, args.rows, args.child == "1",
                               discover=args.child == "discover")))
        return
    runs = []
    for pre in ("1", "0", "discover"):
        env = {**os.environ, "PYTHONPATH": str(HERE.parent)}
        res = subprocess.run([sys.executable, __file__, "--path", args.path, "--rows",
                              str(args.rows), "--child", pre], capture_output=True, text=True,
                             env=env, check=True)
        runs.append(json.loads(res.stdout.strip().splitlines()[-1]))
        r = runs[-1]
        print(f"{r['pass']}, pre_buffer={r['pre_buffer']}: {r['rows']:,} rows, {r['cpu_s']} CPU-s, "
              f"peak {r['peak_rss_MB']} MB, RSS growth {r['rss_growth_MB']} MB "
              f"({r['bytes_per_row_growth']} B/row), arrow growth {r['arrow_growth_MB']} MB")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"path": args.path, "runs": runs}, indent=1) + "\n")
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
