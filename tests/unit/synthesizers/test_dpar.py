"""DPARSynthesizer: accounting, learned dependencies, conditional sampling, persistence."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from tables import copied_table as _copied
from tables import every_kind_table

from dpsynth.errors import DataValidationError, NotFittedError, ParameterError
from dpsynth.schema import Column, Schema
from dpsynth.synthesizers import _dpsgd, _dpsgd_base
from dpsynth.synthesizers.ar import DPARSynthesizer, sampling
from dpsynth.synthesizers.ar.model import (
    ARConfig,
    ARTransformer,
    ProductOfExperts,
    RowLoss,
    build_model,
)
from dpsynth.synthesizers.base import SYNTHESIZERS, BaseSynthesizer, create

FAST: dict[str, Any] = dict(epochs=4, batch_size=64, d_model=16, n_layers=1, n_heads=2)
N_ROWS = 400


def _table(seed: int = 0, n: int = N_ROWS) -> tuple[pd.DataFrame, Schema]:
    return every_kind_table(seed, n)


@pytest.fixture(scope="module")
def fitted() -> tuple[DPARSynthesizer, pd.DataFrame, Schema]:
    torch.set_num_threads(1)
    df, schema = _table()
    return DPARSynthesizer(epsilon=1.0, random_state=0, **FAST).fit(df, schema), df, schema


@pytest.fixture(scope="module")
def learned_copy() -> tuple[DPARSynthesizer, pd.DataFrame]:
    torch.set_num_threads(1)
    df, schema = _copied()
    synth = DPARSynthesizer(epsilon=math.inf, random_state=0, epochs=30, batch_size=100,
                            d_model=32, n_layers=1, n_heads=2, learning_rate=1e-2)
    return synth.fit(df, schema), df


def _tvd(real: pd.DataFrame, synth: pd.DataFrame, columns: list[str]) -> float:
    """Average 1-way total variation distance over categorical ``columns``."""
    out = [0.5 * real[c].astype(str).value_counts(normalize=True).sub(
        synth[c].astype(str).value_counts(normalize=True), fill_value=0).abs().sum()
        for c in columns]
    return float(np.mean(out))


# -- contract ---------------------------------------------------------------------------------
def test_registered_and_created_by_name():
    assert SYNTHESIZERS["dpar"] is DPARSynthesizer
    assert isinstance(create("dpar", epsilon=2.0), DPARSynthesizer)


def test_sample_before_fit_raises():
    with pytest.raises(NotFittedError):
        DPARSynthesizer().sample(3)
    with pytest.raises(NotFittedError):
        DPARSynthesizer().sample_conditional({"a": 1}, 3)


def test_sample_matches_schema(fitted):
    synth, df, schema = fitted
    out = synth.sample(500, random_state=1)
    assert list(out.columns) == [c.name for c in schema.data_columns]
    Schema(tuple(schema.data_columns)).validate(out)
    assert out["score"].isna().any() and out["score"].notna().any()
    assert out["age"].dtype == np.int64
    pd.testing.assert_frame_equal(out, synth.sample(500, random_state=1))


# -- privacy ----------------------------------------------------------------------------------
def test_dp_training_really_adds_noise():
    """Without noise the model fits the marginals clearly better than at epsilon = 1."""
    df, schema = _copied(n=600, seed=1)
    params = dict(epochs=20, batch_size=30, d_model=16, n_layers=1, n_heads=2,
                  learning_rate=1e-2)
    plain = DPARSynthesizer(epsilon=math.inf, random_state=0, **params).fit(df, schema)
    private = DPARSynthesizer(epsilon=1.0, random_state=0, **params).fit(df, schema)
    assert plain.privacy_ is None and plain.steps_run_ == private.steps_run_
    cols = ["noise", "first", "twin"]
    tvd_plain = _tvd(df, plain.sample(3000, random_state=1), cols)
    tvd_private = _tvd(df, private.sample(3000, random_state=1), cols)
    assert tvd_plain < 0.05
    assert tvd_private > tvd_plain + 0.03


def test_clipped_gradient_matches_per_row_reference():
    """Book-keeping on the transformer clips every row's gradient as a loop over rows does."""
    torch.manual_seed(0)  # the test's own data only; the model has its own generator
    config = ARConfig((3, 5, 4), d_model=8, n_layers=1, n_heads=2)
    tokens = torch.stack([torch.randint(0, v, (6,)) for v in config.vocab_sizes], dim=1)
    model, clip = build_model(config, seed=3), 0.05
    total = [torch.zeros_like(p) for p in model.parameters()]
    for row in tokens:
        model.zero_grad()
        RowLoss()(model(row[None]), row[None]).backward()
        norm = torch.sqrt(sum(p.grad.pow(2).sum() for p in model.parameters()))
        for acc, p in zip(total, model.parameters(), strict=True):
            acc += p.grad * min(1.0, clip / (float(norm) + 1e-6))
    _bookkeeping_step(model, tokens, clip)
    for p, t in zip(model.parameters(), total, strict=True):
        torch.testing.assert_close(p.grad, t / len(tokens), rtol=1e-4, atol=1e-7)


