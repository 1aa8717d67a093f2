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
