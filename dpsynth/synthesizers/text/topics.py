"""DP topic clusters of the text itself, for corpora without a label (the CTCL-style recipe).

When a corpus has no categorical column to condition on, its records are grouped into topics
with differential privacy and the topic becomes a control code (Tan et al., "Synthesizing
Privacy-Preserving Text Data via Finetuning without Finetuning Billion-Scale LLMs" (CTCL),
ICML 2025, release a DP histogram over topics of a public embedding space; Yue et al., ACL
2023, condition on control codes). Three steps, each with bounded contribution per record:

1. **A public embedding of each record.** With a Hugging Face model (SmolLM2 by default) the
   mean-pooled last hidden state of the *public pretrained* model over the record's text
   tokens, centred by the mean embedding of a fixed list of public sentences
   (:data:`PUBLIC_SEED_TEXTS`; hidden states of language models share one dominant
   direction, Ethayarajh, EMNLP 2019, which would otherwise swamp the topics). With the byte
   model, signed feature hashing (Weinberger et al., ICML 2009) of the record's lower-cased
   words outside a short public stop list: public and deterministic, and it needs no
   vocabulary or inverse document frequencies fitted to the private corpus (which would be a
   release of their own). The embedding is then scaled to unit L2 norm, mapped to
   :data:`TOPIC_DIM` dimensions by a random orthonormal projection drawn without the data
   (Johnson and Lindenstrauss, 1984: angles are roughly kept) and scaled to unit norm again
   (a zero vector stays zero). One record therefore moves any sum by at most 1, and the
   noise of a sum has norm ``sigma * sqrt(TOPIC_DIM)`` instead of ``sigma * sqrt(576)`` for
   SmolLM2: DP k-means loses accuracy with the dimension (Su et al. 2016, below), so it runs
   in the small space.
2. **DP k-means** (Su et al., "Differentially Private k-Means Clustering", CODASPY 2016,
   the Gaussian variant of their DPLloyd): ``iterations`` Lloyd steps from centres chosen
   without the data (farthest-point traversal over the public sentences' embeddings, then
   random unit vectors). Each step assigns every record to its nearest centre and releases,
   per cluster, the sum of its records and their count with the Gaussian mechanism. A record
   adds ``(x, 1) / sqrt(2)`` to exactly one cluster's (sum, count), a vector of L2 norm at
   most 1, so each step is one Gaussian mechanism of sensitivity 1 and the ``iterations``
   steps compose as ``GaussianEvent(sigma, count=iterations)`` in the PLD accountant, with
   ``sigma`` calibrated before the data is read. Centres are projected onto the unit ball.
   A centre whose noisy count is at most the noise's own norm (``sigma * sqrt(d)``; 0
   without noise) cannot be estimated: it moves next to the centre with the largest noisy
   count, displaced by a small random step, so that a cluster holding two groups is split
   at the next step (the usual remedy for empty clusters of Lloyd's iteration). All of this
   is post-processing of released values.
3. **The topic of a record** is its nearest released centre (post-processing). The topic
   joins the record's control header; its histogram, jointly with the categorical controls,
   is released by the existing Gaussian control histogram
   (:mod:`~dpsynth.synthesizers.text.controls`).

What a topic means is shown without further cost as the public whole-word tokens whose
output embedding (projected like the records) is most aligned with how the released centre
differs from the mean of the centres: post-processing of the centres with the public model.
On tweets these words are weak labels (``docs/benchmarks.md``); the byte model's topics have
ids only (hashed features cannot be read back).
"""

from __future__ import annotations

import math
import re
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

import numpy as np

from dpsynth.accounting import NoiseSource

#: The control column the topic is written under (in the header, never in the output table).
TOPIC_COLUMN = "topic"
#: Lloyd steps of the DP k-means (Su et al. 2016 found a handful best under DP).
DEFAULT_ITERATIONS = 5
#: Most topics allowed.
MAX_TOPICS = 256
#: Dimension of the hashed word features of the byte-model fallback.
HASH_DIM = 1024
#: Dimension the DP k-means runs in (after the random projection; see the module docstring).
TOPIC_DIM = 32
#: Size of the random step that moves an unestimable centre next to the largest cluster.
RESEED_STEP = 0.1
#: Public vocabulary tokens shown per topic (HF models only).
TOPIC_WORDS = 8

