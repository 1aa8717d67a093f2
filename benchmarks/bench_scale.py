"""Tables bigger than memory: fit and sample time, peak memory and counting throughput.

A 15-column table is made by resampling Adult (``benchmarks/data/adult.csv``, 14 columns,
plus a text ``region`` column derived from ``native-country``) and written once to Parquet
(row groups of 1,000,000 rows, generated chunk by chunk). Each measurement runs in a child
process so that its peak memory (``resource.getrusage(RUSAGE_CHILDREN).ru_maxrss``) is its
own: an AIM fit from the file (``stream``: batches encoded to codes on disk, counted chunk by
chunk; ``ray``: counted by Ray Data tasks; ``memory``: today's path, the table read into
pandas), sampling to Parquet in chunks, and the counting throughput of one 2-way marginal
against the engine's own ceiling (a numpy bincount of the same codes in memory, and a
pyarrow group-by count of the same two columns of the Parquet file). ``--modes release``
adds the audit-gated release of the file (``release``: read in batches, holdout by a row-key
hash, the gate on samples of ``--sample-rows`` rows, the bundle drawn in chunks; and, up to
``--memory-max-rows``, ``release_memory``: the same release of the table read into pandas).

    python benchmarks/bench_scale.py --rows 1000000 10000000 --modes memory stream
    python benchmarks/bench_scale.py --rows 1000000 5000000 --modes release \
        --skip sample count --out benchmarks/results/scale_release.json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
ADULT = HERE / "data" / "adult.csv"
DOMAIN = HERE / "data" / "adult-domain.json"
REGIONS = ("north", "south", "east", "west", "abroad")
GEN_CHUNK = 1_000_000


def schema():
    from dpsynth.schema import Column, Schema

    dom = json.loads(DOMAIN.read_text())
    cols = []
    for name, size in dom.items():
        if size <= 20:
            cols.append(Column(name, "categorical", categories=tuple(range(size)), public=True))
        else:
            cols.append(Column(name, "integer", lower=0, upper=size - 1, public=True))
    cols.append(Column("region", "categorical", categories=REGIONS, public=True))
    return Schema(tuple(cols))


def make_table(n_rows: int, path: Path, seed: int = 0) -> Path:
    """``n_rows`` rows resampled from Adult, written chunk by chunk (bounded memory)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if path.exists() and pq.ParquetFile(path).metadata.num_rows == n_rows:
        return path
    adult = pd.read_csv(ADULT)
    adult["region"] = np.asarray(REGIONS, dtype=object)[adult["native-country"].to_numpy() % 5]
    rng = np.random.default_rng(seed)
    tmp = path.with_suffix(".partial")
    writer = None
    for start in range(0, n_rows, GEN_CHUNK):
        k = min(GEN_CHUNK, n_rows - start)
        part = adult.iloc[rng.integers(0, len(adult), k)].reset_index(drop=True)
        table = pa.Table.from_pandas(part, preserve_index=False)
        if writer is None:
            writer = pq.ParquetWriter(str(tmp), table.schema)
        writer.write_table(table)
    assert writer is not None
    writer.close()
    tmp.replace(path)
    return path


# -- children (one measurement each) ----------------------------------------------------------
def _child_fit(path: Path, mode: str, rounds: int | None) -> dict:
    from dpsynth.synthesizers import create

    params = {"rounds": rounds} if rounds else {}
    synth = create("aim", epsilon=1.0, random_state=0, **params)
    if mode == "memory":
        from dpsynth.data.io import read_table

        data = read_table(path, schema=schema())
    elif mode == "ray":
        from dpsynth.data import RayTable

        data = RayTable(path, num_cpus=2)
    else:
        data = path
    synth.fit(data, schema())
    synth.save(path.parent / f"model-{mode}-{path.stem}")
    return {"rounds": len(getattr(synth, "selection_log_", ()))}


