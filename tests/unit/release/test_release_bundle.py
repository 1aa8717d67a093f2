"""The bundle: the card round-trips, the report shows the card's figures, the released model
redraws the released rows."""

from __future__ import annotations

import hashlib
import math
import re
from html.parser import HTMLParser

import pandas as pd
import pytest
from planted import Copycat

from dpsynth.accounting import Budget
from dpsynth.datasets import load_dataset
from dpsynth.release import DatasetCard, render_report
from dpsynth.synthesizers import BaseSynthesizer


class _Figures(HTMLParser):
    """Collects every ``data-key``/``data-value`` pair and the visible text of the page."""

    def __init__(self) -> None:
        super().__init__()
        self.pairs: list[tuple[str, str]] = []
        self.shown: list[str] = []
        self._open = False

    def handle_starttag(self, tag, attrs):
        found = dict(attrs)
        if "data-key" in found:
            self.pairs.append((found["data-key"], found["data-value"]))
            self.shown.append("")
            self._open = True

    def handle_endtag(self, tag):
        self._open = False

    def handle_data(self, data):
        if self._open:
            self.shown[-1] += data


def _number(text: str) -> float:
    text = text.strip()
    return float(text[:-1]) / 100 if text.endswith("%") else float(text)


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    from dpsynth.release import release

    rows, schema = load_dataset("wage")
    root = tmp_path_factory.mktemp("bundles")
    common = dict(epsilon=1.0, dataset="wage", ledger=root / "ledger.sqlite",
                  cap=Budget(4, 1e-5), target="health_ins", random_state=0, n_targets=600)
    shipped = release(rows, schema, synthesizer="mst", out=root / "ship", **common)
    rejected = release(rows, schema, synthesizer=Copycat(), out=root / "reject", **common)
    return {"ship": (shipped, root / "ship"), "reject": (rejected, root / "reject")}


@pytest.mark.parametrize("which", ["ship", "reject"])
def test_card_round_trips(bundles, which):
    result, folder = bundles[which]
    loaded = DatasetCard.load(folder)
    assert loaded == result.card
    assert DatasetCard.from_yaml(loaded.to_yaml()) == loaded
    assert loaded.decision == which


@pytest.mark.parametrize("which", ["ship", "reject"])
def test_report_figures_match_the_card(bundles, which):
    result, folder = bundles[which]
    page = (folder / "report.html").read_text(encoding="utf-8")
    parser = _Figures()
    parser.feed(page)
    card = DatasetCard.load(folder)
    keys = {k for k, _ in parser.pairs}
    required = {"decision", "privacy.release_epsilon", "privacy.epsilon_per_attempt",
                "privacy.dataset_epsilon_after", "privacy.dataset_cap.epsilon",
                "evaluation.fidelity.tvd_1way", "evaluation.fidelity.tvd_2way",
                "evaluation.utility.tstr_auc", "evaluation.utility.trtr_auc",
                "evaluation.utility.ratio", "attempts.0.epsilon", "audit.threshold",
                "source.n_train", "source.n_holdout", "synthetic.n_rows"}
    n_attacks = len(card.audit["attacks"])
    required |= {f"audit.attacks.{i}.risk.{part}" for i in range(n_attacks)
                 for part in ("value", "ci.0", "ci.1")}
    required |= {f"checks.{i}.value" for i in range(len(card.checks))}
    assert required <= keys, sorted(required - keys)
    for (key, value), text in zip(parser.pairs, parser.shown, strict=True):
        expected = card.value(key)
        assert value == repr(expected), key
        if isinstance(expected, str):
            assert text.lower() == expected, key
        else:  # the printed figure is the card's, rounded
            assert math.isclose(_number(text), expected, rel_tol=5e-3, abs_tol=6e-4), key
    # the ROC charts print the card's AUCs
    for attack in card.audit["attacks"]:
        if attack["auc"] is not None:
            lo, hi = attack["auc_ci"]
            assert f"AUC {attack['auc']:.3f} [{lo:.3f}, {hi:.3f}]" in page
    assert card.decision.upper() in page


def test_report_is_self_contained_and_names_no_rows(bundles):
    for result, folder in bundles.values():
        page = (folder / "report.html").read_text(encoding="utf-8")
        assert "<script" not in page.lower()
        assert not re.search(r"(src|href)=[\"']?(https?:|//)", page)
        assert "exposed_row_ids" not in (folder / "dataset_card.yaml").read_text()
        assert page == render_report(result.card, result.figures)


def test_rejected_bundle_withholds_data(bundles):
    result, folder = bundles["reject"]
    assert sorted(p.name for p in folder.iterdir()) == ["dataset_card.yaml", "report.html"]
    page = (folder / "report.html").read_text(encoding="utf-8")
    assert "Reject: an attack found" in page
    assert result.synthetic is not None  # still in memory, for the custodian to inspect


def test_released_model_redraws_the_released_rows(bundles, tmp_path):
    result, folder = bundles["ship"]
    card = DatasetCard.load(folder)
    files = card.synthetic["files"]
    for entry in files.values():
        digest = hashlib.sha256((folder / entry["path"]).read_bytes()).hexdigest()
        assert digest == entry["sha256"]
    model = BaseSynthesizer.load(folder / "model")
    again = model.sample(card.synthetic["n_rows"], random_state=card.reproduce["sample_seed"])
    released = pd.read_parquet(folder / "synthetic.parquet")
    pd.testing.assert_frame_equal(again, released, check_dtype=False)
    assert f"--seed {card.reproduce['sample_seed']}" in card.reproduce["sample"]
