"""Superseded by ``bench_dp_step.py``: the dpvae part of that benchmark.

Kept so that existing commands keep working::

    python benchmarks/bench_dpvae_step.py [--batch-sizes 256 1024] [--repeats 30] [--hooks]

runs ``bench_dp_step.py --models vae`` with the same options (``--hooks`` adds Opacus'
``hooks`` mode to ``bookkeeping`` and ``ghost``).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_dp_step  # noqa: E402


def main() -> None:
    args = [a for a in sys.argv[1:] if a != "--hooks"]
    modes = ["bookkeeping", "ghost"] + (["hooks"] if "--hooks" in sys.argv[1:] else [])
    sys.argv = [sys.argv[0], "--models", "vae", "--modes", *modes, *args]
    bench_dp_step.main()


if __name__ == "__main__":
    main()