def _child_release(path: Path, mode: str, synthesizer: str, rounds: int | None,
                   sample_rows: int) -> dict:
    """One release of the file, streamed or from pandas, into a fresh ledger and bundle."""
    import shutil

    from dpsynth.accounting import Budget
    from dpsynth.release import release

    work = path.parent / f"release-{mode}-{path.stem}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    data: object = path
    if mode == "memory":
        from dpsynth.data.io import read_table

        data = read_table(path, schema=schema())
    params = {"rounds": rounds} if rounds and synthesizer == "aim" else None
    stages: dict[str, float] = {}
    peaks: dict[str, float] = {}
    last = [time.process_time()]

    def progress(stage: str, done: int, total: int) -> None:
        if done == total:
            key = stage.split(":")[-1].strip()
            stages[key] = stages.get(key, 0.0) + time.process_time() - last[0]
            peaks[key] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        last[0] = time.process_time()

    result = release(data, schema(), epsilon=1.0, dataset="bench",
                     ledger=work / "ledger.sqlite", cap=Budget(10, 1e-9),
                     synthesizer=synthesizer, synthesizer_params=params, target="income>50K",
                     positive=1, random_state=0, out=work / "bundle", sample_rows=sample_rows,
                     progress=progress)
    card = result.card
    bundle = work / "bundle" / "synthetic.parquet"
    out = {"decision": card.decision, "n_train": card.source["n_train"],
           "n_holdout": card.source["n_holdout"], "audit_n_train": card.audit.n_train,
           "audit_n_holdout": card.audit.n_holdout, "audit_n_synthetic": card.audit.n_synthetic,
           "synthetic_rows": card.synthetic["n_rows"],
           "synthetic_parquet_mb": bundle.stat().st_size / 2**20 if bundle.exists() else None,
           "stage_cpu_s_approx": stages, "peak_rss_mb_after_stage": peaks}
    shutil.rmtree(work, ignore_errors=True)
    return out


def _child_sample(path: Path, n_rows: int) -> dict:
    from dpsynth.synthesizers import BaseSynthesizer

    synth = BaseSynthesizer.load(path.parent / f"model-stream-{path.stem}")
    out = path.parent / f"sample-{n_rows}.parquet"
    synth.sample_to(out, n_rows, random_state=0)
    size = out.stat().st_size
    out.unlink()
    return {"bytes": size}


def _child_count(path: Path) -> dict:
    import pyarrow.dataset as pads

    from dpsynth.data.stream import StreamedTable
    from dpsynth.synthesizers.marginal.binning import codecs_for
    from dpsynth.synthesizers.marginal.counts import ChunkedCounts, FileChunks

    sch = schema()
    codecs = codecs_for(sch, 32)
    domain = [c.size for c in codecs]
    a, b = 0, 11  # age x hours-per-week: 85 x 99 cells
    out: dict = {}
    t0 = time.process_time()
    with StreamedTable(path).encode(sch, codecs) as codes:
        out["encode_rows_per_cpu_s"] = len(codes) / (time.process_time() - t0)
        n = len(codes)
        chunks = FileChunks(str(getattr(codes, "filename", "")), n, codes.shape[1], codes.dtype)
        t0 = time.process_time()
        ChunkedCounts(chunks).counts([(a, b)], domain)
        out["count_2way_rows_per_cpu_s"] = n / (time.process_time() - t0)
        t0 = time.process_time()
        ChunkedCounts(chunks).counts([(i,) for i in range(15)], domain)
        out["count_1way_x15_rows_per_cpu_s"] = n / (time.process_time() - t0)
        pairs = [(i, j) for i in range(15) for j in range(i + 1, 15)]
        t0 = time.process_time()
        ChunkedCounts(chunks).counts(pairs, domain)
        out["count_105_pairs_one_pass_cpu_s"] = time.process_time() - t0
        if n <= 20_000_000:
            cols = np.asarray(codes[:, [a, b]], dtype=np.intp)
            flat = cols[:, 0] * domain[b] + cols[:, 1]
            t0 = time.process_time()
            np.bincount(flat, minlength=domain[a] * domain[b])
            out["ceiling_numpy_bincount_rows_per_cpu_s"] = n / (time.process_time() - t0)
    names = [c.name for c in sch.data_columns]
    t0 = time.process_time()
    table = pads.dataset(str(path)).to_table(columns=[names[a], names[b]])
    table.group_by([names[a], names[b]]).aggregate([([], "count_all")])
    out["ceiling_pyarrow_groupby_rows_per_cpu_s"] = n / (time.process_time() - t0)
    return out


