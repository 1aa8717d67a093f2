"""The CPU speed levers of HF text models (issue 17): adapters in the top blocks only,
sampling from a merged bfloat16 copy, and the nucleus drawn from the likeliest candidates.

Logic only, on the tiny random llama model (no timing; the speed is measured by
``benchmarks/bench_text_speed.py``).
"""

from __future__ import annotations

import math
import threading

import numpy as np
import pandas as pd
import pytest
import torch

pytest.importorskip("transformers")
pytest.importorskip("peft")
pytest.importorskip("tokenizers")

import tiny_models  # noqa: E402

from dpsynth.errors import ParameterError  # noqa: E402
from dpsynth.schema import Column, Schema  # noqa: E402
from dpsynth.synthesizers import BaseSynthesizer  # noqa: E402
from dpsynth.synthesizers.text import DPTextSynthesizer  # noqa: E402
from dpsynth.synthesizers.text import model as text_model  # noqa: E402
from dpsynth.synthesizers.text.hf import HFBackend, n_blocks  # noqa: E402

TEXTS = ["the printer is broken again", "please reset my password", "my invoice is wrong"]

pytestmark = pytest.mark.usefixtures("no_network")  # one torch thread: conftest


@pytest.fixture(scope="module")
def llama_dir(tmp_path_factory):
    return tiny_models.write_tiny_model(tmp_path_factory.mktemp("lm"), "llama",
                                        texts=TEXTS * 5)


def frame() -> tuple[pd.DataFrame, Schema]:
    df = pd.DataFrame({"kind": ["hw", "acct", "bill"] * 20, "text": TEXTS * 20})
    schema = Schema((Column("kind", "categorical", categories=("hw", "acct", "bill")),
                     Column("text", "text", max_length=16)))
    return df, schema


def _adapted_blocks(backend: HFBackend) -> set[int]:
    names = [n for n, p in backend.module.named_parameters() if p.requires_grad]
    assert names and all("lora_" in n for n in names)
    return {int(n.split(".layers.")[1].split(".")[0]) for n in names}


def test_adapters_only_in_the_top_blocks(llama_dir):
    every = HFBackend.load(llama_dir, lora_rank=2, seed=0)
    depth = n_blocks(every.module.lm)
    assert depth >= 2 and _adapted_blocks(every) == set(range(depth))
    top = HFBackend.load(llama_dir, lora_rank=2, seed=0, lora_layers=1)
    assert _adapted_blocks(top) == {depth - 1}
    assert top.lora_layers == 1
    names = {n.rsplit(".", 2)[0] for n, p in top.module.named_parameters() if p.requires_grad}
    assert any("mlp" in n for n in names) and any("self_attn" in n for n in names)
    attention = HFBackend.load(llama_dir, lora_rank=2, seed=0, lora_layers=1,
                               lora_targets="q_proj,v_proj")
    assert _adapted_blocks(attention) == {depth - 1}
    assert all(("q_proj" in n or "v_proj" in n) for n, p in
               attention.module.named_parameters() if p.requires_grad)


@pytest.mark.parametrize("layers", [0, -1, 1.5, "2"])
def test_invalid_lora_layers_is_a_parameter_error(llama_dir, layers):
    df, schema = frame()
    with pytest.raises(ParameterError, match="lora_layers"):
        DPTextSynthesizer(epsilon=math.inf, model_dir=llama_dir, lora_rank=2,
                          lora_layers=layers, epochs=1, batch_size=16).fit(df, schema)


def test_more_lora_layers_than_blocks_is_a_parameter_error(llama_dir):
    with pytest.raises(ParameterError, match="lora_layers"):
        HFBackend.load(llama_dir, lora_rank=2, seed=0, lora_layers=99)


