"""Does the synthetic reviews' narrow vocabulary explain the classifier's loss? (issue 17)

The fourteenth session found that a classifier trained on synthetic reviews loses 0.06 to one
trained on the real texts with the same (DP label model's) labels, and that 500 synthetic
reviews use half as much of the training vocabulary as 500 real ones. This probe asks how
much of the loss the vocabulary alone explains, without fitting or sampling anything: the
benchmark's classifier (``dpsynth.evaluate.text.text_classifier_score``) is trained on the
6,000 **real** training reviews with their real labels, three ways, and tested on the real
holdout:

* ``real``: as they are (real → real);
* ``real, words the synthetic reviews never use deleted``: so that the real texts keep only
  the vocabulary the synthetic ones have;
* ``real, as many tokens deleted at random``: a control that deletes the same share of the
  tokens, chosen at random (``--seeds`` seeds, each reported, and their mean), so that what
  is measured is *which* words go, not how many;
* ``real, re-joined``: nothing deleted, but the tokens joined by single spaces as the two
  rows above are, so that the rewriting alone is measured too.

Words are the library's tokens (:func:`dpsynth.evaluate.text.tokenize`: lower-cased words and
punctuation), the same as ``reference_vocabulary_used`` counts. (The fourteenth session's run
split on ``[\\w']+`` instead, which also dropped every punctuation mark from the rewritten
rows: ``docs/benchmarks.md`` gives both.)

The synthetic reviews are the 6,000 stored in a results file of ``bench_text_smollm_dp.py``
(``--results``, default the fourteenth session's 8-epoch run); their classifier score is read
from the same file. A diagnosis on the evaluation corpus: it reads the real labels, and
nothing here is tuned.

    python benchmarks/text_vocab_probe.py --out benchmarks/results/text_vocab_probe_reviews.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_text_smollm_dp import review_split  # noqa: E402

from dpsynth.evaluate import text as tq  # noqa: E402

HERE = Path(__file__).resolve().parent


def words(text: str) -> list[str]:
    return tq.tokenize(text)


def keep_words(text: str, keep: Any) -> str:
    """``text`` with the words for which ``keep(word)`` is false removed."""
    return " ".join(w for w in words(text) if keep(w))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path,
                        default=HERE / "results" / "text_smollm_dp_reviews_eps8_epochs8.json")
    parser.add_argument("--seeds", type=int, default=5,
                        help="seeds of the random-deletion control (0, 1, ...)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    stored = json.loads(args.results.read_text())
    synthetic = [str(t) for t in stored["samples"]]
    train, hold = review_split(6000, 1000, seed=0)
    vocab = {w for t in synthetic for w in words(t)}
    real_tokens = [w for t in train.text for w in words(t)]
    outside = float(np.mean([w not in vocab for w in real_tokens]))
    real_types = set(real_tokens)

    def score(texts: list[str]) -> float:
        return tq.text_classifier_score(texts, train.source, hold.text,
                                        hold.source)["accuracy"]

    narrowed = [keep_words(t, vocab.__contains__) for t in train.text]

    def at_random(seed: int) -> list[str]:
        rng = np.random.default_rng(seed)
        return [keep_words(t, lambda _: rng.random() >= outside) for t in train.text]

    controls = [score(at_random(seed)) for seed in range(args.seeds)]
    results: dict[str, Any] = {
        "results_file": args.results.name,
        "synthetic_records": len(synthetic),
        "synthetic_word_types": len(vocab),
        "real_word_types": len(real_types),
        "real_types_in_synthetic_vocabulary": len(real_types & vocab) / len(real_types),
        "real_tokens_outside_synthetic_vocabulary": outside,
        "rows": [
            {"way": "real", "accuracy": score(list(train.text))},
            {"way": "real, words the synthetic reviews never use deleted",
             "accuracy": score(narrowed)},
            {"way": "real, re-joined", "accuracy": score([keep_words(t, lambda _: True)
                                                          for t in train.text])},
            {"way": "real, as many tokens deleted at random", "accuracy": float(np.mean(controls)),
             "by_seed": controls},
            {"way": "synthetic (stored), labels from the DP label model",
             "accuracy": stored["classifier_synthetic_to_real"]["accuracy"]},
        ],
    }
    print(json.dumps(results, indent=2))
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
