"""Lexicon steering: the DP label model read as a word list, used as a decoding bias.

A language model fine-tuned under DP learns the corpus' style but only faintly how a control
value (a review's verdict) shapes the text: the records it writes for one value are hardly
told apart from those for another. The DP label model (:mod:`.labeller`) tells the values
apart on real text far better. Weighted decoding with a word-level attribute scorer
(Ghazvininejad et al., "Hafez: an interactive poetry generation system", ACL 2017 demos; the
bag-of-words attribute model of Dathathri et al., "Plug and Play Language Models", ICLR 2020)
carries that knowledge into the text:

* every token of the model's vocabulary that starts a word (a leading space, then at least
  ``MIN_LETTERS`` ASCII letters) is embedded as that word alone with the label model's
  public embedder, and the label model scores it: ``z[t, c]``, the centred log-probability of
  control cell ``c``;
* each cell's scores are standardised over the scored tokens (the median subtracted, divided
  by the standard deviation), so that a neutral word gets about 0; other tokens get 0;
* when decoding a record for cell ``c``, ``strength * s[c, t]`` is added to every step's
  next-token scores (:meth:`~dpsynth.synthesizers.text.hf.HFBackend.generate`'s ``bias``).

Only the released label model, the public embedder and the public vocabulary are read:
post-processing, no budget. The label model's relabelling of the drawn texts runs after it
as before. The default strength was chosen on the declared fine-food tuning corpus
(``benchmarks/tune_text_guidance.py``, levers 5 and 6; ``docs/benchmarks.md``).
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from dpsynth.synthesizers.text.labeller import LabelModel, embed

#: Letters a word-start token needs to be scored (shorter pieces are mostly word fragments).
MIN_LETTERS = 3
#: Default strength (``DPTextSynthesizer(steering=...)``), chosen on the fine-food tuning
#: reviews: 0.25 / 0.35 / 0.5 gave the classifier 0.739 / 0.767 / 0.767 and MAUVE 0.561 /
#: 0.577 / 0.482 (three draws each; unsteered 0.725 and 0.598).
DEFAULT_STRENGTH = 0.35


def word_start_tokens(tokenizer: Any, vocab: int) -> tuple[np.ndarray, list[str]]:
    """Ids below ``vocab`` of the tokens that start a word of letters, and those words."""
    ids, words = [], []
    for i in range(min(vocab, len(tokenizer))):
        piece = tokenizer.decode([i])
        word = piece[1:]
        if piece.startswith(" ") and len(word) >= MIN_LETTERS and word.isascii() \
                and word.isalpha():
            ids.append(i)
            words.append(word)
    return np.asarray(ids, dtype=np.int64), words


@functools.lru_cache(maxsize=1)
def _embedded(words: tuple[str, ...], embedder: str) -> np.ndarray:
    """The public embeddings of a vocabulary's words (the costly part: 33 CPU-seconds for
    SmolLM2's 30,570 with MiniLM), kept for the next fit with the same model and embedder."""
    out = np.asarray(embed(list(words), embedder), dtype=np.float32)
    out.setflags(write=False)
    return out


def lexicon(labels: LabelModel, tokenizer: Any, vocab: int) -> np.ndarray:
    """The standardised word scores ``(cells, vocab)`` (float32; 0 off the scored tokens)."""
    ids, words = word_start_tokens(tokenizer, vocab)
    out = np.zeros((labels.cells, vocab), dtype=np.float32)
    if len(ids) < 2:
        return out
    z = labels.log_probs(_embedded(tuple(words), labels.embedder))
    z = z - z.mean(axis=1, keepdims=True)
    s = (z - np.median(z, axis=0)) / np.maximum(z.std(axis=0), 1e-12)
    out[:, ids] = s.T
    return out


def top_words(scores: np.ndarray, tokenizer: Any, k: int = 10) -> list[list[str]]:
    """The ``k`` words each cell's steering favours most (for the model card)."""
    return [[tokenizer.decode([int(i)]).strip() for i in np.argsort(-row)[:k]]
            for row in scores]
