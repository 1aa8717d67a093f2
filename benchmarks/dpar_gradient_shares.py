"""Where a dpar row's gradient lies, on the tuning tables: a diagnostic, nothing tuned on it.

For 256 training rows of a tuning table (split of seed 0), the per-row gradient of dpar's
row loss is taken at the initial weights and at the weights trained without DP (the
library's ``epsilon=inf`` fit, seed 0), and split into the groups of the twentieth
session's group-wise clipping experiment (:func:`dpar_experiments.column_groups`): one per
column (its head and its values' embedding rows) and the trunk. Printed per table and
state: the median per-row norm (DP-SGD clips it to ``max_grad_norm``, 1 by default) and each
group's mean share of the squared norm, beside the shares the experiment's clip gave them
(``a`` = 0 and 0.5).

    OMP_NUM_THREADS=1 python benchmarks/dpar_gradient_shares.py hmda affairs houseprices
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import warnings  # noqa: E402

import bench_table_models as bench  # noqa: E402
import dpar_experiments as exp  # noqa: E402
from tune_dpar import TUNING_TABLES  # noqa: E402


def shares(table_name: str, rows: int = 256) -> list[dict[str, object]]:
    """One record per model state: the median row norm and the groups' squared shares."""
    import torch

    from dpsynth.synthesizers.ar import DPARSynthesizer
    from dpsynth.synthesizers.ar.model import build_model

    table = bench.LOADERS[table_name]()
    train, _ = bench.split(table, 0)
    fitted = DPARSynthesizer(epsilon=float("inf"), random_state=0).fit(train, table.schema)
    tokens = torch.from_numpy(fitted.tokenizer_.transform(train))[:rows]
    start = build_model(fitted._config(), 0)  # the fitted model's shape, fresh weights
    out = []
    for state, model in (("initial", start), ("trained without DP", fitted.model_)):
        groups = exp.column_groups(model)
        _, flat = exp._per_row_gradients(model)
        g = flat(tokens)
        n = int(groups.max()) + 1
        squares = torch.zeros(len(g), n).index_add_(1, groups, g * g)
        share = (squares / squares.sum(1, keepdim=True)).mean(0)
        sizes = torch.bincount(groups).double()
        out.append({"table": table_name, "state": state,
                    "groups": [*train.columns, "trunk"],
                    "median_row_norm": round(float(g.norm(dim=1).median()), 2),
                    "share": [round(float(v), 3) for v in share],
                    "clip_share_a0": [round(1 / n, 3)] * n,
                    "clip_share_a05": [round(float(v), 3) for v in sizes / sizes.sum()]})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tables", nargs="+", choices=TUNING_TABLES)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    warnings.filterwarnings("ignore", message="There is a performance drop")
    for name in args.tables:
        for record in shares(name):
            print(json.dumps(record), flush=True)


if __name__ == "__main__":
    main()
