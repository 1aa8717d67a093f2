"""Bring your own model: a local Hugging Face causal LM, fine-tuned with DP-SGD.

The model and tokenizer are read from a local directory only (``local_files_only=True`` with
``HF_HUB_OFFLINE=1``): nothing is ever downloaded. When peft is installed, the model is
fine-tuned through LoRA adapters (Hu et al., "LoRA: Low-Rank Adaptation of Large Language
Models", ICLR 2022), the parameter-efficient DP fine-tuning of Yu et al. ("Differentially
Private Fine-tuning of Language Models", ICLR 2022); otherwise every weight is trained.
transformers and peft are optional dependencies (the ``text`` extra).

With the output layer frozen (LoRA adapters, or tied embeddings left as they are), training
and scoring run the model up to its last hidden states and apply the head inside the loss, a
chunk of positions at a time (:mod:`~dpsynth.synthesizers.text.headloss`): no logits tensor
of the whole micro-batch is formed.

Sampling is dpsynth's own loop over the model's key/value cache, so that its randomness comes
from the synthesizer's generator rather than torch's global one (which ``generate`` uses).
"""

from __future__ import annotations

import inspect
import json
import logging
import math
import os
import re
import warnings
from collections.abc import Iterable, Sequence
from copy import deepcopy
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from dpsynth.errors import ModelFormatError, ParameterError
from dpsynth.synthesizers.text import records
from dpsynth.synthesizers.text.headloss import HeadRecordNLL
from dpsynth.synthesizers.text.kvcache import preallocate, reuse_logits, reusing_logits
from dpsynth.synthesizers.text.model import RecordNLL, draw_token

logger = logging.getLogger(__name__)

#: Finished rows leave the decoding batch once they are at least 1 / _DROP_SHARE of it.
_DROP_SHARE = 8
#: Positions reserved ahead in the key/value cache at first (it doubles when full): most
#: records end long before ``max_length``, and 512 rows of 256 positions would take 1.6 GB.
_CACHE_STEP = 64


def _offline() -> None:
    """Forbid the hub in this process before transformers is imported (loading path only)."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"


def _import_transformers() -> Any:
    _offline()
    try:
        import transformers
    except ModuleNotFoundError:
        raise ParameterError("model_dir needs the optional dependency transformers: "
                             "pip install 'dpsynth[text]'.") from None
    return transformers


#: ``lora_targets`` value adapting every linear layer (peft's own keyword).
ALL_LINEAR = "all-linear"
#: ``lora_targets`` / ``lora_layers`` value resolved from the model when it is loaded
#: (:func:`auto_lora_targets`, :func:`auto_lora_layers`).
AUTO = "auto"
#: What ``lora_targets="auto"`` adapts in a model that has both: the attention's query and
#: value projections (Hu et al., ICLR 2022; Yu et al., ICLR 2022), the fewest noisy
#: coordinates under DP.
ATTENTION_TARGETS = "q_proj,v_proj"
#: ``lora_layers="auto"``: adapters in the top 8 blocks at most (the speed measurement of
#: ``docs/benchmarks.md``, "Text speed on CPU").
AUTO_LORA_LAYERS = 8


def auto_lora_targets(module_names: Iterable[str]) -> str:
    """``lora_targets="auto"`` for a model with these module names: ``"q_proj,v_proj"``
    when modules named both ``q_proj`` and ``v_proj`` exist (llama, SmolLM2, Mistral...),
    else ``"all-linear"`` (GPT-2's fused ``c_attn``...)."""
    leaves = {name.rsplit(".", 1)[-1] for name in module_names}
    return ATTENTION_TARGETS if {"q_proj", "v_proj"} <= leaves else ALL_LINEAR


def auto_lora_layers(lm: nn.Module) -> int | None:
    """``lora_layers="auto"``: the top ``min(8, blocks)`` blocks (``None``, every block,
    when the config names no number of blocks)."""
    try:
        return min(AUTO_LORA_LAYERS, n_blocks(lm))
    except ModelFormatError:
        return None


def _lora(model: nn.Module, rank: int, seed: int, targets: str = ALL_LINEAR,
          layers: int | None = None) -> tuple[nn.Module, int]:
    """Wrap ``model`` with LoRA adapters when peft is installed (rank 0 or no peft: as is).

    ``targets``: ``"all-linear"`` or comma-separated module names (``"q_proj,v_proj"``).
    ``layers``: adapt only the top ``layers`` decoder blocks (``None``: every block). The
    backward pass then stops at the lowest adapted block, so a step costs about a forward
    pass plus ``layers / n_layers`` of a backward pass.
    """
    if rank == 0:
        return model, 0
    try:
        from peft import LoraConfig, get_peft_model
    except ModuleNotFoundError:
        logger.warning("peft is not installed: fine-tuning every weight instead of LoRA")
        return model, 0
    modules = (_target_modules(targets) if layers is None
               else _top_block_modules(model, targets, int(layers)))
    config = LoraConfig(r=rank, lora_alpha=2 * rank, lora_dropout=0.0,
                        target_modules=modules, bias="none")
    # peft draws its initial adapters from the global generator: leave the caller's state as
    # it was, then draw LoRA's A matrices again from a generator seeded by ``seed`` (peft's
    # own rule: Kaiming-uniform with a = sqrt(5); B starts at zero).
    with torch.random.fork_rng(devices=[]), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="fan_in_fan_out")  # GPT-2's Conv1D: handled
        wrapped = get_peft_model(model, config)
    gen = torch.Generator().manual_seed(int(seed))
    with torch.no_grad():
        for name, param in wrapped.named_parameters():
            if ".lora_A." in name:
                nn.init.kaiming_uniform_(param, a=math.sqrt(5), generator=gen)
    return wrapped, rank


