"""Bring your own model: a tiny local Hugging Face model, fine-tuned with DP-SGD, offline."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")

import tiny_models  # noqa: E402

from dpsynth.errors import ParameterError  # noqa: E402
from dpsynth.schema import Column, Schema  # noqa: E402
from dpsynth.synthesizers import BaseSynthesizer  # noqa: E402
from dpsynth.synthesizers.text import DPTextSynthesizer  # noqa: E402

TEXTS = ["the printer is broken again", "please reset my password", "my invoice is wrong"]


pytestmark = pytest.mark.usefixtures("no_network")  # one torch thread: conftest


def write_tiny_model(path, arch: str = "gpt2") -> str:
    """The tiny model of :mod:`tiny_models`, its tokenizer trained on this module's texts."""
    return tiny_models.write_tiny_model(path, arch, texts=TEXTS * 5)


def frame() -> tuple[pd.DataFrame, Schema]:
    df = pd.DataFrame({"kind": ["hw", "acct", "bill"] * 20, "text": TEXTS * 20})
    schema = Schema((Column("kind", "categorical", categories=("hw", "acct", "bill")),
                     Column("text", "text", max_length=16)))
    return df, schema


@pytest.mark.parametrize("arch,lora", [("gpt2", 4), ("llama", 0)])
def test_local_model_round_trip(tmp_path, arch, lora):
    if lora:
        pytest.importorskip("peft")
    model_dir = write_tiny_model(tmp_path / "lm", arch)
    df, schema = frame()
    synth = DPTextSynthesizer(epsilon=3.0, model_dir=model_dir, lora_rank=lora, epochs=1,
                              batch_size=16, random_state=0)
    synth.fit(df, schema)
    assert synth.backend_.lora_rank == lora
    assert synth.privacy_.epsilon <= 3.0 + 1e-6
    out = synth.sample(4, random_state=0)
    assert out.text.map(lambda t: isinstance(t, str)).all()
    synth.save(tmp_path / "fitted")
    again = BaseSynthesizer.load(tmp_path / "fitted")
    assert again.precision_ == synth.precision_ in ("float32", "bfloat16")
    assert (again.epochs_, again.batch_size_) == (synth.epochs_, synth.batch_size_) == (1.0, 16)
    ran = synth.resolved_params()
    assert ran["precision"] == synth.precision_ and ran["steps"] == synth.steps_run_ > 0
    assert ran["batch_size"] == 16 and ran["model_dir"] == synth.backend_.model_dir
    assert ran["epochs"] == pytest.approx(synth.steps_run_ * 16 / len(df), abs=1e-3)
    if lora:
        assert ran["lora_targets"] == synth.backend_.lora_targets != "auto"
    assert again.resolved_params() == ran
    assert again.sample(4, random_state=0).equals(out)
    assert np.allclose(again.score_records(df.head(5)), synth.score_records(df.head(5)),
                       atol=1e-5)


def test_training_changes_only_the_adapters(tmp_path):
    pytest.importorskip("peft")
    model_dir = write_tiny_model(tmp_path / "lm")
    df, schema = frame()
    synth = DPTextSynthesizer(epsilon=math.inf, model_dir=model_dir, lora_rank=4, epochs=2,
                              batch_size=16, random_state=0).fit(df, schema)
    _, arrays = synth.backend_.state()
    assert arrays and all("lora_" in name for name in arrays)


def test_missing_directory_is_a_parameter_error(tmp_path):
    df, schema = frame()
    with pytest.raises(ParameterError, match="model_dir"):
        DPTextSynthesizer(epsilon=math.inf, model_dir=str(tmp_path / "absent"), epochs=1,
                          batch_size=16, random_state=0).fit(df, schema)


def test_adapters_start_from_the_seed_and_leave_the_global_generator_alone(tmp_path):
    pytest.importorskip("peft")
    from dpsynth.synthesizers.text.hf import HFBackend

    model_dir = write_tiny_model(tmp_path / "lm")
    before = torch.random.get_rng_state()

    def lora_a(seed):
        backend = HFBackend.load(model_dir, lora_rank=4, seed=seed)
        return {n: p.detach().clone() for n, p in backend.module.named_parameters()
                if ".lora_A." in n}

    first, again, other = lora_a(1), lora_a(1), lora_a(2)
    assert first and all(torch.equal(first[n], again[n]) for n in first)
    assert not all(torch.equal(first[n], other[n]) for n in first)
    assert torch.equal(torch.random.get_rng_state(), before)


def test_automatic_batch_epochs_and_precision(monkeypatch):
    """``batch_size=None``: a quarter of the records, at most 512 for a model_dir model and
    128 for the byte model; ``precision="auto"``: bfloat16 only for a model_dir model on a
    device that computes it natively."""
    import dpsynth._util.device as device

    hf, byte = DPTextSynthesizer(model_dir="m"), DPTextSynthesizer()
    assert (hf._batch_size(6000), hf._batch_size(1000), hf._batch_size(3)) == (512, 250, 1)
    assert (byte._batch_size(6000), byte._batch_size(400)) == (128, 100)
    assert DPTextSynthesizer(model_dir="m", batch_size=64)._batch_size(6000) == 64
    # epochs=None: 4 for an HF model with LoRA under DP, else 3 (and as given)
    assert (hf._epochs(), byte._epochs()) == (4.0, 3.0)
    assert DPTextSynthesizer(model_dir="m", epsilon=math.inf)._epochs() == 3.0
    assert DPTextSynthesizer(model_dir="m", lora_rank=0)._epochs() == 3.0
    assert DPTextSynthesizer(model_dir="m", epochs=1.5)._epochs() == 1.5
    from dpsynth.synthesizers.dpvae import DPVAESynthesizer

    assert any("epochs" in m for m in DPVAESynthesizer(epochs=None)._dpsgd_problems())
    assert not any("epochs" in m for m in hf._dpsgd_problems())
    cpu = torch.device("cpu")
    for fast in (True, False):
        monkeypatch.setattr(device, "fast_bfloat16", lambda _d, fast=fast: fast)
        assert hf._precision(cpu) == ("bfloat16" if fast else "float32")
        assert byte._precision(cpu) == "float32"
        assert DPTextSynthesizer(model_dir="m", precision="float32")._precision(cpu) == "float32"
    with pytest.raises(ParameterError, match="precision"):
        DPTextSynthesizer(precision="half").fit(*frame())


