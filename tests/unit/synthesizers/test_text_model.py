"""The byte transformer and its coding: causality, cache, per-record loss and clipping unit."""

from __future__ import annotations

import numpy as np
import torch
from opacus import GradSampleModule

from dpsynth.synthesizers.text import codec
from dpsynth.synthesizers.text.model import (
    RecordNLL,
    TransformerConfig,
    build_model,
    draw_token,
    sample_continuations,
    split_batch,
)

CFG = TransformerConfig(d_model=16, n_layers=2, n_heads=2, d_ff=32, max_positions=64)



def _stacked(texts: list[str], heads: list[str] | None = None) -> torch.Tensor:
    heads = heads or [""] * len(texts)
    return torch.from_numpy(codec.encode_records(texts, heads, 40).stacked())


def test_codec_round_trip_and_weights():
    head = codec.header({"kind": "billing"})
    coded = codec.encode_records(["héllo", "a"], [head, ""], 40)
    assert coded.tokens[0, 0] == codec.BOS
    first = 1 + len(head.encode())
    assert coded.weights[0, :first].sum() == 0  # no loss on BOS and header
    assert coded.weights[0].sum() == len("héllo".encode()) + 1  # text bytes + EOS
    assert codec.decode(coded.tokens[0, first:]) == "héllo"
    assert coded.tokens[1, 3] == codec.PAD and coded.weights[1, 3] == 0


def test_truncation_never_splits_a_character():
    raw = codec.truncate_bytes("aé" * 10, 4)  # "aéa" is 4 bytes; "aéaé" would be 6
    assert raw.decode("utf-8") == "aéa"
    assert codec.clean_text("a\x1eb\x1fc") == "abc"


def test_future_tokens_do_not_change_past_logits():
    model = build_model(CFG, 0).eval()
    x = torch.randint(0, 256, (1, 12))
    y = x.clone()
    y[0, 8:] = torch.randint(0, 256, (4,))
    with torch.no_grad():
        a, b = model(x), model(y)
    assert torch.allclose(a[:, :8], b[:, :8], atol=1e-6)
    assert not torch.allclose(a[:, 8:], b[:, 8:])


def test_cached_steps_match_the_full_forward():
    model = build_model(CFG, 1).eval()
    x = torch.randint(0, 256, (2, 10))
    with torch.no_grad():
        full = model(x)
        logits, cache = model.forward_cached(x[:, :6], None)
        steps = [logits[:, -1]]
        for t in range(6, 10):
            logits, cache = model.forward_cached(x[:, t:t + 1], cache)
            steps.append(logits[:, -1])
    assert torch.allclose(torch.stack(steps[:-1], 1), full[:, 5:9], atol=1e-5)


def test_record_loss_ignores_padding_and_other_records():
    model = build_model(CFG, 2).eval()
    crit = RecordNLL()
    crit.reduction = "none"
    alone = _stacked(["short one"])
    mixed = _stacked(["short one", "a much longer record than the first"])
    with torch.no_grad():
        la = crit(model(split_batch(alone)[0]), split_batch(alone)[1])
        inputs, target = split_batch(mixed)
        lm = crit(model(inputs), target)
    assert torch.allclose(la[0], lm[0], atol=1e-5)


def test_opacus_per_sample_gradients_are_per_record():
    """The clipping unit is the record: Opacus' per-sample gradient of record i equals the
    gradient of record i's loss computed alone (microbatch reference)."""
    batch = _stacked(["first record", "second, longer record", "x"])
    inputs, target = split_batch(batch)
    model = build_model(CFG, 3)
    reference = []
    for i in range(len(inputs)):
        model.zero_grad()
        RecordNLL()(model(inputs[i:i + 1]), target[i:i + 1]).backward()
        reference.append({n: p.grad.clone() for n, p in model.named_parameters()})
    wrapped = GradSampleModule(build_model(CFG, 3), loss_reduction="sum")
    crit = RecordNLL()
    crit.reduction = "sum"
    crit(wrapped(inputs), target).backward()
    for name, p in wrapped._module.named_parameters():
        for i in range(len(inputs)):
            assert torch.allclose(p.grad_sample[i], reference[i][name], atol=1e-5), name


def test_sampling_stops_at_eos_and_respects_length():
    model = build_model(CFG, 4).eval()
    gen = torch.Generator().manual_seed(0)
    rows = sample_continuations(model, codec.encode_prompt(""), 5, max_new=20, temperature=1.0,
                                top_p=0.9, generator=gen)
    assert all(len(r) == 20 for r in rows)
    for r in rows:
        assert codec.BOS not in r
        if codec.EOS in r:
            assert set(r[r.index(codec.EOS) + 1:]) <= {codec.PAD}


def test_draw_token_nucleus_and_banned():
    logits = torch.tensor([[0.0, 5.0, 1.0, 4.9]])
    gen = torch.Generator().manual_seed(0)
    tiny_p = {int(draw_token(logits, 1.0, 1e-6, gen)) for _ in range(20)}
    assert tiny_p == {1}
    banned = {int(draw_token(logits, 1.0, 1.0, gen, banned=(1,))) for _ in range(50)}
    assert 1 not in banned
    assert int(draw_token(logits, 0.0, 1.0, gen)) == 1  # temperature 0: greedy


def test_initialisation_is_seeded_and_leaves_global_rng_alone():
    state = torch.random.get_rng_state()
    a, b = build_model(CFG, 7), build_model(CFG, 7)
    assert torch.equal(torch.random.get_rng_state(), state)
    for (_, p), (_, q) in zip(a.named_parameters(), b.named_parameters(), strict=True):
        assert torch.equal(p, q)
    assert not np.allclose(build_model(CFG, 8).tok.weight.detach(), a.tok.weight.detach())