def n_blocks(lm: nn.Module) -> int:
    """Number of decoder blocks of a causal LM (from its config)."""
    cfg = _base(lm).config
    for name in ("num_hidden_layers", "n_layer", "num_layers"):
        found = getattr(cfg, name, None)
        if isinstance(found, int) and found > 0:
            return found
    raise ModelFormatError("The model's config names no number of layers "
                           "(num_hidden_layers or n_layer): lora_layers cannot apply.")


_BLOCK = re.compile(r"\.(?:layers|h|blocks|layer)\.(\d+)\.")


def _top_block_modules(model: nn.Module, targets: str, layers: int) -> list[str]:
    """Full names of the ``targets`` modules inside the top ``layers`` decoder blocks."""
    first = n_blocks(model) - layers
    wanted = None if targets == ALL_LINEAR else set(_target_modules(targets))
    out = []
    for name, module in model.named_modules():
        block = _BLOCK.search(f".{name}.")
        if block is None or int(block.group(1)) < first:
            continue
        if not (isinstance(module, nn.Linear) or type(module).__name__ == "Conv1D"):
            continue
        if wanted is None or name.rsplit(".", 1)[-1] in wanted:
            out.append(name)
    if not out:
        raise ParameterError(f"No module {targets!r} in the top {layers} blocks of the "
                             "model: check lora_targets.")
    return out


def _target_modules(targets: str) -> str | list[str]:
    if targets == ALL_LINEAR:
        return ALL_LINEAR
    return [t.strip() for t in targets.split(",") if t.strip()]


class _Logits(nn.Module):
    """``forward(tokens) -> logits`` around a causal LM, with explicit contiguous positions.

    Padding is on the right and the loss ignores it, so causal attention needs no mask.
    """

    def __init__(self, lm: nn.Module):
        super().__init__()
        self.lm = lm
        self._positions = "position_ids" in inspect.signature(_base(lm).forward).parameters

    def _inputs(self, tokens: torch.Tensor) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"input_ids": tokens, "use_cache": False}
        if self._positions:
            b, t = tokens.shape
            kwargs["position_ids"] = torch.arange(t, device=tokens.device).expand(
                b, t).contiguous()
        return kwargs

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        logits: torch.Tensor = self.lm(**self._inputs(tokens)).logits
        return logits


class _Hidden(_Logits):
    """``forward(tokens) -> last hidden states`` ``(B, T, width)`` of the same causal LM: its
    logits are ``hidden @ head.T``, applied by the loss
    (:class:`~dpsynth.synthesizers.text.headloss.HeadRecordNLL`)."""

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        base: Any = _base(self.lm)
        decoder = base.get_decoder()
        hidden: torch.Tensor = decoder(**self._inputs(tokens)).last_hidden_state
        return hidden


#: Model types whose causal-LM forward is exactly ``logits = lm_head(decoder(...))`` (no
#: bias, scaling or soft-capping after the head), so the head can be fused with the loss.
FUSED_HEAD_TYPES = frozenset({"llama", "mistral", "qwen2", "gpt2"})


