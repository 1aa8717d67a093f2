"""A whole streamed AIM fit with undeclared domains: CPU time and peak memory.

AIM (epsilon 1, seed 0) fits from a Parquet file of ``bench_scale.py``'s 15-column table with
the domains of ``age``, ``hours-per-week``, ``occupation`` and ``region`` left undeclared, so
the fit first runs the DP discovery pass over the batches, then the encoding pass, then the
model fit. One fit per process (peak RSS is ``ru_maxrss``):

    python benchmarks/bench_stream_discovery.py /tmp/h3-scale/adult15-10000000.parquet \\
        /tmp/h3-scale/adult15-30000000.parquet
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
UNDECLARED = ("age", "hours-per-week", "occupation", "region")


def child(path: str) -> dict:
    sys.path.insert(0, str(HERE))
    from bench_scale import schema

    from dpsynth.schema import Column
    from dpsynth.synthesizers import create

    sch = schema()
    for name in UNDECLARED:
        kind = "integer" if sch[name].kind == "integer" else "categorical"
        sch = sch.replace_column(Column(name, kind, public=False))
    t0, c0 = time.perf_counter(), time.process_time()
    synth = create("aim", epsilon=1.0, random_state=0).fit(path, sch)
    found = {c: [synth.schema_[c].lower, synth.schema_[c].upper]
             if synth.schema_[c].lower is not None else list(synth.schema_[c].categories)
             for c in sch.undeclared()}
    return {"path": path, "undeclared": sch.undeclared(), "rows": synth.n_rows_,
            "cpu_s": round(time.process_time() - c0, 1),
            "wall_s": round(time.perf_counter() - t0, 1),
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
            "epsilon": synth.privacy_.epsilon,
            "spends": [s.purpose for s in synth.privacy_.spends][:4], "discovered": found}


def main() -> None:
    if sys.argv[1:2] == ["--child"]:
        print(json.dumps(child(sys.argv[2])))
        return
    env = {**os.environ, "PYTHONPATH": str(HERE.parent)}
    runs = []
    for path in sys.argv[1:]:
        out = subprocess.run([sys.executable, __file__, "--child", path], capture_output=True,
                             text=True, env=env, check=True)
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(runs[-1], flush=True)
    target = HERE / "results" / "scale_stream_discovery.json"
    target.write_text(json.dumps({"runs": runs}, indent=1) + "\n")
    print(f"-> {target}")


if __name__ == "__main__":
    main()