def child(args: argparse.Namespace) -> None:
    t0, c0 = time.perf_counter(), time.process_time()
    path = Path(args.path)
    if args.what == "fit":
        extra = _child_fit(path, args.mode, args.rounds)
    elif args.what == "release":
        extra = _child_release(path, args.mode, args.synthesizer, args.rounds, args.sample_rows)
    elif args.what == "sample":
        extra = _child_sample(path, args.n_rows)
    else:
        extra = _child_count(path)
    extra.update(wall_s=time.perf_counter() - t0, cpu_s=time.process_time() - c0,
                 peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    print("RESULT " + json.dumps(extra))


def run_child(*argv: str) -> dict:
    """Run one measurement in a fresh process, which reports its own peak RSS (Ray's worker
    processes are not counted: see the ``ray_workers`` note in the results)."""
    env = {**os.environ, "PYTHONPATH": str(HERE.parent)}
    proc = subprocess.run([sys.executable, __file__, "child", *argv], capture_output=True,
                          text=True, env=env, check=False)
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "?"}
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT "):])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd")
    c = sub.add_parser("child")
    c.add_argument("what", choices=["fit", "sample", "count", "release"])
    c.add_argument("--synthesizer", default="mst")
    c.add_argument("--sample-rows", type=int, default=100_000)
    c.add_argument("--path", required=True)
    c.add_argument("--mode", default="stream")
    c.add_argument("--rounds", type=int, default=None)
    c.add_argument("--n-rows", type=int, default=0)
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--modes", nargs="+", default=["memory", "stream", "ray"])
    parser.add_argument("--rounds", type=int, default=None,
                        help="AIM rounds (default: AIM's own, 30 at epsilon 1 for 15 columns)")
    parser.add_argument("--release-synthesizer", default="mst",
                        help="Generator of the release measurement (aim or mst).")
    parser.add_argument("--sample-rows", type=int, default=100_000,
                        help="Rows the release's gate reads at most (each side).")
    parser.add_argument("--memory-max-rows", type=int, default=10_000_000,
                        help="Largest table the in-memory path is run on.")
    parser.add_argument("--skip", nargs="*", default=[], choices=["sample", "count"],
                        help="Measurements left out (e.g. at 100M rows on a busy machine).")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/dpsynth-bench-scale"))
    parser.add_argument("--out", type=Path, default=HERE / "results" / "scale.json")
    args = parser.parse_args()
    if args.cmd == "child":
        child(args)
        return
    args.workdir.mkdir(parents=True, exist_ok=True)
    results: dict = {"machine": {"cpus": os.cpu_count(),
                                 "load_average_at_start": os.getloadavg()},
                     "notes": "peak_rss_mb: the measuring process' own ru_maxrss (for ray: the "
                              "driver only; Ray's workers and object store are extra). cpu_s: "
                              "that process' CPU time (ray: the driver's).",
                     "runs": []}
    for n in args.rows:
        path = make_table(n, args.workdir / f"adult15-{n}.parquet")
        row: dict = {"rows": n, "parquet_mb": path.stat().st_size / 2**20}
        extra = ["--rounds", str(args.rounds)] if args.rounds else []
        # sampling reads the streamed model, so "stream" is fitted first unless skipped
        fits = [m for m in args.modes if m not in ("stream", "release")]
        first = ["stream"] if "stream" in args.modes or "sample" not in args.skip else []
        for mode in [*first, *fits]:
            if mode == "memory" and n > args.memory_max_rows:
                continue
            row[f"fit_{mode}"] = run_child("fit", "--path", str(path), "--mode", mode, *extra)
            print(n, mode, row[f"fit_{mode}"], flush=True)
        if "release" in args.modes:
            for mode in ("stream", "memory"):
                if mode == "memory" and n > args.memory_max_rows:
                    continue
                key = "release" if mode == "stream" else "release_memory"
                row[key] = run_child("release", "--path", str(path), "--mode", mode,
                                     "--synthesizer", args.release_synthesizer,
                                     "--sample-rows", str(args.sample_rows), *extra)
                print(n, key, row[key], flush=True)
        if "sample" not in args.skip:
            row["sample"] = run_child("sample", "--path", str(path), "--n-rows", str(n))
            print(n, "sample", row["sample"], flush=True)
        if "count" not in args.skip:
            row["count"] = run_child("count", "--path", str(path))
            print(n, "count", row["count"], flush=True)
        results["runs"].append(row)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