def frozen_head(lm: nn.Module) -> nn.Parameter | None:
    """The output layer's weight when the loss may apply it itself: a frozen, bias-free
    linear head of a model type in :data:`FUSED_HEAD_TYPES`; otherwise ``None``."""
    base: Any = _base(lm)
    if getattr(base.config, "model_type", None) not in FUSED_HEAD_TYPES:
        return None
    head = base.get_output_embeddings()
    if (type(head) is not nn.Linear or head.bias is not None or head.weight.requires_grad
            or getattr(base, "get_decoder", None) is None):
        return None
    weight: nn.Parameter = head.weight
    return weight


def cache_keyword(lm: nn.Module) -> str:
    """The forward keyword of ``lm``'s key/value cache: transformers 5 renamed
    ``past_key_values`` to ``cache`` (the old name still works, with a warning)."""
    names = inspect.signature(_base(lm).forward).parameters
    return "cache" if "cache" in names else "past_key_values"


def cache_of(out: Any) -> Any:
    """The key/value cache of a forward's output, under either name."""
    found = getattr(out, "cache", None)
    return found if found is not None else out.past_key_values


def _guided(logits: Sequence[torch.Tensor], log_w: torch.Tensor,
            guidance: float) -> torch.Tensor:
    """Guided next-token scores: ``logits[0]`` is the conditional stream, ``logits[j]`` the
    guide headers' streams with log-weights ``log_w[j]`` (see :meth:`HFBackend.generate`)."""
    logp = torch.stack([lg.float().log_softmax(-1) for lg in logits])  # (heads, rows, vocab)
    reference = torch.logsumexp(logp + log_w[:, None, None], dim=0)
    return logp[0] + guidance * (logp[0] - reference)


def _base(lm: nn.Module) -> nn.Module:
    get = getattr(lm, "get_base_model", None)
    return get() if get is not None else lm