def _bookkeeping_step(model: torch.nn.Module, tokens: torch.Tensor, clip: float) -> None:
    """One book-keeping DP-SGD step on ``tokens`` without noise: ``p.grad`` is then the
    mean clipped gradient."""
    training = _dpsgd.make_private_bookkeeping(
        model, torch.optim.SGD(model.parameters(), lr=0.0), RowLoss(), noise_multiplier=0.0,
        max_grad_norm=clip, expected_batch_size=len(tokens),
        noise_fn=lambda ref, std: torch.zeros_like(ref))
    training.criterion(training.module(tokens), tokens).backward()
    training.optimizer.step()


@pytest.mark.parametrize("mode", ["bookkeeping", "ghost", "hooks"])
def test_every_mode_clips_every_row_as_a_loop_over_rows(mode):
    """Each ``grad_sample_mode`` (book-keeping, and Opacus' ghost and hooks) gives the clipped
    sum of a loop over rows, with some rows clipped and some not."""
    from dpsynth.accounting import NoiseSource

    gen = torch.Generator().manual_seed(0)
    config = ARConfig((3, 5, 4), d_model=8, n_layers=1, n_heads=2)
    tokens = torch.stack([torch.randint(0, v, (6,), generator=gen) for v in config.vocab_sizes],
                         dim=1)
    model = build_model(config, seed=3)
    norms, grads = [], []
    for row in tokens:
        model.zero_grad()
        RowLoss()(model(row[None]), row[None]).backward()
        grads.append([p.grad.detach().clone() for p in model.parameters()])
        norms.append(float(torch.sqrt(sum(g.pow(2).sum() for g in grads[-1]))))
    clip = float(np.median(norms))
    assert min(norms) < clip < max(norms)  # the check covers clipped and unclipped rows
    total = [sum(g[k] * min(1.0, clip / (n + 1e-6)) for g, n in zip(grads, norms, strict=True))
             for k in range(len(grads[0]))]
    model = build_model(config, seed=3)
    loader = _dpsgd.batch_loader(tokens, _dpsgd.ShuffledBatches(
        len(tokens), len(tokens), 1, NoiseSource.create(0, False)))
    training = _dpsgd.make_private(
        model, torch.optim.SGD(model.parameters(), lr=0.0), RowLoss(), loader,
        noise_multiplier=0.0, max_grad_norm=clip, expected_batch_size=len(tokens),
        noise_fn=lambda ref, std: torch.zeros_like(ref), grad_sample_mode=mode)
    training.optimizer.zero_grad()
    training.criterion(training.module(tokens), tokens).backward()
    training.optimizer.step()
    for p, t in zip(model.parameters(), total, strict=True):
        torch.testing.assert_close(p.grad, t / len(tokens), rtol=1e-4, atol=1e-6)


