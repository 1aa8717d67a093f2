"""The release gate: evaluate, attack and decide before synthetic data leaves the building.

::

    from dpsynth.release import release
    result = release(rows, schema, epsilon=1.0, dataset="wage", ledger="ledger.sqlite",
                     target="jobclass", out="wage-release/", random_state=0)
    result.decision           # "ship" or "reject"
    result.card.reasons       # why

:func:`release` splits off a holdout, fits the generator through the privacy ledger, samples,
evaluates fidelity and utility, runs the attack suite with the holdout as control, applies a
:class:`ReleasePolicy` (ship / regenerate / reject) and writes a bundle: the synthetic data
(when it ships), a YAML :class:`DatasetCard` and a self-contained HTML report.
:func:`assess` runs the same gate on synthetic data made by any tool.
"""

from dpsynth.release.bundle import write_bundle
from dpsynth.release.card import Attempt, DatasetCard
from dpsynth.release.core import ReleaseResult, release, split_holdout
from dpsynth.release.gate import Assessment, Figures, assess
from dpsynth.release.plan import DEFAULT_HOLDOUT_FRACTION, ReleasePlan, SynthesizerFactory
from dpsynth.release.policy import (
    DEFAULT_POLICY,
    Check,
    Decision,
    PolicyError,
    ReleasePolicy,
)
from dpsynth.release.report import render_report, save_report

__all__ = [
    "DEFAULT_HOLDOUT_FRACTION",
    "DEFAULT_POLICY",
    "Assessment",
    "Attempt",
    "Check",
    "DatasetCard",
    "Decision",
    "Figures",
    "PolicyError",
    "ReleasePlan",
    "ReleasePolicy",
    "ReleaseResult",
    "assess",
    "release",
    "render_report",
    "save_report",
    "split_holdout",
    "SynthesizerFactory",
    "write_bundle",
]