#: Public sentences written for dpsynth (no private data): the centring mean of an HF model's
#: embeddings and the candidates for the initial centres.
PUBLIC_SEED_TEXTS: tuple[str, ...] = (
    "The match went to extra time and the home team scored in the last minute.",
    "Our new phone update drains the battery much faster than before.",
    "The senate will vote on the spending bill next week.",
    "I baked bread this morning and the whole kitchen smells wonderful.",
    "Heavy rain and strong winds are expected along the coast tonight.",
    "The stock market fell sharply after the interest rate announcement.",
    "Scientists found water ice in a crater near the moon's south pole.",
    "My flight was delayed for three hours and nobody told us why.",
    "The film's soundtrack is beautiful but the plot is hard to follow.",
    "Doctors recommend thirty minutes of exercise most days of the week.",
    "The school board approved a new reading programme for young children.",
    "Thank you all for the birthday wishes, I had a great day!",
    "Police closed the highway after a crash involving several trucks.",
    "The recipe needs two eggs, a cup of flour and a pinch of salt.",
    "The president met foreign leaders to discuss trade and security.",
    "Tickets for the concert sold out in less than ten minutes.",
    "Please reset my password, I cannot log in to my account.",
    "The invoice I received charges me twice for the same order.",
    "Our hiking trip ended at a lake surrounded by snowy mountains.",
    "The company reported record profits and plans to hire more staff.",
    "Vote today! Every voice matters in this election.",
    "The new museum exhibit shows paintings from the nineteenth century.",
    "My cat knocked the plant off the table again this morning.",
    "The software crashes whenever I open a large spreadsheet.",
    "Fans celebrated in the streets after the championship win.",
    "The hospital opened a new wing for children with cancer.",
    "Gas prices went up again and commuting is getting expensive.",
    "The court ruled that the law violates the constitution.",
    "We are hiring engineers, apply on our website before Friday.",
    "The storm knocked out power to thousands of homes overnight.",
    "I just finished a great novel about a family in post-war Italy.",
    "The team traded its best player for two young prospects.",
    "Fake news media will not report the truth about the economy.",
    "The vaccine trial showed strong protection against severe illness.",
    "Join us live tonight at eight for a conversation about jobs.",
    "The restaurant on the corner serves the best noodles in town.",
    "Border security and immigration were the main topics of the debate.",
    "Students protested against the rise in university fees.",
    "The printer is out of ink and the office is out of paper.",
    "Happy new year to everyone, wishing you health and happiness!",
)

_WORD = re.compile(r"[#@]?\w+", re.UNICODE)
#: A short public English stop list (function words carry no topic and would dominate).
STOP_WORDS = frozenset("""
a about above after again against all am an and any are as at be because been before being
below between both but by can could did do does doing down during each few for from further
had has have having he her here hers herself him himself his how i if in into is it its itself
just me more most my myself no nor not now of off on once only or other our ours ourselves out
over own same she should so some such than that the their theirs them themselves then there
these they this those through to too under until up very was we were what when where which
while who whom why will with would you your yours yourself yourselves rt amp http https co
""".split())


class Embedder(Protocol):
    """Public embeddings of texts, one unit-norm (or zero) row per text."""

    kind: str

    def embed(self, texts: Sequence[str]) -> np.ndarray: ...

    def seed_centres(self) -> np.ndarray:
        """Embeddings of :data:`PUBLIC_SEED_TEXTS` (candidates for the initial centres)."""


def unit_rows(x: np.ndarray) -> np.ndarray:
    """Each row scaled to L2 norm 1 (zero rows stay zero): one record's sensitivity bound."""
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.where(norms > 0, x / np.where(norms > 0, norms, 1.0), 0.0)