def test_every_grad_sample_mode_fits_and_samples():
    """Each documented mode trains end to end (ghost used to fail inside Opacus)."""
    df, schema = _table(n=120)
    for mode in ("bookkeeping", "ghost", "hooks"):
        synth = DPARSynthesizer(epsilon=1.0, random_state=0, grad_sample_mode=mode,
                                **{**FAST, "epochs": 1}).fit(df, schema)
        assert synth.grad_sample_mode_ == mode
        assert len(synth.sample(5, random_state=0)) == 5


# -- what the model learns --------------------------------------------------------------------
def test_a_planted_copy_is_learned_without_noise(learned_copy):
    synth, _ = learned_copy
    out = synth.sample(2000, random_state=3)
    assert (out["first"] == out["twin"]).mean() > 0.95


def test_conditional_sampling_keeps_the_given_values(fitted):
    synth, _, schema = fitted
    out = synth.sample_conditional({"colour": "grey", "score": 7.25}, 200, random_state=4)
    assert len(out) == 200 and (out["colour"] == "grey").all() and (out["score"] == 7.25).all()
    Schema(tuple(schema.data_columns)).validate(out)
    rows = pd.DataFrame({"size": [1, 2, 3, 3], "flag": [True, False, True, False]})
    out = synth.sample_conditional(rows, random_state=5)
    assert out["size"].tolist() == [1, 2, 3, 3] and out["flag"].tolist() == rows["flag"].tolist()


def test_conditioning_on_a_later_column_follows_the_learned_dependency(learned_copy):
    """Importance resampling makes earlier columns agree with a given later one."""
    synth, _ = learned_copy
    out = synth.sample_conditional({"twin": "e"}, 300, random_state=6, candidates=64)
    assert (out["twin"] == "e").all()
    assert (out["first"] == "e").mean() > 0.9


def test_bad_conditions_are_rejected(fitted):
    synth, _, _ = fitted
    with pytest.raises(ParameterError, match="'conditions'"):
        synth.sample_conditional({"nope": 1}, 3)
    with pytest.raises(ParameterError, match="'n_rows'"):
        synth.sample_conditional({"colour": "red"})
    with pytest.raises(DataValidationError, match="colour"):
        synth.sample_conditional({"colour": "purple"}, 3)
    with pytest.raises(ParameterError, match="'candidates'"):
        synth.sample_conditional({"colour": "red"}, 3, candidates=0)


def test_hundreds_of_levels_and_values_spread_inside_bins():
    rng = np.random.default_rng(0)
    levels = tuple(f"l{i}" for i in range(300))
    df = pd.DataFrame({"code": rng.choice(levels, 800), "x": rng.uniform(0, 1, 800)})
    schema = Schema((Column("code", "categorical", categories=levels),
                     Column("x", "numeric", lower=0.0, upper=1.0)))
    synth = DPARSynthesizer(epsilon=2.0, random_state=0, n_bins=8, **FAST).fit(df, schema)
    out = synth.sample(2000, random_state=1)
    schema.validate(out)
    assert out["code"].nunique() > 100
    assert out["x"].round(6).nunique() > 1900  # drawn inside the bins, not at fixed points
    assert ((out["x"] == 0.0) | (out["x"] == 1.0)).mean() < 0.01


# -- the product of experts -------------------------------------------------------------------
def _experts_config() -> ARConfig:
    return ARConfig((3, 5, 4), d_model=8, n_layers=1, n_heads=2, network="experts",
                    n_classes=3)