def test_guided_scores_follow_the_formula():
    """log p(x|c) + w (log p(x|c) - log sum_j pi_j p(x|c_j)); w = 0 is the plain model and
    the weights' scale does not matter."""
    from dpsynth.synthesizers.text.hf import _guided

    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(3, 7, generator=gen), torch.randn(3, 7, generator=gen)
    la, lb = a.log_softmax(-1), b.log_softmax(-1)
    log_w = torch.tensor([0.25, 0.75]).log()
    want = la + 1.5 * (la - torch.logaddexp(la + log_w[0], lb + log_w[1]))
    assert torch.allclose(_guided([a, b], log_w, 1.5), want, atol=1e-6)
    assert torch.allclose(_guided([a, b], log_w, 0.0), la, atol=1e-6)
    scaled = _guided([a, b], log_w + 3.0, 1.5)
    assert torch.allclose(scaled.softmax(-1), want.softmax(-1), atol=1e-6)
    # guidance pushes towards tokens the condition favours over the mixture
    assert ((scaled.softmax(-1) - la.softmax(-1)) * (la - lb)).sum() > 0


def test_guidance_samples_and_is_checked(tmp_path):
    pytest.importorskip("peft")
    model_dir = write_tiny_model(tmp_path / "lm", "llama")
    df, schema = frame()
    synth = DPTextSynthesizer(epsilon=math.inf, model_dir=model_dir, lora_rank=4, epochs=2,
                              batch_size=16, random_state=0, labeller=False).fit(df, schema)
    plain = synth.sample(6, random_state=3)
    backend = synth.backend_
    head = synth._headers(plain.head(1))[0]
    kwargs = {"max_length": 8, "temperature": 1.0, "top_p": 1.0}
    alone = backend.generate(head, 4, generator=torch.Generator().manual_seed(5), **kwargs)
    itself = backend.generate(head, 4, generator=torch.Generator().manual_seed(5),
                              guide=[(head, 1.0)], guidance=2.0, **kwargs)
    assert itself == alone  # guiding against the condition alone changes nothing
    synth.guidance = 3.0
    guided = synth.sample(6, random_state=3)
    assert guided.kind.equals(plain.kind) and not guided.text.equals(plain.text)
    synth.save(tmp_path / "fitted")
    assert BaseSynthesizer.load(tmp_path / "fitted").sample(6, random_state=3).equals(guided)
    synth.guidance = -1.0
    with pytest.raises(ParameterError, match="guidance"):
        synth.sample(2)
    byte = DPTextSynthesizer(epsilon=3.0, pretrained=None, guidance=1.0, random_state=0)
    with pytest.raises(ParameterError, match="HF model"):  # refused before spending
        byte.fit(df, schema)
    byte = DPTextSynthesizer(epsilon=math.inf, pretrained=None, epochs=0.2, batch_size=16,
                             d_model=16, n_layers=1, n_heads=2, random_state=0)
    byte.fit(df, schema).guidance = 1.0
    with pytest.raises(ParameterError, match="HF model"):
        byte.sample(2)
    wide = pd.DataFrame({"kind": [f"k{i % 20}" for i in range(60)], "text": TEXTS * 20})
    many = Schema((Column("kind", "categorical", categories=tuple(f"k{i}" for i in range(20))),
                   Column("text", "text", max_length=16)))
    with pytest.raises(ParameterError, match="20"):
        DPTextSynthesizer(epsilon=3.0, model_dir=model_dir, guidance=1.0).fit(wide, many)


def test_a_decoding_bias_moves_the_draws_and_zero_changes_nothing(tmp_path):
    """``generate``'s ``bias`` is added to the next-token scores: a zero bias draws what no
    bias draws, and a large bias on one token makes it every token drawn."""
    model_dir = write_tiny_model(tmp_path / "lm", "llama")
    df, schema = frame()
    synth = DPTextSynthesizer(epsilon=math.inf, model_dir=model_dir, lora_rank=0, epochs=1,
                              batch_size=16, random_state=0, labeller=False).fit(df, schema)
    backend = synth.backend_
    head = synth._headers(df.head(1))[0]
    kwargs = {"max_length": 6, "temperature": 1.0, "top_p": 0.9}
    plain = backend.generate(head, 5, generator=torch.Generator().manual_seed(2), **kwargs)
    vocab = backend.wrapper.lm.get_output_embeddings().weight.shape[0]
    zero = backend.generate(head, 5, generator=torch.Generator().manual_seed(2),
                            bias=torch.zeros(vocab), **kwargs)
    assert zero == plain
    word = backend._ids(" printer")[0]
    push = torch.zeros(vocab)
    push[word] = 100.0
    pushed = backend.generate(head, 5, generator=torch.Generator().manual_seed(2), bias=push,
                              **kwargs)
    piece = backend.decode_text([word])
    assert pushed != plain
    assert all(t.count(piece.strip()) >= 5 for t in pushed), pushed