class HashedEmbedder:
    """Signed feature hashing of a text's words (the byte-model fallback; see the module)."""

    kind = "hashed"

    def __init__(self, dim: int = HASH_DIM):
        self.dim = int(dim)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim))
        for row, text in enumerate(texts):
            for word in _WORD.findall(str(text).lower()):
                if len(word) < 2 or word in STOP_WORDS or word.isdigit():
                    continue
                h = zlib.crc32(word.encode("utf-8"))
                out[row, h % self.dim] += 1.0 if (h >> 31) & 1 else -1.0
        return unit_rows(np.sign(out) * np.log1p(np.abs(out)))  # sublinear term frequency

    def seed_centres(self) -> np.ndarray:
        return self.embed(PUBLIC_SEED_TEXTS)


class HFEmbedder:
    """Mean-pooled last hidden state of a public Hugging Face causal LM, centred by the
    public sentences' mean (see the module docstring)."""

    kind = "hf"

    def __init__(self, lm: Any, tokenizer: Any, max_length: int, batch_size: int = 32):
        self.lm = lm
        self.tokenizer = tokenizer
        self.max_length = int(max_length)
        self.batch_size = int(batch_size)
        self._mean: np.ndarray | None = None

    @classmethod
    def load(cls, model_dir: str, max_length: int) -> HFEmbedder:
        """The public base model of ``model_dir`` (local files only), for scoring later."""
        import torch

        from dpsynth.synthesizers.text.hf import _import_transformers

        transformers = _import_transformers()
        tokenizer = transformers.AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
        lm = transformers.AutoModelForCausalLM.from_pretrained(
            model_dir, local_files_only=True, dtype=torch.float32)
        return cls(lm.eval(), tokenizer, max_length)

    def raw(self, texts: Sequence[str]) -> np.ndarray:
        """Mean of the last hidden state over each text's tokens (no centring)."""
        import torch

        ids = [list(self.tokenizer(str(t), add_special_tokens=False)["input_ids"])
               [:self.max_length] for t in texts]
        pad = self.tokenizer.pad_token_id
        pad = int(pad if pad is not None else self.tokenizer.eos_token_id)
        device = next(self.lm.parameters()).device
        order = np.argsort([len(i) for i in ids], kind="stable")
        out: np.ndarray | None = None
        was_training = bool(self.lm.training)
        self.lm.eval()
        try:
            with torch.no_grad():
                for start in range(0, len(order), self.batch_size):
                    rows = order[start:start + self.batch_size]
                    width = max(1, max(len(ids[i]) for i in rows))
                    tokens = torch.full((len(rows), width), pad, dtype=torch.long)
                    mask = torch.zeros((len(rows), width), dtype=torch.long)
                    for j, i in enumerate(rows):
                        tokens[j, :len(ids[i])] = torch.tensor(ids[i], dtype=torch.long)
                        mask[j, :len(ids[i])] = 1
                    hidden = self.lm(input_ids=tokens.to(device),
                                     attention_mask=mask.to(device),
                                     output_hidden_states=True).hidden_states[-1].float()
                    weights = mask.to(device).unsqueeze(-1).float()
                    pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1.0)
                    if out is None:
                        out = np.zeros((len(ids), pooled.shape[1]))
                    out[rows] = pooled.cpu().numpy()
        finally:
            self.lm.train(was_training)
        return out if out is not None else np.zeros((0, 0))

    @property
    def mean(self) -> np.ndarray:
        """Mean raw embedding of :data:`PUBLIC_SEED_TEXTS` (public)."""
        if self._mean is None:
            self._mean = self.raw(PUBLIC_SEED_TEXTS).mean(axis=0)
        return self._mean

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        return unit_rows(self.raw(texts) - self.mean)

    def seed_centres(self) -> np.ndarray:
        return self.embed(PUBLIC_SEED_TEXTS)

    def top_tokens(self, centres: np.ndarray, projection_matrix: np.ndarray,
                   n: int = TOPIC_WORDS) -> list[list[str]]:
        """For each centre, the public whole-word tokens whose (projected, unit-norm) output
        embedding is most aligned with how the centre differs from the centres' mean: the
        tokens whose logits the topic raises most relative to the other topics."""
        head = self.lm.get_output_embeddings()
        if head is None or not len(centres):
            return [[] for _ in centres]
        weight = unit_rows(head.weight.detach().float().cpu().numpy() @ projection_matrix)
        scores = weight @ (centres - centres.mean(axis=0)).T
        names = self.tokenizer.convert_ids_to_tokens(list(range(weight.shape[0])))
        special = set(getattr(self.tokenizer, "all_special_ids", []) or [])
        words_only = np.array([i not in special and isinstance(t, str) and t[:1] in ("Ġ", "▁")
                               and t[1:].isalpha() and len(t) > 3
                               for i, t in enumerate(names)])
        if not words_only.any():  # a tokenizer without word-start markers
            words_only = np.array([i not in special and isinstance(t, str)
                                   and any(ch.isalpha() for ch in t)
                                   for i, t in enumerate(names)])
        out = []
        for column in scores.T:
            ranked = np.argsort(-np.where(words_only, column, -np.inf))[:4 * n]
            words: list[str] = []
            for token in ranked:
                word = self.tokenizer.decode([int(token)]).strip()
                if word and word.lower() not in (w.lower() for w in words):
                    words.append(word)
                if len(words) == n:
                    break
            out.append(words)
        return out