def test_experts_clip_each_group_as_a_loop_over_rows():
    """Book-keeping on the product of experts clips each row's mixture gradient to
    C sqrt(share) and its transformer gradient to C sqrt(1 - share), as a loop over rows."""
    gen = torch.Generator().manual_seed(0)
    config = _experts_config()
    tokens = torch.stack([torch.randint(0, v, (8,), generator=gen) for v in config.vocab_sizes],
                         dim=1)
    model = build_model(config, seed=3)
    (transformer, _), (mixture, share) = model.clip_groups()
    in_mixture = [any(p is q for q in mixture) for p in model.parameters()]
    parts, grads = [], []
    for row in tokens:
        model.zero_grad()
        RowLoss()(model(row[None]), row[None]).backward()
        grads.append([p.grad.detach().clone() for p in model.parameters()])
        parts.append([float(torch.sqrt(sum(g.pow(2).sum() for g, m in zip(
            grads[-1], in_mixture, strict=True) if m == side))) for side in (False, True)])
    norms = np.array(parts)
    clip = float(np.median(norms[:, 1]) / math.sqrt(share))  # some mixture rows clipped
    limits = (clip * math.sqrt(1 - share), clip * math.sqrt(share))
    assert (norms[:, 1] > limits[1]).any() and (norms[:, 1] < limits[1]).any()
    assert (norms[:, 0] > limits[0]).any()  # the transformer's part is clipped too
    total = [sum(g[k] * min(1.0, limits[in_mixture[k]] / (n[in_mixture[k]] + 1e-6))
                 for g, n in zip(grads, parts, strict=True)) for k in range(len(grads[0]))]
    model = build_model(config, seed=3)
    _bookkeeping_step(model, tokens, clip)
    for p, t in zip(model.parameters(), total, strict=True):
        torch.testing.assert_close(p.grad, t / len(tokens), rtol=1e-4, atol=1e-6)
    assert len(transformer) + len(mixture) == len(list(model.parameters()))


def test_clip_groups_are_checked():
    """A model's clip groups must cover every parameter once, with shares summing to 1;
    Opacus' modes cannot clip groups apart and refuse the model."""
    from dpsynth.synthesizers._bookkeeping import BookkeepingClipper

    model = build_model(_experts_config(), seed=0)
    (transformer, _), (mixture, _) = model.clip_groups()
    for groups in ([(transformer, 0.5), (mixture, 0.6)], [(transformer, 1.0)],
                   [(transformer, 0.5), (transformer + mixture, 0.5)]):
        model.clip_groups = lambda groups=groups: groups
        with pytest.raises(ParameterError, match="clip_groups"):
            BookkeepingClipper(model, 1.0)
    model = build_model(_experts_config(), seed=0)
    with pytest.raises(ParameterError, match="bookkeeping"):
        _dpsgd.make_private(model, torch.optim.SGD(model.parameters(), lr=0.0), RowLoss(),
                            None, noise_multiplier=1.0, max_grad_norm=1.0,
                            expected_batch_size=4, noise_fn=lambda ref, std: ref,
                            grad_sample_mode="hooks")


def test_experts_train_each_part_at_its_own_rate():
    model = build_model(_experts_config(), seed=0)
    optimizer = _dpsgd_base.make_optimizer(model, 0.01)
    rates = [group["lr"] for group in optimizer.param_groups]
    assert rates == [0.01, model.config.mixture_learning_rate]
    assert sum(len(g["params"]) for g in optimizer.param_groups) == len(list(model.parameters()))


def test_the_network_is_the_transformer_unless_experts_are_asked_for():
    df, schema = _table(n=200)
    default = DPARSynthesizer(epsilon=1.0, random_state=0, **{**FAST, "epochs": 1})
    assert default.fit(df, schema).network_ == "transformer"
    assert type(default.model_) is ARTransformer
    experts = DPARSynthesizer(epsilon=1.0, random_state=0, network="experts",
                              **{**FAST, "epochs": 1}).fit(df, schema)
    assert experts.network_ == "experts" and isinstance(experts.model_, ProductOfExperts)
    assert experts._resolved()["network"] == "experts"
    assert experts.privacy_.epsilon == pytest.approx(default.privacy_.epsilon)


def test_experts_without_noise_learn_a_copy_and_beat_epsilon_one():
    """The product of experts learns a planted copy without noise, and at epsilon = 1 its
    DP-SGD adds the noise it claims: the marginals are clearly worse, the spend the plan's."""
    df, schema = _copied(n=600, seed=1)
    params = dict(epochs=20, batch_size=30, d_model=16, n_layers=1, n_heads=2,
                  learning_rate=1e-2, network="experts")
    plain = DPARSynthesizer(epsilon=math.inf, random_state=0, **params).fit(df, schema)
    private = DPARSynthesizer(epsilon=1.0, random_state=0, **params).fit(df, schema)
    assert plain.network_ == private.network_ == "experts"
    assert private.privacy_.epsilon == pytest.approx(1.0, abs=1e-3)
    out = plain.sample(3000, random_state=1)
    assert (out["first"] == out["twin"]).mean() > 0.95
    cols = ["noise", "first", "twin"]
    tvd_plain = _tvd(df, out, cols)
    tvd_private = _tvd(df, private.sample(3000, random_state=1), cols)
    assert tvd_plain < 0.05
    assert tvd_private > tvd_plain + 0.03