class HFBackend:
    """A local Hugging Face causal LM and its tokenizer (see the module docstring)."""

    kind = "hf"

    def __init__(self, lm: nn.Module, tokenizer: Any, model_dir: str, lora_rank: int, *,
                 lora_targets: str = ALL_LINEAR, record_format: str = records.PLAIN,
                 lora_layers: int | None = None):
        self.wrapper = _Logits(lm)
        #: The frozen head the loss applies itself (``None``: the loss takes the logits); which
        #: weights train is settled by loading, so this is decided once.
        self._frozen = frozen_head(lm)
        self._hidden = _Hidden(lm) if self._frozen is not None else None
        self.tokenizer = tokenizer
        self.model_dir = model_dir
        self.lora_rank = lora_rank
        self.lora_targets = lora_targets
        self.lora_layers = lora_layers
        #: Weights of the sampling loop: ``"float32"``, ``"bfloat16"`` (a merged copy in
        #: bfloat16, see :meth:`_sampler`) or ``"auto"`` (bfloat16 where the device computes
        #: it natively, see :func:`~dpsynth._util.device.fast_bfloat16`).
        self.sample_precision = "float32"
        self._sampling_copy: tuple[Any, nn.Module] | None = None
        self.record_format = record_format
        eos = tokenizer.eos_token_id
        if eos is None:
            raise ModelFormatError(f"The tokenizer in {model_dir} has no end-of-sequence token.")
        self.eos = int(eos)
        bos = tokenizer.bos_token_id
        self.bos = int(bos) if bos is not None else self.eos
        pad = tokenizer.pad_token_id
        self.pad = int(pad if pad is not None else eos)
        self.banned: tuple[int, ...] = (self.pad,) if self.pad != self.eos else ()
        #: What a record's text is coded behind (a space in the current plain format).
        self.lead = records.text_lead(record_format)
        if record_format in records.PLAIN_FORMATS:
            plain = records.separator(tokenizer)
            if plain is not None:  # the BOS/EOS are chat-template tokens: plain separators
                self.bos, self.eos = plain
            self.banned = records.banned_ids(tokenizer, self.eos)

    @classmethod
    def load(cls, model_dir: str, *, lora_rank: int, seed: int,
             lora_targets: str = ALL_LINEAR, record_format: str = records.PLAIN,
             lora_layers: int | str | None = None) -> HFBackend:
        """Load from ``model_dir`` (local files only), in training mode, with LoRA if asked
        (on the top ``lora_layers`` blocks only when given). ``"auto"`` targets or layers
        are resolved from the loaded model (:func:`auto_lora_targets`,
        :func:`auto_lora_layers`) and the backend records the resolved values."""
        path = Path(model_dir)
        if not (path / "config.json").is_file():
            raise ParameterError(f"The 'model_dir' {model_dir!r} must be a local Hugging Face "
                                 "model directory (with config.json and a tokenizer).")
        transformers = _import_transformers()
        try:
            tokenizer = transformers.AutoTokenizer.from_pretrained(str(path),
                                                                   local_files_only=True)
            lm = transformers.AutoModelForCausalLM.from_pretrained(
                str(path), local_files_only=True, dtype=torch.float32)
        except (OSError, ValueError) as exc:
            raise ModelFormatError(f"Cannot load a causal LM from {model_dir}: {exc}") from None
        lm.train()  # from_pretrained returns eval mode; Opacus needs training mode
        if lora_targets == AUTO:
            lora_targets = auto_lora_targets(name for name, _ in lm.named_modules())
        layers = auto_lora_layers(lm) if lora_layers == AUTO else lora_layers
        if layers is not None and (not isinstance(layers, int) or isinstance(layers, bool)
                                   or not 1 <= layers <= n_blocks(lm)):
            raise ParameterError(f"lora_layers must be None, 'auto' or an integer in [1, "
                                 f"{n_blocks(lm)}] (the blocks of the model in {model_dir}), "
                                 f"got {lora_layers!r}.")
        lm, used = _lora(lm, lora_rank, seed, lora_targets, layers)
        return cls(lm, tokenizer, str(path.resolve()), used, lora_targets=lora_targets,
                   record_format=record_format,
                   lora_layers=None if not used or layers is None else int(layers))

    @property
    def module(self) -> nn.Module:
        """What DP-SGD trains: the LM up to its last hidden states when the frozen head is
        fused with the loss (see :meth:`criterion`), else the LM with its logits."""
        return self.wrapper if self._hidden is None else self._hidden

    def criterion(self) -> RecordNLL | HeadRecordNLL:
        """The per-record loss of :attr:`module`'s output: the head fused with the loss in
        chunks (:mod:`~dpsynth.synthesizers.text.headloss`: no logits tensor of the whole
        batch) when the head is frozen, else :class:`RecordNLL` on the logits."""
        return RecordNLL() if self._frozen is None else HeadRecordNLL(self._frozen)

    def max_tokens(self) -> int:
        cfg = _base(self.wrapper.lm).config
        found: Any = getattr(cfg, "max_position_embeddings", None) or getattr(
            cfg, "n_positions", None)
        return int(found) if found else 1024

    def _ids(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def _head(self, head: str) -> str:
        """The record header as the model reads it (plain text, see :mod:`.records`)."""
        if self.record_format in records.PLAIN_FORMATS:
            return records.plain_header(head, self.record_format)
        return head

    def text_ids(self, text: str, max_length: int) -> list[int]:
        """The first ``max_length`` token ids of a record's text, behind its lead."""
        return self._ids(self.lead + text)[:max_length]

    def decode_text(self, ids: Sequence[int]) -> str:
        """A record's text from its token ids (the lead removed)."""
        text = str(self.tokenizer.decode(list(ids), skip_special_tokens=True))
        return text[len(self.lead):] if self.lead and text.startswith(self.lead) else text

    def code(self, texts: Sequence[str], headers: Sequence[str], max_length: int) -> np.ndarray:
        rows = []
        for head, text in zip(headers, texts, strict=True):
            start = self.prompt_ids(head)
            rows.append(([*start, *self.text_ids(text, max_length), self.eos], len(start)))
        room = self.max_tokens()
        length = min(room, max((len(ids) for ids, _ in rows), default=2))
        out = np.zeros((len(rows), 2, length), dtype=np.int64)
        out[:, 0] = self.pad
        for i, (ids, first) in enumerate(rows):
            ids = ids[:length]
            out[i, 0, :len(ids)] = ids
            out[i, 1, first:len(ids)] = 1
        return out

    def _sampler(self) -> nn.Module:
        """The model the sampling loop runs: the trained one, or with ``sample_precision
        "bfloat16"`` a copy with the adapters merged into the weights and every weight in
        bfloat16 (kept until a weight or the device changes).

        Casting the weights once is what makes bfloat16 pay off when decoding: autocast
        casts every frozen weight again at each token (frozen weights are not in its cache),
        which made autocast decoding slower than float32 (``docs/benchmarks.md``).
        """
        lm = self.wrapper.lm
        params = list(lm.parameters())
        if self.sample_precision == "auto":
            from dpsynth._util.device import fast_bfloat16

            if not fast_bfloat16(params[0].device):
                return lm
        elif self.sample_precision != "bfloat16":
            return lm
        key = (params[0].device, tuple(p._version for p in params if p.requires_grad),
               tuple(p.data_ptr() for p in params if p.requires_grad))
        if self._sampling_copy is None or self._sampling_copy[0] != key:
            self._sampling_copy = None  # free the old copy first
            copy = deepcopy(lm)
            merge = getattr(copy, "merge_and_unload", None)
            if merge is not None:
                copy = merge()
            copy = copy.to(torch.bfloat16).eval()
            reuse_logits(copy)  # its logits go into reused buffers while decoding
            self._sampling_copy = (key, copy)
        return self._sampling_copy[1]

    def _stream(self, lm: nn.Module, head: str, n: int, last: dict[str, Any]
                ) -> tuple[Any, torch.Tensor]:
        """The key/value cache and next-token logits of ``n`` rows after header ``head``."""
        device = next(lm.parameters()).device
        prompt = torch.tensor(self.prompt_ids(head), device=device).expand(n, -1)
        out = lm(input_ids=prompt[:1].contiguous(), use_cache=True, **last)  # one shared
        past, logits = cache_of(out), out.logits[:, -1].expand(n, -1)      # prompt, once
        if hasattr(past, "batch_repeat_interleave"):
            past.batch_repeat_interleave(n)
        else:  # a cache that cannot be copied across rows: the prompt for every row
            out = lm(input_ids=prompt.contiguous(), use_cache=True, **last)
            past, logits = cache_of(out), out.logits[:, -1]
        return past, logits

    @property
    def vocab_size(self) -> int:
        """Entries of the model's next-token scores (the output embedding's rows)."""
        lm: Any = _base(self.wrapper.lm)
        return int(lm.get_output_embeddings().weight.shape[0])

    def prompt_ids(self, head: str) -> list[int]:
        """The tokens before a record's text: the start token and the header."""
        return [self.bos, *self._ids(self._head(head))]

    @torch.no_grad()
    def generate(self, head: str, n: int, *, max_length: int, temperature: float,
                 top_p: float, generator: torch.Generator,
                 guide: Sequence[tuple[str, float]] = (), guidance: float = 0.0,
                 bias: torch.Tensor | None = None) -> list[str]:
        """``n`` texts after header ``head``; with ``guidance`` w > 0 and ``guide``, a mixture
        ``[(header, weight), ...]`` of control headers, every token is drawn from
        ``log p(x | head) + w (log p(x | head) - log sum_j weight_j p(x | header_j))``.
        ``bias``, a ``(vocab,)`` tensor, is added to every step's next-token scores before
        the temperature (a fixed logit offset per token; none by default).

        That is classifier-free guidance (Ho and Salimans, 2022, arXiv 2207.12598; for
        language models Sanchez et al., 2023, arXiv 2306.17806) with the control-marginal
        mixture as the unconditional model: it sharpens what sets a control value apart
        from the others. It uses only the fitted model and released weights, so it is
        post-processing; it costs one more decoding stream per distinct guide header.
        """
        self.wrapper.lm.eval()
        lm = self._sampler()
        names = inspect.signature(_base(lm).forward).parameters
        last = {"logits_to_keep": 1} if "logits_to_keep" in names else {}
        weights = {head: 0.0}  # the conditional stream first, then the other guide headers
        for h, w in guide:
            weights[h] = weights.get(h, 0.0) + w
        guided = guidance > 0 and sum(weights.values()) > 0
        heads = list(weights) if guided else [head]
        with reusing_logits(lm, len(heads) + 1):  # a step's logits live until the next step's
            drawn = self._decode(lm, heads, weights if guided else None, n, last,
                                 max_length=max_length, temperature=temperature, top_p=top_p,
                                 generator=generator, guidance=guidance, bias=bias)
        texts = []
        for row in drawn.cpu().tolist():
            end = row.index(self.eos) if self.eos in row else len(row)
            texts.append(self.decode_text(row[:end]))
        return texts

    def _decode(self, lm: nn.Module, heads: list[str], weights: dict[str, float] | None,
                n: int, last: dict[str, Any], *, max_length: int, temperature: float,
                top_p: float, generator: torch.Generator, guidance: float,
                bias: torch.Tensor | None = None) -> torch.Tensor:
        """The token ids ``(n, steps)`` of :meth:`generate`'s loop (the end token after a
        record's end); ``weights`` of the guide headers when guided."""
        device = next(lm.parameters()).device
        if bias is not None:
            bias = bias.to(device=device, dtype=torch.float32)
        keyword = cache_keyword(lm)
        streams = [self._stream(lm, h, n, last) for h in heads]
        pasts, logits = [p for p, _ in streams], [lg for _, lg in streams]
        log_w = None if weights is None else torch.tensor(
            [weights[h] for h in heads], device=device).log()
        banned = self.banned
        longest = max(len(self.prompt_ids(h)) for h in heads)
        steps = min(max_length + 1, self.max_tokens() - longest)
        for past in pasts:  # written in place from here on, not copied at each token
            preallocate(past, longest + min(max(steps, 0), _CACHE_STEP))
        drawn = torch.full((n, max(steps, 0)), self.eos, dtype=torch.long, device=device)
        live = torch.arange(n, device=device)  # rows still writing (the caches' rows)
        done = torch.zeros(n, dtype=torch.bool, device=device)  # finished, still in the cache
        for step in range(steps):
            scores = logits[0] if log_w is None else _guided(logits, log_w, guidance)
            if bias is not None:
                scores = scores.float() + bias
            nxt = draw_token(scores, temperature, top_p, generator, banned=banned)
            nxt = torch.where(done, torch.full_like(nxt, self.eos), nxt)
            drawn[live, step] = nxt
            done |= nxt == self.eos
            if bool(done.all()) or step == steps - 1:
                break
            if _DROP_SHARE * int(done.sum()) >= len(done) \
                    and hasattr(pasts[0], "batch_select_indices"):
                # finished rows leave the batch once they are an eighth of it: dropping copies
                # the whole cache, so it waits; until then they decode end tokens unused
                going = torch.nonzero(~done).squeeze(1)
                for past in pasts:
                    past.batch_select_indices(going)
                live, nxt, done = live[going], nxt[going], done[going]
            outs = [lm(input_ids=nxt[:, None], use_cache=True, **{keyword: past})
                    for past in pasts]
            pasts, logits = [cache_of(o) for o in outs], [o.logits[:, -1] for o in outs]
        return drawn

    def to(self, device: torch.device) -> None:
        self.wrapper.to(device)

    def state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """The trained weights only (the adapters with LoRA); the base stays in model_dir."""
        arrays = {f"model.{name}": p.detach().cpu().numpy()
                  for name, p in self.wrapper.lm.named_parameters() if p.requires_grad}
        state = {"backend": self.kind, "model_dir": self.model_dir,
                 "lora_rank": self.lora_rank, "lora_targets": self.lora_targets,
                 "lora_layers": self.lora_layers, "record_format": self.record_format}
        card = Path(self.model_dir) / "dpsynth_model_card.json"
        if card.is_file():  # the base model's licence, pretraining corpus and DP caveat
            state["base_model_card"] = json.loads(card.read_text(encoding="utf-8"))
        return state, arrays

    @classmethod
    def from_state(cls, state: dict[str, Any], arrays: dict[str, np.ndarray]) -> HFBackend:
        backend = cls.load(str(state["model_dir"]), lora_rank=int(state["lora_rank"]), seed=0,
                           lora_targets=str(state.get("lora_targets", ALL_LINEAR)),
                           record_format=str(state.get("record_format", records.LEGACY)),
                           lora_layers=_optional_int(state.get("lora_layers")))
        params = dict(backend.wrapper.lm.named_parameters())
        saved = {k.removeprefix("model."): v for k, v in arrays.items()
                 if k.startswith("model.")}
        unknown = sorted(set(saved) - set(params))
        if unknown:
            raise ModelFormatError(f"The saved weights do not fit the model in "
                                   f"{state['model_dir']}: unknown {unknown[:5]}")
        with torch.no_grad():
            for name, value in saved.items():
                if tuple(params[name].shape) != value.shape:
                    raise ModelFormatError(f"Saved weight {name} has shape {value.shape}, the "
                                           f"model's is {tuple(params[name].shape)}.")
                params[name].copy_(torch.from_numpy(value.copy()))
        return backend


def _optional_int(value: Any) -> int | None:
    return None if value is None else int(value)


__all__ = ["HFBackend"]