def test_lora_layers_and_bfloat16_sampling_survive_save_and_load(llama_dir, tmp_path):
    df, schema = frame()
    synth = DPTextSynthesizer(epsilon=3.0, model_dir=llama_dir, lora_rank=2, lora_layers=1,
                              epochs=1, batch_size=16, precision="bfloat16",
                              random_state=0).fit(df, schema)
    assert synth.backend_.lora_layers == 1 and synth.grad_sample_mode_ == "bookkeeping"
    out = synth.sample(6, random_state=0)
    assert out.text.map(lambda t: isinstance(t, str)).all()
    synth.save(tmp_path / "fitted")
    again = BaseSynthesizer.load(tmp_path / "fitted")
    assert again.backend_.lora_layers == 1
    assert again.backend_.sample_precision == "bfloat16"
    assert _adapted_blocks(again.backend_) == _adapted_blocks(synth.backend_)
    assert again.sample(6, random_state=0).equals(out)
    assert np.allclose(again.score_records(df.head(5)), synth.score_records(df.head(5)),
                       atol=1e-5)


def test_bfloat16_sampling_copy_merges_the_adapters_and_follows_the_weights(llama_dir):
    backend = HFBackend.load(llama_dir, lora_rank=2, seed=0)
    backend.sample_precision = "bfloat16"
    copy = backend._sampler()
    assert all(p.dtype == torch.bfloat16 for p in copy.parameters())
    assert not any("lora_" in n for n, _ in copy.named_parameters())  # merged
    assert backend._sampler() is copy  # kept while the weights stay
    assert all(p.dtype == torch.float32 for p in backend.module.parameters())  # untouched
    coded = torch.from_numpy(backend.code(TEXTS, [""] * 3, 16))
    with torch.no_grad():
        want = backend.wrapper(coded[:, 0])  # the logits
        got = copy(input_ids=coded[:, 0]).logits.float()
    assert torch.allclose(got.log_softmax(-1), want.log_softmax(-1), atol=0.1)
    with torch.no_grad():  # a training step changes an adapter: a new copy
        next(p for n, p in backend.module.named_parameters() if ".lora_B." in n).add_(0.5)
    assert backend._sampler() is not copy
    vocab = len(backend.tokenizer)
    texts = backend.generate("", 8, max_length=10, temperature=1.0, top_p=0.9,
                             generator=torch.Generator().manual_seed(0))
    assert len(texts) == 8 and all(isinstance(t, str) for t in texts)
    ids = [i for t in texts for i in backend._ids(t)]
    assert all(0 <= i < vocab for i in ids)
    backend.sample_precision = "float32"
    assert backend._sampler() is backend.module.lm


def _exact_nucleus(logits: torch.Tensor, top_p: float) -> list[set[int]]:
    probs = logits.softmax(-1)
    ordered, order = probs.sort(-1, descending=True)
    keep = ordered.cumsum(-1) - ordered <= top_p
    return [set(order[r][keep[r]].tolist()) for r in range(len(logits))]


@pytest.mark.parametrize("scale", [0.2, 1.5, 4.0])  # full sort, 2,048 and 256 candidates
def test_nucleus_from_candidates_is_the_full_sort_nucleus(scale):
    logits = torch.randn(3, 3000, generator=torch.Generator().manual_seed(0)) * scale
    nucleus = _exact_nucleus(logits, 0.9)
    gen = torch.Generator().manual_seed(1)
    draws = torch.stack([text_model.draw_token(logits, 1.0, 0.9, gen) for _ in range(400)])
    for r in range(3):
        assert set(draws[:, r].tolist()) <= nucleus[r]
    top = logits.softmax(-1).argmax(-1)  # the likeliest token at its renormalised share
    share = logits.softmax(-1).max(-1).values / torch.tensor(
        [logits.softmax(-1)[r, list(nucleus[r])].sum() for r in range(3)])
    freq = (draws == top).double().mean(0)
    assert torch.all((freq - share).abs() < 4 * torch.sqrt(share * (1 - share) / 400) + 0.01)


@pytest.mark.parametrize("native", [True, False])
def test_auto_sampling_precision_follows_the_device(llama_dir, monkeypatch, native):
    from dpsynth._util import device

    monkeypatch.setattr(device, "_CPU_BF16", [native])
    assert device.fast_bfloat16(torch.device("cpu")) is native
    df, schema = frame()
    synth = DPTextSynthesizer(epsilon=math.inf, model_dir=llama_dir, lora_rank=2, epochs=1,
                              batch_size=16, random_state=0).fit(df, schema)
    backend = synth.backend_
    assert backend.sample_precision == "auto"
    sampler = backend._sampler()
    assert (sampler is not backend.module.lm) is native
    assert next(sampler.parameters()).dtype == (torch.bfloat16 if native else torch.float32)