def test_experts_refuse_public_rows_before_any_spend():
    df, schema = _table(n=200)
    synth = DPARSynthesizer(epsilon=1.0, network="experts", **FAST)
    with pytest.raises(ParameterError, match="network='experts'"):
        synth.fit(df, schema, public=df.head(20))
    assert not hasattr(synth, "privacy_") or synth.privacy_ is None


# -- persistence ------------------------------------------------------------------------------
@pytest.mark.parametrize("network", ["transformer", "experts"])
def test_save_load_reproduces_samples(fitted, tmp_path, network):
    synth, df, schema = fitted
    assert synth.network_ == "transformer"  # the default
    if network == "experts":
        synth = DPARSynthesizer(epsilon=1.0, random_state=0, network="experts",
                                **FAST).fit(df, schema)
    synth.save(tmp_path / "model")
    for loader in (DPARSynthesizer.load, BaseSynthesizer.load):
        again = loader(tmp_path / "model")
        assert isinstance(again, DPARSynthesizer)
        pd.testing.assert_frame_equal(again.sample(300, random_state=11),
                                      synth.sample(300, random_state=11))
        pd.testing.assert_frame_equal(
            again.sample_conditional({"flag": True}, 50, random_state=2),
            synth.sample_conditional({"flag": True}, 50, random_state=2))
        assert again.privacy_ == synth.privacy_ and again.steps_run_ == synth.steps_run_
        assert again.network_ == network and type(again.model_) is type(synth.model_)


# -- errors -----------------------------------------------------------------------------------
@pytest.mark.parametrize("params, name", [  # the engine's: test_dpsgd_contract.py
    (dict(n_bins=1), "n_bins"),
    (dict(d_model=15), "d_model"),
    (dict(n_layers=0), "n_layers"),
    (dict(n_heads=True), "n_heads"),
    (dict(lr_schedule="linear"), "lr_schedule"),
    (dict(network="mixture"), "network"),
    (dict(network="experts", grad_sample_mode="ghost"), "network"),
    (dict(network="experts", distributed=True), "network"),
    (dict(clip_correction="yes"), "clip_correction"),
    (dict(clip_correction=True, network="experts"), "clip_correction"),
    (dict(draw="sobol"), "draw"),
])
def test_bad_params_raise_parameter_error(params, name):
    df, schema = _table()
    with pytest.raises(ParameterError, match=f"The '{name}' parameter of DPARSynthesizer"):
        DPARSynthesizer(**{**FAST, **params}).fit(df, schema)


# -- the clip correction ---------------------------------------------------------------------
def test_row_gradient_norms_are_each_rows_own_gradient_norm(fitted):
    synth, _, _ = fitted
    fixed = np.full((6, len(synth.tokenizer_.codecs_)), sampling.FREE, np.int64)
    tokens, _ = sampling.draw_tokens(synth.model_, fixed, torch.Generator().manual_seed(0))
    norms = sampling.row_gradient_norms(synth.model_, tokens, chunk=4)  # two chunks
    loss = RowLoss()
    for i in range(len(tokens)):  # one row at a time, by plain autograd
        synth.model_.zero_grad()
        row = torch.from_numpy(tokens[i:i + 1])
        loss(synth.model_(row), row).backward()
        own = torch.cat([p.grad.flatten() for p in synth.model_.parameters()
                         if p.grad is not None]).norm()
        assert norms[i] == pytest.approx(float(own), rel=1e-4)
    synth.model_.zero_grad(set_to_none=True)
    assert all(p.grad is None for p in synth.model_.parameters())


