"""Private prediction (dptext-pp): accounting, disjoint groups, a planted copy leak, the CLI.

The model is a tiny random llama (or, for the leak, a planted model that copies the example in
its prompt), built offline; any network connection fails the test.
"""

from __future__ import annotations

import math
import socket
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
from cli_app import cli_app
from torch import nn

pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")

from dpsynth.accounting import Budget, BudgetSession, NoiseSource, pld_epsilon  # noqa: E402
from dpsynth.attacks import run_text_audit  # noqa: E402
from dpsynth.errors import ParameterError, PrivacyError  # noqa: E402
from dpsynth.schema import Column, Schema  # noqa: E402
from dpsynth.synthesizers import BaseSynthesizer  # noqa: E402
from dpsynth.synthesizers.text import PrivatePredictionSynthesizer  # noqa: E402
from dpsynth.synthesizers.text import prediction as pp  # noqa: E402

SYLLABLES = ["ka", "lo", "mi", "nu", "pe", "ri", "so", "tu", "va", "xe", "zo", "bi"]


@pytest.fixture(autouse=True)
def _offline_and_one_thread(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def unique_texts(n: int, seed: int) -> list[str]:
    """``n`` distinct made-up sentences (each a record that exists nowhere else)."""
    rng = np.random.default_rng(seed)
    out: set[str] = set()
    while len(out) < n:
        words = ["".join(rng.choice(SYLLABLES, 3)) for _ in range(4)]
        out.add(" ".join(words))
    return sorted(out)


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> str:
    """A randomly initialised tiny llama and a BPE tokenizer, saved in HF format."""
    from tiny_models import write_tiny_model

    return write_tiny_model(tmp_path_factory.mktemp("llama"), "llama",
                            texts=[*unique_texts(200, 9), "text: "], max_positions=128)


def corpus(n: int = 60, seed: int = 0) -> tuple[pd.DataFrame, Schema]:
    frame = pd.DataFrame({"text": unique_texts(n, seed)})
    return frame, Schema((Column("text", "text", max_length=16),))


# -- a planted model: it copies the example record shown in its prompt ---------------------
class _Past:
    """The copier's "cache": every row's token ids so far and its prompt length."""

    def __init__(self, ids: torch.Tensor, mask: torch.Tensor):
        self.rows = [row[m.bool()].tolist() for row, m in zip(ids, mask, strict=True)]
        self.prompt = [len(r) for r in self.rows]

    def batch_select_indices(self, idx: torch.Tensor) -> None:
        self.rows = [self.rows[i] for i in idx.tolist()]
        self.prompt = [self.prompt[i] for i in idx.tolist()]


class Copier(nn.Module):
    """Next-token logits 20 on the next token of the prompt's example record, 0 elsewhere.

    A prompt ``[sep, header, example, sep, header]`` followed by ``k`` drawn tokens predicts
    the example's token ``k`` (then ``sep``); a prompt without an example predicts ``sep``.
    """

    def __init__(self, vocab: int, sep: int):
        super().__init__()
        self.vocab, self.sep = vocab, sep
        self.anchor = nn.Parameter(torch.zeros(1))

    def forward(self, input_ids, attention_mask=None, position_ids=None, past_key_values=None,
                use_cache=True, **unused):
        if past_key_values is None:
            past = _Past(input_ids, attention_mask)
        else:
            past = past_key_values
            for row, t in zip(past.rows, input_ids[:, -1].tolist(), strict=True):
                row.append(int(t))
        logits = torch.zeros((len(past.rows), input_ids.shape[1], self.vocab))
        for i, (row, plen) in enumerate(zip(past.rows, past.prompt, strict=True)):
            seps = [j for j in range(plen) if row[j] == self.sep]
            target = self.sep
            if len(seps) >= 2:
                head = plen - seps[1] - 1
                example = row[seps[0] + 1 + head:seps[1]]
                k = len(row) - plen
                target = example[k] if k < len(example) else self.sep
            logits[i, -1, target] = 20.0
        return SimpleNamespace(logits=logits, past_key_values=past)


def with_copier(monkeypatch, model_dir: str) -> None:
    real = PrivatePredictionSynthesizer._predictor

    def planted(self, device):
        predictor = real(self, device)
        predictor.lm = Copier(predictor.vocab_size(), predictor.eos)
        return predictor

    monkeypatch.setattr(PrivatePredictionSynthesizer, "_predictor", planted)


# -- tests --------------------------------------------------------------------------------
def test_accounted_epsilon_is_the_pld_figure_of_the_plan(tiny_dir):
    frame, schema = corpus()
    synth = PrivatePredictionSynthesizer(epsilon=3.0, delta=1e-4, model_dir=tiny_dir,
                                         group_size=6, temperature=None, clip=8.0,
                                         records_per_group=2, random_state=0)
    plan = synth.plan_budget(schema, len(frame))
    session = BudgetSession(Budget(3.0, 1e-4))
    synth.fit(frame, schema, ledger=session)
    (spend,) = synth.privacy_.spends
    event = spend.event
    assert event.count == 2 * 16 and event.epsilon == synth.token_epsilon_
    assert synth.privacy_.epsilon == pytest.approx(pld_epsilon(plan.events, 1e-4), abs=1e-12)
    assert synth.privacy_.epsilon <= 3.0 and synth.privacy_.epsilon > 2.9  # calibrated tight
    assert session.spent_events() == plan.events
    assert synth.temperature_ == pytest.approx(8.0 / (6 * synth.token_epsilon_))
    assert len(synth.records_) == 2 * synth.groups_ == 2 * 10


def test_group_size_follows_from_the_temperature(tiny_dir):
    frame, schema = corpus()
    synth = PrivatePredictionSynthesizer(epsilon=8.0, delta=1e-4, model_dir=tiny_dir,
                                         temperature=2.0, clip=4.0, max_length=6)
    detail = synth.plan_budget(schema, len(frame)).detail
    assert detail.group_size == math.ceil(4.0 / (2.0 * detail.token_epsilon) - 1e-9)
    assert detail.temperature <= 2.0


def test_each_record_is_in_exactly_one_group(tiny_dir, monkeypatch):
    seen: list[tuple[str, ...]] = []
    real = pp.generate

    def spy(predictor, jobs, mech, noise, **kwargs):
        seen.extend(job.members for job in jobs)
        return real(predictor, jobs, mech, noise, **kwargs)

    monkeypatch.setattr(pp, "generate", spy)
    frame, schema = corpus(90)
    synth = PrivatePredictionSynthesizer(epsilon=4.0, model_dir=tiny_dir, group_size=5,
                                         temperature=None, records_per_group=2, max_length=4,
                                         random_state=1).fit(frame, schema)
    groups = seen[::2]
    assert seen[1::2] == groups  # a group's records share its members
    members = [t for g in groups for t in g]
    assert sorted(members) == sorted(frame.text) and len(set(members)) == len(members)
    assert len(groups) == synth.groups_ == 18


def test_groups_stay_within_their_control_cell():
    noise = NoiseSource.create(0, False)
    cells = np.array([0] * 40 + [1] * 25 + [2] * 3)
    group, group_cell = pp.assign_groups(cells, np.array([4, 2, 0]), noise)
    assert (group[cells == 2] == -1).all()
    assert (group_cell[group[cells < 2]] == cells[cells < 2]).all()
    assert set(group[cells == 0]) <= {0, 1, 2, 3} and set(group[cells == 1]) <= {4, 5}


def test_clipped_logits_lie_in_minus_clip_to_zero():
    z = torch.tensor([[3.0, -50.0, 1.0, -torch.inf]])
    assert pp.clip_logits(z, 5.0).tolist() == [[0.0, -5.0, -2.0, -5.0]]


def test_a_planted_copy_leak_is_caught_and_the_dp_setting_passes(tiny_dir, monkeypatch):
    with_copier(monkeypatch, tiny_dir)
    frame, schema = corpus(60, 0)
    holdout = pd.DataFrame({"text": unique_texts(60, 1)})
    leaky = PrivatePredictionSynthesizer(epsilon=math.inf, model_dir=tiny_dir, group_size=1,
                                         temperature=0.1, random_state=0).fit(frame, schema)
    copies = set(leaky.records_.text) & set(frame.text)
    assert len(copies) >= 10  # every group of one record writes that record verbatim
    found = run_text_audit(frame, holdout, leaky.records_, ["text"], random_state=0)
    assert found.leak

    private = PrivatePredictionSynthesizer(epsilon=3.0, model_dir=tiny_dir, group_size=8,
                                           temperature=None, records_per_group=8,
                                           random_state=0).fit(frame, schema)
    assert not set(private.records_.text) & set(frame.text)
    assert not run_text_audit(frame, holdout, private.records_, ["text"],
                              random_state=0).leak


def test_public_top_k_draws_only_public_candidates(tiny_dir, monkeypatch):
    with_copier(monkeypatch, tiny_dir)
    frame, schema = corpus(30)
    synth = PrivatePredictionSynthesizer(epsilon=math.inf, model_dir=tiny_dir, group_size=1,
                                         temperature=0.1, public_top_k=1,
                                         random_state=0).fit(frame, schema)
    # the copier's public prompt (no example) only ever proposes the separator: empty texts
    assert (synth.records_.text == "").all()


def test_round_trip_and_sampling_the_generated_records(tiny_dir, tmp_path):
    frame, schema = corpus()
    synth = PrivatePredictionSynthesizer(epsilon=4.0, model_dir=tiny_dir, group_size=10,
                                         temperature=None, max_length=5,
                                         random_state=0).fit(frame, schema)
    rows = synth.sample(4, random_state=2)
    assert set(rows.text) <= set(synth.records_.text)
    synth.save(tmp_path / "m")
    again = BaseSynthesizer.load(tmp_path / "m")
    assert again.sample(4, random_state=2).equals(rows) and again.privacy_ == synth.privacy_
    ran = synth.resolved_params()
    assert ran["temperature"] == synth.temperature_ and ran["group_size"] == 10
    assert ran["delta"] == synth.privacy_.delta and again.resolved_params() == ran
    with pytest.raises(ParameterError, match="at most the 6 records generated"):
        synth.sample(7)


@pytest.mark.parametrize("bad", [
    {"group_size": 0, "temperature": None}, {"clip": -1.0}, {"records_per_group": 0},
    {"public_top_k": 0}, {"group_size": 4, "temperature": 1.0},
    {"group_size": None, "temperature": None}, {"max_length": 0}, {"batch_rows": 0},
])
def test_bad_parameters_are_refused(bad):
    frame, schema = corpus(20)
    with pytest.raises(ParameterError):
        PrivatePredictionSynthesizer(epsilon=1.0, **bad).plan_budget(schema, len(frame))


def test_groups_larger_than_the_data_are_refused():
    frame, schema = corpus(20)
    with pytest.raises(PrivacyError, match="a group needs"):
        PrivatePredictionSynthesizer(epsilon=1.0, temperature=0.5).plan_budget(schema, 20)


def test_text_fit_private_prediction_and_audit_through_the_cli(tiny_dir, tmp_path):
    from typer.testing import CliRunner

    from dpsynth.commands.text import register

    frame, schema = corpus(60, 0)
    frame.to_csv(tmp_path / "train.csv", index=False)
    pd.DataFrame({"text": unique_texts(60, 1)}).to_csv(tmp_path / "holdout.csv", index=False)
    schema.save(tmp_path / "s.yaml")
    app = cli_app(register)
    runner = CliRunner()
    done = runner.invoke(app, ["text", "fit", str(tmp_path / "train.csv"), "--schema",
                               str(tmp_path / "s.yaml"), "--out", str(tmp_path / "m"),
                               "--method", "private-prediction", "--model-dir", tiny_dir,
                               "--group-size", "6", "--records-per-group", "3",
                               "--epsilon", "4", "--max-length", "6", "--seed", "0"])
    assert done.exit_code == 0, done.output
    synth = BaseSynthesizer.load(tmp_path / "m")
    assert synth.name == "dptext-pp" and synth.privacy_.epsilon <= 4.0
    synth.sample(20, random_state=0).to_csv(tmp_path / "syn.csv", index=False)
    audited = runner.invoke(app, ["text", "audit", "--train", str(tmp_path / "train.csv"),
                                  "--holdout", str(tmp_path / "holdout.csv"), "--synthetic",
                                  str(tmp_path / "syn.csv")])
    assert audited.exit_code == 0, audited.output


def test_the_batched_cache_gives_each_prompts_own_logits(tiny_dir):
    """Left padding, positions, the key/value cache and dropping rows change no logit."""
    from dpsynth.synthesizers.text.hf import HFBackend

    backend = HFBackend.load(tiny_dir, lora_rank=0, seed=0)
    predictor = pp.HFPredictor(backend, torch.device("cpu"))
    texts = unique_texts(3, 4)
    prompts = [predictor.prompt("", t, 16) for t in texts] + [predictor.prompt("", None, 16)]
    assert len({len(p) for p in prompts}) > 1  # padding is exercised

    def alone(ids: list[int]) -> torch.Tensor:
        return predictor.lm(input_ids=torch.tensor([ids])).logits[0, -1]

    session = predictor.open(prompts)
    for row, p in enumerate(prompts):
        assert torch.allclose(session.logits()[row], alone(p), atol=1e-4)
    session.advance(torch.tensor([7, 7, 7, 7]))
    session.keep(torch.tensor([1, 3]))
    session.advance(torch.tensor([9, 9]))
    for row, p in zip((0, 1), (prompts[1], prompts[3]), strict=True):
        assert torch.allclose(session.logits()[row], alone([*p, 7, 9]), atol=1e-4)


def test_secure_mode_draws_every_token_from_the_os(tiny_dir):
    frame, schema = corpus(30)
    synth = PrivatePredictionSynthesizer(epsilon=4.0, model_dir=tiny_dir, group_size=5,
                                         temperature=None, max_length=4, secure_mode=True)
    synth.fit(frame, schema)
    assert synth.privacy_.secure_mode and len(synth.records_) == 6


# -- the sparse-vector test for public tokens, and the public prior of empty groups -------
def spy_written(monkeypatch) -> list[pp.Written]:
    seen: list[pp.Written] = []
    real = pp.generate

    def spy(*args, **kwargs):
        written = real(*args, **kwargs)
        seen.append(written)
        return written

    monkeypatch.setattr(pp, "generate", spy)
    return seen


@pytest.mark.parametrize("threshold", [0.0, 1e6])
def test_svt_accounting_is_the_plan_whatever_the_answers(tiny_dir, threshold, tmp_path):
    frame, schema = corpus()
    synth = PrivatePredictionSynthesizer(epsilon=3.0, delta=1e-4, model_dir=tiny_dir,
                                         group_size=6, temperature=None, clip=8.0,
                                         records_per_group=2, private_tokens=5,
                                         svt_threshold=threshold, svt_fraction=0.25,
                                         random_state=0)
    plan = synth.plan_budget(schema, len(frame))
    session = BudgetSession(Budget(3.0, 1e-4))
    synth.fit(frame, schema, ledger=session)
    tokens, tests = (s.event for s in synth.privacy_.spends)
    assert tokens.count == tests.count == 2 * 5  # records_per_group * private_tokens
    assert tests.epsilon == pytest.approx(tokens.epsilon / 3)  # 0.25 / 0.75
    assert session.spent_events() == plan.events
    assert synth.privacy_.epsilon == pytest.approx(pld_epsilon(plan.events, 1e-4), abs=1e-12)
    assert 2.9 < synth.privacy_.epsilon <= 3.0
    if threshold == 0.0:  # q >= 0 always: "above" unless the noise says otherwise
        assert synth.private_draws_ > 0
    else:  # never "above": every token is public, the charge is the same
        assert synth.private_draws_ == 0 and synth.public_draws_ > 0
    synth.save(tmp_path / "m")
    again = BaseSynthesizer.load(tmp_path / "m")
    assert (again.private_draws_, again.public_draws_, again.svt_epsilon_) == (
        synth.private_draws_, synth.public_draws_, synth.svt_epsilon_)


@pytest.mark.parametrize("epsilon", [math.inf, 4.0])
def test_private_draws_never_exceed_the_cap(tiny_dir, monkeypatch, epsilon):
    seen = spy_written(monkeypatch)
    frame, schema = corpus(60)
    PrivatePredictionSynthesizer(epsilon=epsilon, model_dir=tiny_dir, group_size=3,
                                 temperature=None, max_length=10, private_tokens=2,
                                 svt_threshold=0.0, random_state=0).fit(frame, schema)
    (written,) = seen
    assert max(written.private_draws) == 2  # the cap is reached (threshold 0) ...
    assert all(p <= 2 for p in written.private_draws)  # ... and never passed
    lengths = [p + q for p, q in zip(written.private_draws, written.public_draws, strict=True)]
    assert max(lengths) > 2  # records go on with public tokens after the cap


def test_svt_with_a_planted_copy_leak_still_copies_and_dp_passes(tiny_dir, monkeypatch):
    with_copier(monkeypatch, tiny_dir)
    frame, schema = corpus(60, 0)
    holdout = pd.DataFrame({"text": unique_texts(60, 1)})
    leaky = PrivatePredictionSynthesizer(epsilon=math.inf, model_dir=tiny_dir, group_size=1,
                                         temperature=0.1, private_tokens=16, svt_threshold=1.0,
                                         random_state=0).fit(frame, schema)
    assert len(set(leaky.records_.text) & set(frame.text)) >= 10
    # private draws copy; public ones only where both predict the end (and empty groups)
    assert leaky.private_draws_ > 2 * leaky.public_draws_
    assert run_text_audit(frame, holdout, leaky.records_, ["text"], random_state=0).leak

    private = PrivatePredictionSynthesizer(epsilon=3.0, model_dir=tiny_dir, group_size=8,
                                           temperature=None, records_per_group=8,
                                           private_tokens=4, svt_threshold=1.0,
                                           random_state=0).fit(frame, schema)
    assert not set(private.records_.text) & set(frame.text)
    assert not run_text_audit(frame, holdout, private.records_, ["text"],
                              random_state=0).leak


def test_the_svt_query_moves_by_at_most_clip_over_s():
    """Brute force: remove one member of a group; the query moves by at most clip / s."""
    rng = np.random.default_rng(0)
    worst = 0.0
    for _ in range(400):
        s, vocab = int(rng.integers(1, 9)), int(rng.integers(2, 30))
        clip = float(rng.uniform(0.5, 12.0))
        n = int(rng.integers(1, 2 * s + 2))
        scale = float(rng.choice([0.5, 5.0, 50.0]))
        z = torch.from_numpy(rng.normal(0, scale, (n, vocab))).float()
        public = pp.clip_logits(torch.from_numpy(rng.normal(0, scale, (1, vocab))).float(),
                                clip)
        allowed = torch.from_numpy(rng.random((1, vocab)) < 0.7)
        allowed[0, int(rng.integers(vocab))] = True
        clipped = pp.clip_logits(z, clip)
        u_all = clipped.sum(0, keepdim=True) / s
        gone = int(rng.integers(n))
        u_less = (clipped.sum(0, keepdim=True) - clipped[gone]) / s
        moved = float((pp.svt_distance(u_all, public, allowed)
                       - pp.svt_distance(u_less, public, allowed)).abs())
        assert moved <= clip / s + 1e-4
        worst = max(worst, moved / (clip / s))
    assert worst > 0.9  # the bound is attained, not loose


def test_empty_groups_write_the_public_prior_with_a_public_weight(tiny_dir, monkeypatch):
    """No member: uniform tokens without the public term, the public prompt's choice with it
    (the copier's public prompt always predicts the end of the record)."""
    from dpsynth.synthesizers.text.hf import HFBackend

    predictor = pp.HFPredictor(HFBackend.load(tiny_dir, lora_rank=0, seed=0),
                               torch.device("cpu"))
    vocab = predictor.vocab_size()
    predictor.lm = Copier(vocab, predictor.eos)
    monkeypatch.setattr(predictor, "vocab_size", lambda: vocab)
    jobs = [pp.Job("", ())] * 6
    for weight, empty in ((0.0, False), (1.0, True)):
        mech = pp.Mechanism(4, 10.0, 0.05, 8, 8, public_weight=weight)
        texts = pp.generate(predictor, jobs, mech, NoiseSource.create(0, False)).texts
        assert all(t == "" for t in texts) == empty


@pytest.mark.parametrize("bad", [
    {"private_tokens": 0}, {"private_tokens": 2.5}, {"svt_threshold": -1.0},
    {"svt_threshold": math.inf}, {"svt_fraction": 0.0}, {"svt_fraction": 1.0},
    {"public_weight": -0.5}, {"private_tokens": 17},
])
def test_bad_svt_parameters_are_refused(bad):
    frame, schema = corpus(20)  # max_length 16: 17 private tokens per record cannot be
    with pytest.raises(ParameterError, match=next(iter(bad))):
        PrivatePredictionSynthesizer(epsilon=1.0, group_size=2, temperature=None,
                                     **bad).plan_budget(schema, len(frame))


def test_text_fit_private_prediction_with_svt_through_the_cli(tiny_dir, tmp_path):
    from typer.testing import CliRunner

    from dpsynth.commands.text import register

    frame, schema = corpus(60, 0)
    frame.to_csv(tmp_path / "train.csv", index=False)
    schema.save(tmp_path / "s.yaml")
    done = CliRunner().invoke(cli_app(register), [
        "text", "fit", str(tmp_path / "train.csv"), "--schema", str(tmp_path / "s.yaml"),
        "--out", str(tmp_path / "m"), "--method", "private-prediction", "--model-dir",
        tiny_dir, "--group-size", "6", "--epsilon", "4", "--max-length", "6",
        "--private-tokens", "3", "--svt-threshold", "1.5", "--svt-fraction", "0.4",
        "--public-weight", "0.5", "--seed", "0"])
    assert done.exit_code == 0, done.output
    synth = BaseSynthesizer.load(tmp_path / "m")
    assert [s.purpose for s in synth.privacy_.spends] == [
        "tokens:dptext-pp", "public-token test:dptext-pp"]
    assert synth.privacy_.spends[1].event.count == 3 and synth.privacy_.epsilon <= 4.0
    assert synth.public_weight == 0.5
