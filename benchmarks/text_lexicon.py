"""Lexicon steering: the DP label model's scores of single words as a decoding bias.

An experiment for issue 17's classifier (declared in ``tune_text_guidance.py``'s docstring,
lever 5), not a library feature. The records a DP fine-tune writes for a control value carry
almost none of it (the records as drawn score 0.56-0.65 on real text), while the DP label
model the library trains beside it tells the values apart on real text (0.75-0.78). This
reads the label model as a lexicon and uses it while decoding, in the spirit of weighted
decoding with a word-level attribute scorer (Ghazvininejad et al., "Hafez", ACL 2017 demos;
Dathathri et al., "Plug and Play Language Models", ICLR 2020, bag-of-words attribute model;
Yang and Klein, "FUDGE", NAACL 2021):

* every token of the model's vocabulary that starts a word (a leading space, then at least
  three letters) is embedded as that word alone with the label model's public embedder and
  scored by the label model: ``z[t, c]``, the centred log-probability of control cell ``c``;
* each cell's column is standardised over the scored tokens (minus its median, divided by
  its standard deviation), so a neutral word gets about 0 and ``beta`` is in standard
  deviations;
* when decoding for cell ``c`` every step's next-token scores get ``beta * s[t, c]`` added
  (:meth:`~dpsynth.synthesizers.text.hf.HFBackend.generate`'s ``bias``); other tokens get 0.

Only the released label model, the public embedder and the public vocabulary are read, so it
is post-processing and costs no budget. The library's relabelling of the drawn texts runs
after it as usual.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch

from dpsynth.errors import ParameterError
from dpsynth.synthesizers.text import codec
from dpsynth.synthesizers.text.labeller import embed

MIN_LETTERS = 3


def word_tokens(tokenizer: Any, vocab: int) -> tuple[np.ndarray, list[str]]:
    """Ids and words of the tokens below ``vocab`` that start a word of letters."""
    ids, words = [], []
    for i in range(vocab):
        piece = tokenizer.decode([i])
        word = piece[1:]
        if piece.startswith(" ") and len(word) >= MIN_LETTERS and word.isascii() \
                and word.isalpha():
            ids.append(i)
            words.append(word)
    return np.asarray(ids, dtype=np.int64), words


def lexicon_scores(synth: Any) -> tuple[np.ndarray, list[str], np.ndarray, list[str]]:
    """``(ids, words, s, headers)``: the standardised scores ``s`` ``(words, cells)`` of the
    word-start tokens ``ids``, and the decoding header of each cell."""
    labels = getattr(synth, "labels_", None)
    if labels is None or synth.controls_ is None:
        raise ParameterError("Lexicon steering needs a model fitted with its DP label model.")
    if getattr(synth, "topics_", None) is not None:
        raise ParameterError("Lexicon steering is not written for models with DP topics.")
    backend = synth.backend_
    vocab = int(backend.wrapper.lm.get_output_embeddings().weight.shape[0])
    ids, words = word_tokens(backend.tokenizer, vocab)
    z = labels.log_probs(embed(words, labels.embedder))
    z = z - z.mean(axis=1, keepdims=True)
    s = (z - np.median(z, axis=0)) / np.maximum(z.std(axis=0), 1e-12)
    headers = [codec.header(dict(zip(synth.control_columns_, combo, strict=True)))
               for combo in synth.controls_.domain]
    return ids, words, s, headers


def lexicon_bias(synth: Any, beta: float,
                 scores: tuple[np.ndarray, list[str], np.ndarray, list[str]] | None = None
                 ) -> dict[str, torch.Tensor]:
    """The ``(vocab,)`` decoding bias of each header at strength ``beta``."""
    ids, _, s, headers = lexicon_scores(synth) if scores is None else scores
    vocab = int(synth.backend_.wrapper.lm.get_output_embeddings().weight.shape[0])
    out = {}
    for c, head in enumerate(headers):
        vec = torch.zeros(vocab)
        vec[torch.as_tensor(ids)] = torch.as_tensor(beta * s[:, c], dtype=torch.float32)
        out[head] = vec
    return out


def top_words(scores: tuple[np.ndarray, list[str], np.ndarray, list[str]], k: int = 15
              ) -> dict[str, list[str]]:
    """The ``k`` words each header's bias favours most."""
    _, words, s, headers = scores
    return {h: [words[i] for i in np.argsort(-s[:, c])[:k]] for c, h in enumerate(headers)}


@contextmanager
def steered(synth: Any, bias: dict[str, torch.Tensor] | None) -> Iterator[None]:
    """Within the block, ``synth``'s backend decodes each header with its ``bias``."""
    if not bias:
        yield
        return
    backend = synth.backend_
    plain = backend.generate

    def generate(head: str, n: int, **kwargs: Any) -> list[str]:
        return plain(head, n, bias=bias.get(head), **kwargs)

    backend.generate = generate
    try:
        yield
    finally:
        del backend.generate