def initial_centres(seeds: np.ndarray, k: int, dim: int,
                    rng: np.random.Generator) -> np.ndarray:
    """``k`` centres chosen without the data: farthest-point traversal over the public
    sentences' embeddings from a random start, then random unit vectors."""
    seeds = seeds[np.linalg.norm(seeds, axis=1) > 0]
    chosen: list[int] = []
    if len(seeds):
        chosen.append(int(rng.integers(len(seeds))))
        nearest = np.linalg.norm(seeds - seeds[chosen[0]], axis=1)
        while len(chosen) < min(k, len(seeds)):
            nxt = int(np.argmax(nearest))
            chosen.append(nxt)
            nearest = np.minimum(nearest, np.linalg.norm(seeds - seeds[nxt], axis=1))
    extra = unit_rows(rng.normal(size=(k - len(chosen), dim)))
    return np.vstack([seeds[chosen].reshape(len(chosen), dim), extra])


def projection(dim: int, rng: np.random.Generator, out_dim: int = TOPIC_DIM) -> np.ndarray:
    """A ``(dim, out_dim)`` matrix with orthonormal columns, drawn without the data
    (the identity when ``dim <= out_dim``)."""
    if dim <= out_dim:
        return np.eye(dim)
    q, _ = np.linalg.qr(rng.normal(size=(dim, out_dim)))
    return np.asarray(q)


