"""A randomly initialised tiny Hugging Face causal LM for the text tests (import as
``from tiny_models import write_tiny_model``; ``tests/`` is on the path)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path


def write_tiny_model(path: Path, arch: str = "gpt2", *, texts: Sequence[str],
                     max_positions: int = 64) -> str:
    """A tiny causal LM (``gpt2`` or ``llama``, seeded) and a byte-level BPE tokenizer trained
    on ``texts``, saved in HF format under ``path``; returns the folder."""
    import tokenizers
    import torch
    from tokenizers import decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = tokenizers.Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(list(texts), trainers.BpeTrainer(
        vocab_size=300, special_tokens=["<eos>"], show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    hf = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<eos>", bos_token="<eos>",
                                 pad_token="<eos>")
    hf.save_pretrained(path)
    eos = hf.eos_token_id
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        if arch == "gpt2":
            from transformers import GPT2Config, GPT2LMHeadModel

            model = GPT2LMHeadModel(GPT2Config(
                vocab_size=len(hf), n_positions=max_positions, n_embd=32, n_layer=2,
                n_head=2, bos_token_id=eos, eos_token_id=eos))
        else:
            from transformers import LlamaConfig, LlamaForCausalLM

            model = LlamaForCausalLM(LlamaConfig(
                vocab_size=len(hf), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                num_attention_heads=2, num_key_value_heads=2,
                max_position_embeddings=max_positions, bos_token_id=eos, eos_token_id=eos,
                pad_token_id=eos))
    model.save_pretrained(path)
    return str(path)