def test_weighted_subset_draws_in_proportion_to_the_weights():
    weights = np.array([1.0, 1.0, 1.0, 1.0, 4.0])
    rng = np.random.default_rng(0)
    picks = np.array([sampling.weighted_subset(weights, 1, rng)[0] for _ in range(4000)])
    assert np.mean(picks == 4) == pytest.approx(0.5, abs=0.03)  # 4 / (4 + 4)
    two = sampling.weighted_subset(weights, 2, rng)
    assert len(set(two.tolist())) == 2 and list(two) == sorted(two)  # without replacement
    assert list(sampling.weighted_subset(weights, 9, rng)) == [0, 1, 2, 3, 4]


def test_clip_correction_keeps_the_rows_the_clip_underweighted(fitted, monkeypatch):
    synth, df, schema = fitted
    corrected = DPARSynthesizer(epsilon=1.0, random_state=0, clip_correction=True, **FAST
                                ).fit(df, schema)
    for name, weights in synth.model_.state_dict().items():  # the same fit: it is sampling
        assert torch.equal(weights, corrected.model_.state_dict()[name])
    assert corrected.privacy_ == synth.privacy_
    seen: list[np.ndarray] = []
    weigh = sampling.clip_weights

    def spy(model, tokens, clip):
        seen.append(weigh(model, tokens, clip))
        return seen[-1]

    monkeypatch.setattr(sampling, "clip_weights", spy)
    rows = corrected.sample(300, random_state=1)
    assert len(rows) == 300 and len(seen[0]) == 300 * corrected.CLIP_CORRECTION_POOL
    assert seen[0].min() >= 1.0 and seen[0].max() > 1.0  # every row's gradient was clipped
    pd.testing.assert_frame_equal(rows, corrected.sample(300, random_state=1))
    grey = corrected.tokenizer_.value_tokens("colour", pd.Series(["grey"]))[0]
    j = corrected.tokenizer_.names.index("colour")

    def planted(model, tokens, clip):  # rows of the rarest colour weigh 1,000 times more
        return np.where(tokens[:, j] == grey, 1000.0, 1.0)

    monkeypatch.setattr(sampling, "clip_weights", planted)
    plain_share = synth.sample(300, random_state=1)["colour"].eq("grey").mean()
    kept_share = corrected.sample(300, random_state=1)["colour"].eq("grey").mean()
    assert plain_share < 0.2 and kept_share > 2 * plain_share  # the weights chose the rows
    assert corrected.sample_conditional({"colour": "blue"}, 20, random_state=0)[
        "colour"].eq("blue").all()


def test_clip_correction_draws_block_by_block(fitted, monkeypatch):
    _, df, schema = fitted
    synth = DPARSynthesizer(epsilon=1.0, random_state=0, clip_correction=True, **FAST
                            ).fit(df, schema)
    pools: list[int] = []
    weigh = sampling.clip_weights

    def spy(model, tokens, clip):
        pools.append(len(tokens))
        return weigh(model, tokens, clip)

    monkeypatch.setattr(sampling, "clip_weights", spy)
    monkeypatch.setattr(DPARSynthesizer, "CLIP_CORRECTION_BLOCK", 100)
    rows = synth.sample(250, random_state=5)
    assert len(rows) == 250 and pools == [500, 500, 250]  # 5 x 100, 5 x 100, 5 x 50
    pd.testing.assert_frame_equal(rows, synth.sample(250, random_state=5))


def test_clip_correction_does_nothing_without_dp():
    df, schema = _table()
    plain = DPARSynthesizer(epsilon=math.inf, random_state=0, **FAST).fit(df, schema)
    on = DPARSynthesizer(epsilon=math.inf, random_state=0, clip_correction=True, **FAST
                         ).fit(df, schema)
    pd.testing.assert_frame_equal(plain.sample(200, random_state=2),
                                  on.sample(200, random_state=2))


def test_clip_correction_survives_save_and_load(tmp_path):
    df, schema = _table()
    synth = DPARSynthesizer(epsilon=1.0, random_state=0, clip_correction=True, **FAST
                            ).fit(df, schema)
    again = DPARSynthesizer.load(synth.save(tmp_path / "m"))
    assert again.clip_correction is True
    pd.testing.assert_frame_equal(again.sample(100, random_state=4),
                                  synth.sample(100, random_state=4))