def test_micro_batches_group_records_of_similar_length():
    from dpsynth.synthesizers.text.microbatch import ChunkedLoss

    lengths = [10, 2, 9, 3, 8, 1]
    batch = torch.zeros((len(lengths), 2, 12), dtype=torch.long)
    for i, k in enumerate(lengths):
        batch[i, 0, :k + 1] = i + 1
        batch[i, 1, 1:k + 1] = 1
    chunks = ChunkedLoss(lambda part, crit: None, None, batch, 2, "float32")._chunks()
    got = [sorted(lengths[int(r) - 1] for r in c[:, 0, 0]) for c in chunks]
    assert got == [[1, 2], [3, 8], [9, 10]]
    assert torch.equal(torch.cat(chunks)[:, 0, 0].sort().values, batch[:, 0, 0].sort().values)


def test_cli_lora_layers_reaches_the_saved_model(llama_dir, tmp_path):
    import typer
    from typer.testing import CliRunner

    from dpsynth.commands.text import register

    root = typer.Typer()
    root.callback()(lambda: None)
    register(root)
    df, schema = frame()
    df.to_csv(tmp_path / "t.csv", index=False)
    schema.save(tmp_path / "s.yaml")
    result = CliRunner().invoke(root, [
        "text", "fit", str(tmp_path / "t.csv"), "--schema", str(tmp_path / "s.yaml"),
        "--out", str(tmp_path / "m"), "--model-dir", llama_dir, "--lora-rank", "2",
        "--lora-layers", "1", "--epsilon", "3", "--epochs", "0.5", "--batch-size", "16",
        "--seed", "0"])
    assert result.exit_code == 0, result.output
    assert BaseSynthesizer.load(tmp_path / "m").backend_.lora_layers == 1


def test_preallocated_cache_gives_the_dynamic_caches_logits(llama_dir):
    """The in-place key/value cache holds the same values as transformers' growing one:
    the same logits at every step, through a growth past its first size and a dropped row."""
    from transformers import AutoModelForCausalLM

    from dpsynth.synthesizers.text.hf import cache_keyword, cache_of
    from dpsynth.synthesizers.text.kvcache import preallocate

    lm = AutoModelForCausalLM.from_pretrained(llama_dir, dtype=torch.float32).eval()
    key = cache_keyword(lm)
    gen = torch.Generator().manual_seed(0)
    prompt = torch.randint(3, lm.config.vocab_size, (3, 4), generator=gen)
    with torch.no_grad():
        plain = cache_of(lm(input_ids=prompt, use_cache=True))
        fixed = cache_of(lm(input_ids=prompt, use_cache=True))
        assert preallocate(fixed, 6)  # 4 prompt positions + 2: it must grow on the way
        assert not preallocate(object(), 6)
        rows = 3
        for step in range(6):
            if step == 3:  # the middle row leaves the batch
                keep = torch.tensor([0, 2])
                plain.batch_select_indices(keep)
                fixed.batch_select_indices(keep)
                rows = 2
            tok = torch.randint(3, lm.config.vocab_size, (rows, 1), generator=gen)
            a = lm(input_ids=tok, use_cache=True, **{key: plain}).logits
            b = lm(input_ids=tok, use_cache=True, **{key: fixed}).logits
            torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
        assert fixed.get_seq_length() == plain.get_seq_length() == 10


@pytest.mark.parametrize("vocab", [49152, 259, 100])
def test_inverse_cdf_is_the_running_sum_search(vocab):
    """The two-level draw picks the index a full running sum would (exact dyadic sums), and
    never one of zero probability."""
    gen = torch.Generator().manual_seed(vocab)
    probs = torch.randint(0, 16, (32, vocab), generator=gen).float() / 1024
    probs[:, ::5] = 0.0
    uniform = torch.randint(0, 4096, (32,), generator=gen).double() / 4096
    got = text_model.inverse_cdf(probs, uniform)
    cdf = probs.double().cumsum(-1)
    want = torch.searchsorted(cdf, (uniform * cdf[:, -1])[:, None], right=True)
    assert torch.equal(got, want.clamp(max=vocab - 1))
    assert bool((probs.gather(1, got) > 0).all())


