"""The frozen output layer fused with the loss, in chunks (``text/headloss.py``): the same
losses and gradients as the logits path, on random tensors and on tiny HF models."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from dpsynth.synthesizers._bookkeeping import BookkeepingClipper, BookkeepingCriterion
from dpsynth.synthesizers.text import headloss
from dpsynth.synthesizers.text.headloss import HeadRecordNLL, chunk_rows, head_nll
from dpsynth.synthesizers.text.model import RecordNLL, split_batch

TEXTS = ["the printer is broken again", "please reset my password", "my invoice is wrong",
         "Just watched the debate. Great night!", "refund please", "where is my parcel?"]


@pytest.fixture
def small_chunks(monkeypatch):
    """Chunks of 3 positions for a vocabulary of 50 (several chunks and a ragged last one)."""
    monkeypatch.setattr(headloss, "CHUNK_BYTES", 3 * 4 * 50)


def test_head_nll_equals_cross_entropy_and_its_gradient(small_chunks):
    gen = torch.Generator().manual_seed(0)
    hidden = torch.randn(11, 8, generator=gen, requires_grad=True)
    weight = torch.randn(50, 8, generator=gen)
    targets = torch.randint(0, 50, (11,), generator=gen)
    upstream = torch.rand(11, generator=gen)
    nll = head_nll(hidden, weight, targets)
    (nll * upstream).sum().backward()
    got = hidden.grad.clone()
    hidden.grad = None
    ref = F.cross_entropy(hidden @ weight.T, targets, reduction="none")
    (ref * upstream).sum().backward()
    assert torch.allclose(nll, ref, atol=1e-5)
    assert torch.allclose(got, hidden.grad, atol=1e-5)
    assert float(got.abs().sum()) > 0


def test_no_gradient_is_formed_without_autograd(small_chunks):
    hidden = torch.randn(5, 8, requires_grad=True)
    with torch.no_grad():
        out = head_nll(hidden, torch.randn(50, 8), torch.zeros(5, dtype=torch.long))
    assert out.grad_fn is None and out.shape == (5,)


def test_bfloat16_head_matches_autocast_on_the_logits(small_chunks):
    gen = torch.Generator().manual_seed(1)
    hidden = torch.randn(2, 7, 8, generator=gen, requires_grad=True)
    weight = torch.randn(50, 8, generator=gen)
    target = torch.stack([torch.randint(0, 50, (2, 7), generator=gen),
                          torch.ones(2, 7, dtype=torch.long)], dim=1)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        fused = HeadRecordNLL(weight)
        fused.reduction = "sum"
        got = fused(hidden, target)
    got.backward()
    grad = hidden.grad.clone()
    hidden.grad = None
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ref = RecordNLL()
        ref.reduction = "sum"
        want = ref(F.linear(hidden, weight), target)
    want.backward()
    assert fused._cast is not None and fused._cast[1].dtype == torch.bfloat16
    assert torch.allclose(got, want.float(), rtol=1e-3)
    assert torch.allclose(grad, hidden.grad, atol=2e-2 * float(hidden.grad.abs().max()))


def test_positions_without_loss_weight_are_not_computed(small_chunks):
    gen = torch.Generator().manual_seed(2)
    hidden = torch.randn(3, 6, 8, generator=gen)
    weight = torch.randn(50, 8, generator=gen)
    ids = torch.randint(0, 50, (3, 6), generator=gen)
    weights = torch.ones(3, 6, dtype=torch.long)
    weights[0, :2] = 0  # a header
    weights[2, 4:] = 0  # padding
    fused, ref = HeadRecordNLL(weight), RecordNLL()
    fused.reduction = ref.reduction = "none"
    want = ref(F.linear(hidden, weight), torch.stack([ids, weights], dim=1))
    ids = ids.masked_fill(weights == 0, 10_000)  # no such token: must never be looked up
    got = fused(hidden, torch.stack([ids, weights], dim=1))
    assert torch.allclose(got, want, atol=1e-5)


# -- on tiny Hugging Face models, through the backend ------------------------------------------

transformers = pytest.importorskip("transformers")


@pytest.fixture(scope="module", params=["llama", "gpt2"])
def tiny(request, tmp_path_factory):
    import tiny_models

    path = tmp_path_factory.mktemp(f"tiny-{request.param}")
    folder = tiny_models.write_tiny_model(path, request.param, texts=TEXTS)
    if request.param == "gpt2":  # no dropout: the two paths must see the same network
        config = transformers.AutoConfig.from_pretrained(folder, local_files_only=True)
        config.resid_pdrop = config.embd_pdrop = config.attn_pdrop = 0.0
        config.save_pretrained(folder)
    return folder


def _backend(folder, rank):
    from dpsynth.synthesizers.text.hf import HFBackend

    return HFBackend.load(folder, lora_rank=rank, seed=0, lora_targets="all-linear")


def _rows(backend):
    return torch.from_numpy(backend.code(TEXTS, ["source=a\x1e"] * len(TEXTS), 16))


@pytest.mark.parametrize("precision", ["float32", "bfloat16"])
def test_the_fused_backend_gives_the_logits_path_losses_and_clipped_sums(tiny, precision):
    pytest.importorskip("peft")
    from dpsynth.synthesizers.text import hf

    backend = _backend(tiny, 2)
    assert isinstance(backend.module, hf._Hidden)
    assert isinstance(backend.criterion(), HeadRecordNLL)
    inputs, target = split_batch(_rows(backend))
    with torch.no_grad():  # adapters away from zero, so that every LoRA matrix has a gradient
        for name, p in backend.wrapper.lm.named_parameters():
            if ".lora_B." in name:
                p.copy_(torch.randn(p.shape, generator=torch.Generator().manual_seed(3)) * 0.1)
    sums, losses = [], []
    for module, criterion in ((backend.wrapper, RecordNLL()),
                              (backend.module, backend.criterion())):
        clipper = BookkeepingClipper(module, 0.05)
        clipper.attach()
        try:
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bfloat16"):
                loss = BookkeepingCriterion(criterion, clipper)(module(inputs), target)
            loss.backward()
            sums.append(clipper.summed.clone())
            losses.append(loss.per_sample.detach().float())
        finally:
            clipper.detach()
    tol = 1e-5 if precision == "float32" else 2e-2
    assert float(sums[0].abs().sum()) > 0
    assert torch.allclose(losses[1], losses[0], rtol=tol, atol=tol)
    assert torch.allclose(sums[1], sums[0], atol=tol * float(sums[0].abs().max()))


def test_record_scores_are_the_same_through_either_path(tiny):
    pytest.importorskip("peft")
    from dpsynth.synthesizers.text.backend import backend_nll
    from dpsynth.synthesizers.text.model import record_nll

    backend = _backend(tiny, 2)
    stacked = _rows(backend)
    fused = backend_nll(backend, stacked.numpy())
    plain = record_nll(backend.wrapper, stacked).numpy()
    assert fused.shape == (len(TEXTS),)
    assert abs(fused - plain).max() < 1e-5


def test_a_trainable_head_keeps_the_logits_path(tiny):
    from dpsynth.synthesizers.text import hf

    backend = _backend(tiny, 0)  # rank 0: every weight trained, the head included
    assert backend.module is backend.wrapper
    assert isinstance(backend.criterion(), RecordNLL)
    assert hf.frozen_head(backend.wrapper.lm) is None


def test_every_clipping_mode_trains_through_the_fused_head(tmp_path):
    """Book-keeping, Opacus ghost clipping and Opacus hooks all train through the fused loss
    (the module returns hidden states, the criterion applies the head), and the same seed
    gives them the same training losses."""
    pytest.importorskip("peft")
    import pandas as pd
    import tiny_models

    from dpsynth.schema import Column, Schema
    from dpsynth.synthesizers.text import DPTextSynthesizer

    folder = tiny_models.write_tiny_model(tmp_path, "llama", texts=TEXTS)
    df = pd.DataFrame({"source": ["a", "b"] * 12, "text": (TEXTS * 4)})
    schema = Schema((Column("source", "categorical", categories=("a", "b")),
                     Column("text", "text", max_length=16)))
    losses = {}
    for mode in ("bookkeeping", "ghost", "hooks"):
        synth = DPTextSynthesizer(epsilon=8, model_dir=folder, grad_sample_mode=mode, epochs=1,
                                  batch_size=8, max_length=16, random_state=0, labeller=False)
        synth.fit(df, schema)
        assert synth.grad_sample_mode_ == mode
        losses[mode] = synth.loss_history_
    assert losses["ghost"] == pytest.approx(losses["bookkeeping"], abs=1e-3)
    assert losses["hooks"] == pytest.approx(losses["bookkeeping"], abs=1e-3)


def test_chunks_are_larger_on_a_gpu_and_never_empty():
    """24 MB of float32 logits per chunk on a CPU (128 positions of SmolLM2's 49,152
    entries), 256 MB on CUDA; at least one position, at most all of them."""
    assert chunk_rows(10_000, 49_152, "cpu") == 128
    assert chunk_rows(10_000, 49_152, "cuda") == 1365
    assert chunk_rows(5, 49_152, "cuda") == 5
    assert chunk_rows(10, 10**9, "cpu") == 1


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_head_nll_on_cuda_in_one_large_chunk():
    gen = torch.Generator().manual_seed(0)
    hidden = torch.randn(300, 16, generator=gen).cuda().requires_grad_()
    weight = torch.randn(1000, 16, generator=gen).cuda()
    targets = torch.randint(0, 1000, (300,), generator=gen).cuda()
    nll = head_nll(hidden, weight, targets)
    nll.sum().backward()
    got = hidden.grad.clone()
    hidden.grad = None
    ref = F.cross_entropy(hidden @ weight.T, targets, reduction="none")
    ref.sum().backward()
    assert torch.allclose(nll, ref, atol=1e-4)
    assert torch.allclose(got, hidden.grad, atol=1e-4)