# -- systematic draws ------------------------------------------------------------------------
_GROUP_LAWS = torch.tensor([[0.5, 0.3, 0.2, 0.0], [0.1, 0.0, 0.1, 0.8],
                            [0.25, 0.25, 0.25, 0.25]])


def test_systematic_choice_keeps_each_rows_law():
    gen = torch.Generator().manual_seed(0)
    group = torch.randint(0, 3, (900,), generator=gen)
    prob, order = _GROUP_LAWS[group], torch.argsort(group, stable=True)
    draw = torch.ones(900, dtype=torch.bool)
    draw[::7] = False  # these rows take no part
    first_row = {k: int(torch.nonzero(draw & (group == k))[0]) for k in range(3)}
    counts = np.zeros((3, 4))
    for _ in range(1500):
        got = sampling.systematic_choice(prob, order, draw, gen)
        assert (got[~draw] == -1).all() and (got[draw] >= 0).all()
        assert (prob[draw].gather(1, got[draw, None]) > 0).all()  # never a value of law 0
        for k, i in first_row.items():  # one fixed row per law, over repeated draws
            counts[k, int(got[i])] += 1
    np.testing.assert_allclose(counts / 1500, _GROUP_LAWS.numpy(), atol=0.04)


def test_systematic_choice_counts_stay_near_their_expectation():
    gen = torch.Generator().manual_seed(1)
    group = torch.randint(0, 3, (3000,), generator=gen)
    prob, order = _GROUP_LAWS[group], torch.argsort(group, stable=True)
    draw = torch.ones(3000, dtype=torch.bool)
    worst_systematic, worst_iid = 0.0, 0.0
    for _ in range(20):
        got = sampling.systematic_choice(prob, order, draw, gen)
        iid = torch.multinomial(prob, 1, generator=gen).squeeze(1)
        for k in range(3):  # each law's rows form one run of neighbours in the order
            rows = group == k
            expected = _GROUP_LAWS[k].numpy() * int(rows.sum())
            worst_systematic = max(worst_systematic, float(np.abs(
                np.bincount(got[rows].numpy(), minlength=4) - expected).max()))
            worst_iid = max(worst_iid, float(np.abs(
                np.bincount(iid[rows].numpy(), minlength=4) - expected).max()))
    assert worst_systematic <= 2.0 < 10.0 < worst_iid  # independent draws stray by tens


def test_systematic_draws_follow_the_model_and_hit_its_first_column(fitted, tmp_path):
    synth, df, schema = fitted
    model = synth.model_
    fixed = np.full((2000, len(synth.tokenizer_.codecs_)), sampling.FREE, np.int64)
    tokens, _ = sampling.draw_tokens(model, fixed, torch.Generator().manual_seed(3),
                                     systematic=True)
    with torch.no_grad():  # the first column's law is the same for every row
        first = torch.softmax(model.column_logits(torch.from_numpy(tokens[:1]), 0).float(),
                              -1)[0].numpy()
    counts = np.bincount(tokens[:, 0], minlength=len(first))
    assert np.abs(counts - 2000 * first).max() <= 1.0
    iid, _ = sampling.draw_tokens(model, fixed, torch.Generator().manual_seed(3))
    assert np.abs(np.bincount(iid[:, 0], minlength=len(first)) - 2000 * first).max() > 1.0
    assert DPARSynthesizer().draw == "systematic"  # the default
    on = DPARSynthesizer(epsilon=1.0, random_state=0, draw="systematic", **FAST
                         ).fit(df, schema)
    rows = on.sample(300, random_state=1)
    assert list(rows.columns) == list(synth.sample(5, random_state=0).columns)
    assert len(rows) == 300 and len(rows.drop_duplicates()) > 250  # not one row repeated
    pd.testing.assert_frame_equal(rows, on.sample(300, random_state=1))
    again = DPARSynthesizer.load(on.save(tmp_path / "systematic"))
    assert again.draw == "systematic"
    pd.testing.assert_frame_equal(again.sample(300, random_state=1), rows)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_fit_with_bf16_autocast_samples_and_loads(tmp_path):
    df, schema = _table()
    synth = DPARSynthesizer(epsilon=1.0, random_state=0, device="cuda", **FAST).fit(df, schema)
    assert synth.model_.heads[0].weight.device.type == "cuda"
    assert synth.model_.heads[0].weight.dtype == torch.float32  # autocast keeps fp32 weights
    again = DPARSynthesizer.load(synth.save(tmp_path / "gpu"))
    pd.testing.assert_frame_equal(again.sample(100, random_state=1),
                                  synth.sample(100, random_state=1))