def assign(x: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """Index of each row's nearest centre (Euclidean)."""
    score = x @ centres.T - 0.5 * np.sum(centres**2, axis=1)
    return np.asarray(np.argmax(score, axis=1), dtype=np.int64)


def dp_kmeans(x: np.ndarray, init: np.ndarray, *, iterations: int, sigma: float | None,
              noise: NoiseSource | None, rng: np.random.Generator) -> np.ndarray:
    """Lloyd's iteration with Gaussian noisy sums and counts (see the module docstring).

    ``x``: rows of L2 norm at most 1. ``sigma``: noise multiplier of the per-step Gaussian
    mechanism (sensitivity 1), or ``None`` for exact (non-private) Lloyd steps. ``rng``:
    public randomness (the steps that move unestimable centres), never the DP noise.
    """
    if sigma is not None and noise is None:
        raise ValueError("a noisy k-means needs a noise source")
    if len(x) and float(np.max(np.linalg.norm(x, axis=1))) > 1.0 + 1e-6:
        raise ValueError("the embeddings must have L2 norm at most 1")
    centres = np.array(init, dtype=float, copy=True)
    k, dim = centres.shape
    floor = 0.0 if sigma is None else sigma * math.sqrt(dim)
    for _ in range(int(iterations)):
        labels = assign(x, centres)
        sums = np.zeros((k, dim))
        np.add.at(sums, labels, x)
        counts = np.bincount(labels, minlength=k).astype(float)
        sums, counts = sums / math.sqrt(2.0), counts / math.sqrt(2.0)
        if sigma is not None:
            assert noise is not None
            sums = sums + noise.normal(k * dim, scale=sigma).reshape(k, dim)
            counts = counts + noise.normal(k, scale=sigma)
        lost = counts <= floor
        safe = np.where(lost, 1.0, counts)[:, None]
        centres = _ball(np.where(lost[:, None], centres, sums / safe))
        if lost.any() and not lost.all():
            largest = centres[int(np.argmax(np.where(lost, -np.inf, counts)))]
            step = unit_rows(rng.normal(size=(int(lost.sum()), dim))) * RESEED_STEP
            centres[lost] = _ball(largest + step)
    return centres


def _ball(centres: np.ndarray) -> np.ndarray:
    """Rows projected onto the unit ball."""
    norms = np.linalg.norm(centres, axis=1, keepdims=True)
    return centres / np.maximum(norms, 1.0)


def cluster(embedder: Embedder, raw: np.ndarray, k: int, *, sigma: float | None,
            noise: NoiseSource | None, rng: np.random.Generator,
            iterations: int = DEFAULT_ITERATIONS) -> tuple[Topics, np.ndarray]:
    """DP topics of the records whose public embeddings are ``raw`` (rows of norm <= 1), and
    each record's topic: the projection, the initial centres, the DP k-means and the
    tokens of an HF model's centres (see the module docstring). ``sigma=None``: exact."""
    space = Topics(embedder.kind, np.zeros((0, 0)), projection(raw.shape[1], rng), iterations)
    x = space.project(raw)
    init = initial_centres(space.project(embedder.seed_centres()), int(k), x.shape[1], rng)
    centres = dp_kmeans(x, init, iterations=iterations, sigma=sigma, noise=noise, rng=rng)
    topics = replace(space, centres=centres)
    if isinstance(embedder, HFEmbedder):  # post-processing with the public model
        words = embedder.top_tokens(centres, topics.projection)
        topics = replace(topics, words=tuple(tuple(w) for w in words))
    return topics, assign(x, centres)


@dataclass(frozen=True)
class Topics:
    """Released topic centres in a public embedding space, and what they are shown as."""

    embedder: str
    centres: np.ndarray
    projection: np.ndarray
    iterations: int
    words: tuple[tuple[str, ...], ...] = ()

    @property
    def k(self) -> int:
        return int(self.centres.shape[0])

    @property
    def labels(self) -> tuple[str, ...]:
        """The topic control values (``"0"`` ... ``"k-1"``)."""
        return tuple(str(i) for i in range(self.k))

    def project(self, embeddings: np.ndarray) -> np.ndarray:
        """Unit-norm embeddings in the space of the centres (projected, unit norm again)."""
        return unit_rows(embeddings @ self.projection)

    def assign(self, embeddings: np.ndarray) -> np.ndarray:
        """Each embedding's topic: its nearest centre."""
        return assign(self.project(embeddings), self.centres)

    def to_state(self) -> dict[str, Any]:
        return {"embedder": self.embedder, "k": self.k, "iterations": self.iterations,
                "words": [list(w) for w in self.words]}

    @classmethod
    def from_state(cls, state: dict[str, Any], centres: np.ndarray,
                   projection_matrix: np.ndarray) -> Topics:
        return cls(str(state["embedder"]), np.asarray(centres, dtype=float),
                   np.asarray(projection_matrix, dtype=float), int(state["iterations"]),
                   tuple(tuple(str(t) for t in w) for w in state.get("words", [])))

    def describe(self, shares: Sequence[float] | np.ndarray | None = None) -> list[dict[str, Any]]:
        """One entry per topic: id, released share (when given) and its public words."""
        out = []
        for i in range(self.k):
            entry: dict[str, Any] = {"topic": i}
            if shares is not None:
                entry["share"] = float(shares[i])
            if self.words:
                entry["words"] = list(self.words[i])
            out.append(entry)
        return out


__all__ = [
    "DEFAULT_ITERATIONS",
    "MAX_TOPICS",
    "PUBLIC_SEED_TEXTS",
    "TOPIC_COLUMN",
    "TOPIC_DIM",
    "HFEmbedder",
    "HashedEmbedder",
    "Topics",
    "assign",
    "cluster",
    "dp_kmeans",
    "initial_centres",
    "projection",
    "unit_rows",
]
