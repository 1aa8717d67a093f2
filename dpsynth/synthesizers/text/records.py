"""How a record reads to a pretrained Hugging Face model: a plain-text header, no chat turn.

An instruct model's tokenizer often declares a chat token as its beginning of sequence
(SmolLM2-Instruct: ``<|im_start|>``); a record started with it reads as a chat turn with an
odd role, and the model answers with code, markup or mixed scripts. Records are therefore
written as plain text between document separators::

    <|endoftext|>kind: billing
    text: my invoice is wrong<|endoftext|>

The header ends at ``text:`` and the record's text is coded with its leading space (`` my
invoice…``). A byte-pair tokenizer joins a word to the space before it (``Ġmy``); a header
that ended with the space left it as a token of its own, after which the pretrained model
expects a word *without* a space: digits, code, dates (measured on SmolLM2: its first tokens
after ``text: `` were ``1``, ``2020``, ``1e29``…). Models saved with that older format
(:data:`PLAIN_V1`) keep it.

The separator is the tokenizer's end-of-text token when the beginning-of-sequence token is part
of its chat template, else its own BOS/EOS as before. Sampling never draws another special
token, so no chat-template token can appear in a sample.
"""

from __future__ import annotations

from typing import Any

from dpsynth.synthesizers.text import codec

#: Format tag saved with a fitted model (models saved before it used the byte codec's header).
PLAIN = "plain-v2"
#: The first plain format: the header ended with ``text: `` and the text had no leading space.
PLAIN_V1 = "plain-v1"
PLAIN_FORMATS = (PLAIN, PLAIN_V1)
LEGACY = "codec"
TEXT_FIELD = "text"
_END_OF_TEXT = ("<|endoftext|>", "</s>", "<eos>")


def plain_header(head: str, record_format: str = PLAIN) -> str:
    """The byte codec's header ``k=v<US>k2=v2<RS>`` as ``k: v\\nk2: v2\\ntext:`` (with a
    trailing space in :data:`PLAIN_V1`)."""
    lines = []
    body = head.removesuffix(codec.HEADER_END)
    for field in body.split(codec.FIELD_SEP) if body else ():
        key, _, value = field.partition("=")
        lines.append(f"{key}: {value}\n")
    return "".join(lines) + f"{TEXT_FIELD}:" + (" " if record_format == PLAIN_V1 else "")


def text_lead(record_format: str) -> str:
    """What the record's text is coded behind: a space in :data:`PLAIN`, else nothing."""
    return " " if record_format == PLAIN else ""


def _chat_tokens(tokenizer: Any) -> set[str]:
    template = getattr(tokenizer, "chat_template", None)
    if not isinstance(template, str):
        return set()
    specials = [str(t) for t in getattr(tokenizer, "all_special_tokens", [])]
    return {t for t in specials if t in template}


def separator(tokenizer: Any) -> tuple[int, int] | None:
    """``(start, end)`` token ids replacing a chat-template BOS/EOS, or ``None`` to keep them."""
    chat = _chat_tokens(tokenizer)
    bos, eos = tokenizer.bos_token, tokenizer.eos_token
    if not chat or (bos not in chat and eos not in chat):
        return None
    vocab = tokenizer.get_vocab()
    for name in _END_OF_TEXT:
        if name in vocab and name not in chat:
            return int(vocab[name]), int(vocab[name])
    return None


def banned_ids(tokenizer: Any, end: int) -> tuple[int, ...]:
    """Special tokens sampling must never draw (every one but the record end)."""
    ids = {int(i) for i in getattr(tokenizer, "all_special_ids", [])}
    ids.update(int(i) for i in (tokenizer.bos_token_id, tokenizer.pad_token_id)
               if i is not None)
    added = getattr(tokenizer, "added_tokens_decoder", {}) or {}
    ids.update(int(i) for i, tok in added.items() if getattr(tok, "special", False))
    ids.discard(int(end))
    return tuple(sorted(ids))


__all__ = ["LEGACY", "PLAIN", "PLAIN_FORMATS", "PLAIN_V1", "banned_ids", "plain_header",
           "separator", "text_lead"]