def test_default_batch_size_fits_small_tables():
    df, schema = _table(n=300)
    synth = DPARSynthesizer(epsilon=1.0, random_state=0, epochs=1, d_model=8, n_layers=1,
                            n_heads=2).fit(df, schema)
    (spend,) = synth.privacy_.spends
    assert spend.event.sample_rate == pytest.approx(75 / 300)  # min(512, n // 4)
    assert DPARSynthesizer()._batch_size(10_000) == 512


@pytest.mark.parametrize("schedule, last", [("constant", 1.0), ("cosine", 0.0)])
def test_learning_rate_schedule_over_the_run(schedule, last):
    """The cosine schedule starts at the given rate and ends at zero; constant stays put."""
    from dpsynth.synthesizers._dpsgd_base import lr_scheduler

    optimizer = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    step = lr_scheduler(optimizer, schedule, 10)
    seen = [optimizer.param_groups[0]["lr"]]
    for _ in range(10):
        optimizer.step()
        if step is not None:
            step()
        seen.append(optimizer.param_groups[0]["lr"])
    assert seen[0] == 1.0 and seen[-1] == pytest.approx(last, abs=1e-12)
    assert all(a >= b for a, b in zip(seen, seen[1:], strict=False))
    if schedule == "cosine":
        assert seen[5] == pytest.approx(0.5)


def test_the_dataset_card_says_where_the_defaults_were_chosen():
    """Every registered table synthesizer declares its tuning tables (issue 16, item 2)."""
    for name in ("aim", "mst", "dpar", "dpvae"):
        said = type(create(name)).defaults_tuned_on
        assert said and said != BaseSynthesizer.defaults_tuned_on, name
    assert "HMDA" in DPARSynthesizer.defaults_tuned_on


def test_automatic_learning_rate_differs_with_and_without_noise():
    """learning_rate=None: the DP rate under DP-SGD, the plain rate at epsilon=inf."""
    synth = DPARSynthesizer()
    assert synth.learning_rate is None
    assert synth._learning_rate(True) == DPARSynthesizer.DP_LEARNING_RATE == 3e-2
    assert synth._learning_rate(False) == DPARSynthesizer.PLAIN_LEARNING_RATE == 1e-2
    assert DPARSynthesizer(learning_rate=0.5)._learning_rate(True) == 0.5


def test_automatic_epochs_train_a_small_plain_reference_longer():
    """epochs=None: DP_EPOCHS passes, under DP-SGD exactly; without DP at least
    PLAIN_MIN_STEPS steps, and a given number of epochs is used as given."""
    df, schema = _table(n=200)
    small = dict(d_model=8, n_layers=1, n_heads=2, batch_size=50)  # q = 1/4: 80 steps
    private = DPARSynthesizer(epsilon=1.0, random_state=0, **small).fit(df, schema)
    assert private.epochs is None
    assert private.steps_run_ == math.ceil(DPARSynthesizer.DP_EPOCHS * 4) == 80
    plain = DPARSynthesizer(epsilon=math.inf, random_state=0, **small).fit(df, schema)
    assert plain.steps_run_ == DPARSynthesizer.PLAIN_MIN_STEPS == 250
    given = DPARSynthesizer(epsilon=math.inf, random_state=0, epochs=20, **small)
    assert given.fit(df, schema).steps_run_ == 80
    assert DPARSynthesizer()._plain_steps(0.001) == 20_000  # 20 passes are more than 250