def test_nucleus_renormalises_after_banned_tokens():
    """A banned token is never drawn even when it holds most of the mass; the nucleus is
    taken among the others (here all three, tied)."""
    logits = torch.tensor([[10.0, 0.0, 0.0, 0.0]] * 4)
    gen = torch.Generator().manual_seed(0)
    draws = torch.stack([text_model.draw_token(logits, 1.0, 0.9, gen, banned=(0,))
                         for _ in range(300)])
    assert set(draws.flatten().tolist()) == {1, 2, 3}
    freq = torch.bincount(draws.flatten(), minlength=4)[1:].double() / draws.numel()
    assert torch.all((freq - 1 / 3).abs() < 0.05)


def test_reused_logits_are_the_output_layers_and_live_for_their_slots():
    from dpsynth.synthesizers.text.kvcache import ReusedLogits

    gen = torch.Generator().manual_seed(0)
    linear = torch.nn.Linear(8, 50)
    with torch.no_grad():
        linear.weight.copy_(torch.randn(50, 8, generator=gen))
        linear.bias.copy_(torch.randn(50, generator=gen))
    head = ReusedLogits(linear)
    x = [torch.randn(4, 1, 8, generator=gen) for _ in range(3)]
    with torch.no_grad():
        plain = [linear(v) for v in x]
        torch.testing.assert_close(head(x[0]), plain[0])  # no ring: a plain layer
        head._ring, head._next = [None, None], 0  # what reusing_logits(model, 2) sets
        head._owner = threading.get_ident()
        first = head(x[0])
        second = head(x[1])
        torch.testing.assert_close(first, plain[0])  # still valid after one more forward
        torch.testing.assert_close(second, plain[1])
        third = head(x[2])  # the third overwrites the first's buffer
        torch.testing.assert_close(third, plain[2])
        assert third.data_ptr() == first.data_ptr()


@pytest.mark.parametrize("guided", [False, True])
def test_reused_logits_do_not_change_the_samples(llama_dir, monkeypatch, guided):
    """Decoding with the ring of reused logits buffers (one or two streams) draws the same
    texts as with a new tensor at every step."""
    from dpsynth.synthesizers.text import hf, kvcache

    backend = HFBackend.load(llama_dir, lora_rank=2, seed=0)
    backend.sample_precision = "bfloat16"
    head = "source=a\x1e"
    kwargs = dict(max_length=12, temperature=1.0, top_p=0.9,
                  guide=[(head, 0.5), ("source=b\x1e", 0.5)] if guided else (),
                  guidance=2.0 if guided else 0.0)
    assert isinstance(backend._sampler().get_output_embeddings(), kvcache.ReusedLogits)
    reused = backend.generate(head, 16, generator=torch.Generator().manual_seed(3), **kwargs)

    def fresh_every_time(model, slots):
        import contextlib

        return contextlib.nullcontext()

    monkeypatch.setattr(hf, "reusing_logits", fresh_every_time)
    plain = backend.generate(head, 16, generator=torch.Generator().manual_seed(3), **kwargs)
    assert reused == plain


def test_reused_logits_serve_only_the_outermost_loop_of_one_thread():
    from dpsynth.synthesizers.text.kvcache import ReusedLogits, reusing_logits

    class Model(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.head = ReusedLogits(torch.nn.Linear(4, 6))

        def get_output_embeddings(self):
            return self.head

    model, x = Model(), torch.ones(2, 4)
    seen: list[int] = []
    with torch.no_grad(), reusing_logits(model, 1):
        a, b = model.head(x), model.head(x)
        assert a.data_ptr() == b.data_ptr()  # one slot: the same buffer
        with reusing_logits(model, 1):  # nested: no ring of its own, the outer one's stays
            assert model.head._owner == threading.get_ident()
        other = threading.Thread(target=lambda: seen.append(model.head(x).data_ptr()))
        other.start()
        other.join()
        assert seen and seen[0] != a.data_ptr()  # another thread: a new tensor
    assert model.head._ring == [] and model.head._owner is None
