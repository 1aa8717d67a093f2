"""Start-up cost of dpsynth: CPU seconds each command pays before (and while) doing its work.

One command measures every case and writes one JSON file::

    python benchmarks/bench_startup.py --out benchmarks/results/startup.json
    python benchmarks/bench_startup.py --root /tmp/old-checkout --out before.json

Each case runs in a fresh child process (``python -c ...`` with ``--root`` first on
``PYTHONPATH``); its cost is the child's user + system CPU time, read from
``getrusage(RUSAGE_CHILDREN)`` around the run, and the figure kept is the median of
``--repeats`` runs. CPU time rather than wall time, because the machines are shared. A bare
``python -c pass`` is timed in the same run, so that figures from different machines compare as
ratios. CPU time still grows when other processes compete for the cores and caches (about
1.3x at a load average of 4 per core on a 2-core machine), so the load average at the start
and end is recorded too: compare runs made under similar load. Every case also records
whether torch ended up in ``sys.modules`` (an ``atexit`` hook in the child writes it), since
torch alone is most of the import cost.

The fixtures (a ledger with the bundled wage table registered, a fitted MST model directory)
are made with the code under ``--root`` before the timing starts and are not timed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

#: Prefix run in every child: report at exit whether torch was imported.
_PROBE = (
    "import atexit, os, sys\n"
    "def _probe():\n"
    "    with open(os.environ['BENCH_TORCH_FLAG'], 'w') as f:\n"
    "        f.write('1' if 'torch' in sys.modules else '0')\n"
    "atexit.register(_probe)\n"
)


def _cli(*args: str) -> str:
    """Child code that runs the ``dpsynth`` entry point with ``args``."""
    return (_PROBE + f"sys.argv = ['dpsynth', *{list(args)!r}]\n"
            "from dpsynth.cli import main\nmain()\n")


def _cases(work: Path) -> dict[str, str]:
    data, schema, ledger = work / "wage.csv", work / "wage.yaml", work / "ledger.sqlite"
    fit = ["fit", str(data), "--schema", str(schema), "--epsilon", "1", "--seed", "0"]
    return {
        "python -c pass": "pass",
        "import dpsynth": _PROBE + "import dpsynth\n",
        "import dpsynth.synthesizers": _PROBE + "import dpsynth.synthesizers\n",
        "import dpsynth.release": _PROBE + "import dpsynth.release\n",
        "dpsynth --help": _cli("--help"),
        "dpsynth budget show": _cli("budget", "show", "wage", "--ledger", str(ledger)),
        "dpsynth audit --help": _cli("audit", "--help"),
        "dpsynth sample (mst model, 100 rows)": _cli(
            "sample", str(work / "model-mst"), "--n-rows", "100", "--out", str(work / "x.csv")),
        "dpsynth fit aim (wage)": _cli(*fit, "--synthesizer", "aim", "--out",
                                       str(work / "fit-aim")),
        "dpsynth fit mst (wage)": _cli(*fit, "--synthesizer", "mst", "--out",
                                       str(work / "fit-mst")),
    }


def _env(root: Path, flag: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(root), *filter(None, [env.get("PYTHONPATH")])])
    env["BENCH_TORCH_FLAG"] = str(flag)
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def _run(code: str, env: dict[str, str], cwd: Path) -> float:
    """CPU seconds (user + system) of one child running ``code``; raises if it fails."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run([sys.executable, "-c", code], env=env, cwd=cwd, capture_output=True,
                          text=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(f"child failed ({done.returncode}): {done.stderr[-2000:]}")
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def _setup(root: Path, work: Path) -> None:
    """Write the wage table and schema, register it in a ledger, fit one MST model."""
    env = _env(root, work / "setup.flag")
    write = ("from dpsynth.datasets import load_dataset\n"
             "df, schema = load_dataset('wage')\n"
             f"df.to_csv({str(work / 'wage.csv')!r}, index=False)\n"
             f"schema.save({str(work / 'wage.yaml')!r})\n")
    subprocess.run([sys.executable, "-c", write], env=env, check=True)
    cli = "import sys; from dpsynth.cli import main; sys.argv = ['dpsynth', *sys.argv[1:]]; main()"
    subprocess.run([sys.executable, "-c", cli, "budget", "register", "wage", "--data",
                    str(work / "wage.csv"), "--schema", str(work / "wage.yaml"), "--epsilon",
                    "100", "--ledger", str(work / "ledger.sqlite")], env=env, check=True,
                   capture_output=True)
    subprocess.run([sys.executable, "-c", cli, "fit", str(work / "wage.csv"), "--schema",
                    str(work / "wage.yaml"), "--synthesizer", "mst", "--epsilon", "1", "--seed",
                    "0", "--out", str(work / "model-mst")], env=env, check=True,
                   capture_output=True)


def measure(root: Path, repeats: int, only: list[str] | None) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as tmp:
        work = Path(tmp)
        _setup(root, work)
        results: dict[str, object] = {}
        for name, code in _cases(work).items():
            if only and name != "python -c pass" and not any(o in name for o in only):
                continue
            flag = work / "torch.flag"
            times = [_run(code, _env(root, flag), work) for _ in range(repeats)]
            torch = flag.read_text() == "1" if flag.exists() else None
            flag.unlink(missing_ok=True)
            results[name] = {"cpu_s_median": round(statistics.median(times), 3),
                             "cpu_s_runs": [round(t, 3) for t in times],
                             "torch_imported": torch}
            print(f"{name:<40} {statistics.median(times):7.3f} CPU-s  torch={torch}",
                  flush=True)
    bare = results["python -c pass"]["cpu_s_median"]  # type: ignore[index]
    for entry in results.values():
        entry["ratio_to_bare_python"] = round(entry["cpu_s_median"] / bare, 1)  # type: ignore
    return results


def _commit(root: Path) -> str | None:
    done = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                          text=True)
    return done.stdout.strip() or None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[1],
                        help="checkout whose dpsynth is measured (default: this one)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--only", nargs="*", help="substrings of the case names to run")
    parser.add_argument("--out", type=Path, help="JSON file to write")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    results = measure(args.root.resolve(), args.repeats, args.only)
    doc = {"commit": _commit(args.root), "python": platform.python_version(),
           "machine": platform.machine(), "cpus": os.cpu_count(), "repeats": args.repeats,
           "load_average_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],
           "cases": results}
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(doc, indent=2) + "\n")


if __name__ == "__main__":
    main()
