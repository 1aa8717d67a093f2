"""The experiments of :mod:`tune_dpar`, none of them in the library.

Each function fits ``dpar`` (or patches it for one fit) in a way the library does not; the
keys that select them, why each was tried, the rule declared before its runs and what it
gave are in :mod:`tune_dpar`'s docstring, and the figures in ``docs/benchmarks.md``. Only
tuning tables reach them: :mod:`tune_dpar` refuses the others.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import Any

import bench_table_models as bench
import numpy as np


def drawn_rows(name: str, table: bench.Table, train: Any, eps: float, seed: int,
               factor: int = 1) -> Any:
    """``factor`` times the training rows drawn from generator ``name`` fitted at
    ``(eps, delta / 2)`` (post-processing of its release)."""
    from dpsynth.synthesizers import create

    prior = create(name, epsilon=eps, delta=bench.DELTA / 2,
                   random_state=seed).fit(train, table.schema)
    return prior.sample(len(train) * factor, random_state=seed + 1)


def warm_fit(fake: Any, table: bench.Table, train: Any, kw: dict[str, Any], eps: float,
             seed: int, epochs: float | None, delta: float = bench.DELTA / 2) -> Any:
    """dpar trained without noise on ``fake`` (``epochs`` passes, the automatic plain rate),
    then fine-tuned with DP-SGD at ``(eps, delta)`` on ``train`` from those weights."""
    from dpsynth.synthesizers.ar import DPARSynthesizer

    warm = DPARSynthesizer(epsilon=math.inf, random_state=seed,
                           **{**kw, "epochs": epochs, "learning_rate": None}
                           ).fit(fake, table.schema)
    weights = warm.model_.state_dict()
    return fit_from(lambda model: model.load_state_dict(weights),  # the warm weights
                    table, train, kw, eps, seed, delta)


PUBLIC_USES = ("only", "warm", "anchor", "project")


def public_fit(table: bench.Table, private: Any, public: Any, kw: dict[str, Any],
               cfg: dict[str, Any], eps: float, seed: int) -> Any:
    """dpar using declared public rows (the ``"use"`` key, ``+``-joined): ``"only"`` fits
    them alone without noise (the private rows untouched); ``"warm"`` starts DP-SGD from the
    weights trained on them without noise; ``"anchor"`` carries ``"ratio"`` times the
    expected batch of them in every DP-SGD step; ``"project"`` runs DP-SGD in the span of
    their gradients (``"project"`` dimensions). The private rows get the whole ``(eps,
    delta)``: the public rows cost nothing."""
    from dpsynth.synthesizers.ar import DPARSynthesizer

    uses = str(cfg["use"]).split("+")
    if set(uses) - set(PUBLIC_USES) or ("anchor" in uses and "project" in uses):
        raise ValueError(f"use must join {PUBLIC_USES} (not anchor with project): {uses}")
    plain = {**kw, "epochs": cfg.get("public_epochs"), "learning_rate": None}
    if "only" in uses:
        return DPARSynthesizer(epsilon=math.inf, random_state=seed, **plain
                               ).fit(public, table.schema)
    with contextlib.ExitStack() as stack:
        if "anchor" in uses:
            stack.enter_context(mixed_steps(public, float(cfg.get("ratio", 1.0)), seed))
        if "project" in uses:
            stack.enter_context(projected(int(cfg["project"]), public, 10,
                                          int(cfg.get("probes", 512)), seed))
        if "warm" not in uses:
            return DPARSynthesizer(epsilon=eps, delta=bench.DELTA, random_state=seed,
                                   **kw).fit(private, table.schema)
        return warm_fit(public, table, private, kw, eps, seed, cfg.get("public_epochs"),
                        bench.DELTA)


class _Pool:
    """Rows drawn with replacement from a weighted pool (``sample`` as a synthesizer's)."""

    def __init__(self, rows: Any, weights: Any):
        self.rows, self.weights = rows, weights

    def sample(self, n: int, random_state: int | None = None) -> Any:
        rng = np.random.default_rng(random_state)
        p = self.weights / self.weights.sum()
        keep = rng.choice(len(self.rows), size=n, replace=True, p=p)
        return self.rows.iloc[keep].reset_index(drop=True)


def reweighted(table: bench.Table, train: Any, kw: dict[str, Any], cfg: dict[str, Any],
               eps: float, seed: int) -> Any:
    """dpar's rows reweighted to a marginal model's noisy measurements (``"hybrid"``)."""
    from dpsynth.synthesizers import create
    from dpsynth.synthesizers.ar import DPARSynthesizer
    from dpsynth.synthesizers.marginal.binning import encode_table
    from dpsynth.synthesizers.marginal.compress import compress_codes

    share = float(cfg["share"])
    marg = create(cfg["hybrid"], epsilon=eps * share, delta=bench.DELTA / 2,
                  random_state=seed, keep_measurements=True).fit(train, table.schema)
    dpar = DPARSynthesizer(epsilon=eps * (1 - share), delta=bench.DELTA / 2,
                           random_state=seed, **kw).fit(train, table.schema)
    pool = dpar.sample(int(cfg.get("pool", 10)) * len(train), random_state=seed + 7)
    raw = encode_table(marg.codecs_, pool)
    raw_domain = [c.size for c in marg.codecs_]
    merged = compress_codes(raw, marg.merges_, raw_domain)
    merged_domain = [m.size for m in marg.merges_]
    n_first = len(raw_domain)
    total = float(len(train))
    cells, targets, stds = [], [], []
    for i, m in enumerate(marg.noisy_measurements_):
        codes, domain = (raw, raw_domain) if i < n_first else (merged, merged_domain)
        attrs = list(m.attrs)
        shape = [int(domain[a]) for a in attrs]
        cells.append(np.ravel_multi_index(codes[:, attrs].T, shape))
        targets.append(np.asarray(m.values, float).ravel())
        stds.append(np.broadcast_to(np.asarray(m.std, float), targets[-1].shape).ravel())
    # Mirror descent on the pool's weights: the noisy counts weighted by their noise
    # (soft constraints, as Private-PGM fits them), not matched exactly.
    logw = np.zeros(len(pool))
    for _ in range(int(cfg.get("iterations", 300))):
        p = np.exp(logw - logw.max())
        p /= p.sum()
        grad = np.zeros(len(pool))
        for cell, y, sd in zip(cells, targets, stds, strict=True):
            now = np.bincount(cell, weights=p, minlength=len(y)) * total
            grad += ((now - y) / sd ** 2)[cell]
        logw -= float(cfg.get("step", 0.5)) * grad / max(np.abs(grad).max(), 1e-12)
    weights = np.exp(logw - logw.max())
    return _Pool(pool, weights)


@contextlib.contextmanager
def exact_integers(most: int) -> Iterator[None]:
    """Integer columns with at most ``most`` values get a token per value whatever
    ``n_bins`` is (the ``"exact_max"`` key)."""
    from dpsynth.synthesizers.ar import tokens

    real = tokens.codec_for

    def codec_for(col: Any, n_bins: int) -> Any:
        if col.kind == "integer":
            lo, hi = col.bound_values()
            if math.floor(hi) - math.ceil(lo) + 1 <= most:
                return real(col, max(n_bins, most))
        return real(col, n_bins)

    tokens.codec_for = codec_for
    try:
        yield
    finally:
        tokens.codec_for = real


@contextlib.contextmanager
def column_weights(power: float) -> Iterator[None]:
    """dpar's row loss with column ``j``'s cross-entropy weighted by ``log(v_j) ** -power``
    (``v_j`` its vocabulary; the ``"col_weight"`` key)."""
    import torch
    import torch.nn.functional as F

    from dpsynth.synthesizers.ar import synthesizer as ar

    real = ar.RowLoss

    class Weighted(real):  # type: ignore[misc, valid-type]
        def forward(self, logits: Any, tokens: Any) -> Any:
            weights = [math.log(max(2, z.shape[-1])) ** -power for z in logits]
            scale = len(weights) / sum(weights)  # mean weight 1
            per_row = sum(scale * w * F.cross_entropy(z.float(), tokens[:, j], reduction="none")
                          for j, (w, z) in enumerate(zip(weights, logits, strict=True)))
            assert isinstance(per_row, torch.Tensor)
            if self.reduction == "none":
                return per_row
            return per_row.sum() if self.reduction == "sum" else per_row.mean()

    ar.RowLoss = Weighted
    try:
        yield
    finally:
        ar.RowLoss = real


def _rbf(n: int, k: int) -> Any:
    """``(n, k)`` Gaussian bumps at ``k`` evenly spaced centres over ``n`` ordered values."""
    x = (np.arange(n) + 0.5) / n
    centres = np.linspace(0.0, 1.0, k)
    return np.exp(-0.5 * ((x[:, None] - centres[None, :]) * (k - 1)) ** 2)


@contextlib.contextmanager
def smooth_ordered(k: int) -> Iterator[None]:
    """dpar with smooth embeddings and heads for ordered columns (the ``"smooth"`` key)."""
    import torch
    from torch import nn

    from dpsynth.synthesizers._init import gpt2_init
    from dpsynth.synthesizers.ar import DPARSynthesizer
    from dpsynth.synthesizers.ar import synthesizer as ar
    from dpsynth.synthesizers.ar.model import ARTransformer

    codecs: list[Any] = []
    real_config, real_build = DPARSynthesizer._config, ar.build_model

    def config(self: Any) -> Any:
        codecs[:] = self.tokenizer_.codecs_
        return real_config(self)

    class SmoothHead(nn.Module):
        def __init__(self, d: int, basis: Any, vocab: int):
            super().__init__()
            self.lin = nn.Linear(d, basis.shape[1], device="meta")
            self.tok = nn.Linear(1, vocab, bias=False, device="meta")
            self.basis_np = basis

        def forward(self, h: Any) -> Any:
            ones = torch.ones(h.shape[0], 1, dtype=h.dtype, device=h.device)
            return self.lin(h) @ self.phi_t + self.tok(ones)

    class SmoothEmbed(nn.Module):
        """Token embeddings: a shared row per ordered column plus its bumps' projection."""

        def __init__(self, rows: int, width: int, d: int, index: Any, feat: Any):
            super().__init__()
            self.emb = nn.Embedding(rows, d, device="meta")
            self.lin = nn.Linear(max(1, width), d, bias=False, device="meta")
            self.index_np, self.feat_np = index, feat

        def forward(self, ids: Any) -> Any:
            return self.emb(self.index[ids]) + self.lin(self.feat[ids])

    class SmoothAR(ARTransformer):
        def __init__(self, cfg: Any):
            super().__init__(cfg)
            d, sizes = cfg.d_model, cfg.vocab_sizes
            ordered = [j for j, c in enumerate(codecs)
                       if (c.kind in ("numeric", "integer", "datetime", "ordinal"))
                       and c.n_values > k]
            index: list[int] = []  # the embedding row of every token
            rows = 0
            for j in range(len(sizes)):
                shared = None  # one row for all the value tokens of an ordered column
                for t in range(sizes[j]):
                    if j in ordered and t < codecs[j].n_values:
                        if shared is None:
                            shared, rows = rows, rows + 1
                        index.append(shared)
                    else:
                        index.append(rows)
                        rows += 1
            index.append(rows)  # the start token
            rows += 1
            feat = np.zeros((sum(sizes) + 1, k * len(ordered)), np.float32)
            for j in ordered:
                b = ordered.index(j)
                n = codecs[j].n_values
                feat[self.offsets[j]:self.offsets[j] + n, b * k:(b + 1) * k] = _rbf(n, k)
            self.tokens = SmoothEmbed(  # type: ignore[assignment]
                rows, feat.shape[1], d, np.array(index), feat)
            self.heads = nn.ModuleList(
                SmoothHead(d, np.vstack([_rbf(codecs[j].n_values, k),
                                         np.zeros((sizes[j] - codecs[j].n_values, k))]),
                           sizes[j]) if j in ordered else nn.Linear(d, sizes[j], device="meta")
                for j in range(len(sizes)))

    def build(cfg: Any, seed: int | None) -> Any:
        model = SmoothAR(cfg).to_empty(device="cpu")
        if seed is not None:
            gpt2_init(model, seed, cfg.n_layers, ("proj", "fc2"))
        model.tokens.register_buffer("index", torch.from_numpy(model.tokens.index_np))
        model.tokens.register_buffer("feat", torch.from_numpy(model.tokens.feat_np))
        for head in model.heads:
            if isinstance(head, SmoothHead):
                head.register_buffer("phi_t", torch.from_numpy(
                    np.ascontiguousarray(head.basis_np.T)).float())
        return model

    DPARSynthesizer._config, ar.build_model = config, build  # type: ignore[method-assign]
    try:
        yield
    finally:
        DPARSynthesizer._config, ar.build_model = real_config, real_build  # type: ignore


@contextlib.contextmanager
def optimiser(kind: str, value: float) -> Iterator[None]:
    """dpar's Adam replaced for one fit: ``"weight_decay"`` is AdamW with decoupled decay
    ``value`` (a coordinate whose clipped signal is below the noise takes full-size Adam
    steps in random directions, and the decay pulls it back); ``"sgd"`` is SGD with
    heavy-ball momentum ``value`` (no per-coordinate normalisation, so such a coordinate
    moves by the noise's size, not the learning rate's)."""
    import torch

    real_adam = torch.optim.Adam

    def make(params: Any, lr: float) -> Any:
        if kind == "sgd":
            return torch.optim.SGD(params, lr=lr, momentum=value)
        return torch.optim.AdamW(params, lr=lr, weight_decay=value)

    torch.optim.Adam = make  # type: ignore[misc, assignment]
    try:
        yield
    finally:
        torch.optim.Adam = real_adam  # type: ignore[misc]


@contextlib.contextmanager
def bias_corrected(floor: float) -> Iterator[None]:
    """dpar's DP-SGD steps through DP-AdamBC (the ``"adam_bc"`` key of tune_dpar)."""
    import torch

    from dpsynth.synthesizers import _dpsgd_base

    phi2 = [0.0]
    real_train, real_adam = _dpsgd_base.DPSGDSynthesizer._train_private, torch.optim.Adam

    def train(self: Any, module: Any, rows: Any, objective: Any, plan: Any, *args: Any,
              **kwargs: Any) -> Any:
        # after plan: noise, learning_rate, name, sampling, rep, batch, schedule
        batch = kwargs["batch"] if "batch" in kwargs else args[5]
        phi2[0] = (plan.noise_multiplier * float(self.max_grad_norm) / batch) ** 2
        return real_train(self, module, rows, objective, plan, *args, **kwargs)

    class AdamBC(torch.optim.Optimizer):
        def __init__(self, params: Any, lr: float):
            super().__init__(params, {"lr": lr})

        @torch.no_grad()
        def step(self, closure: Any = None) -> None:
            for group in self.param_groups:
                for p in group["params"]:
                    if p.grad is None:
                        continue
                    st = self.state[p]
                    if not st:
                        st.update(t=0, m=torch.zeros_like(p), v=torch.zeros_like(p))
                    st["t"] += 1
                    st["m"].mul_(0.9).add_(p.grad, alpha=0.1)
                    st["v"].mul_(0.999).addcmul_(p.grad, p.grad, value=0.001)
                    m_hat = st["m"] / (1 - 0.9 ** st["t"])
                    v_hat = st["v"] / (1 - 0.999 ** st["t"])
                    denom = (v_hat - phi2[0]).clamp_min(floor * phi2[0]).sqrt()
                    p.addcdiv_(m_hat, denom, value=-group["lr"])

    _dpsgd_base.DPSGDSynthesizer._train_private = train  # type: ignore[method-assign]
    torch.optim.Adam = AdamBC  # type: ignore[misc]
    try:
        yield
    finally:
        _dpsgd_base.DPSGDSynthesizer._train_private = real_train  # type: ignore[method-assign]
        torch.optim.Adam = real_adam  # type: ignore[misc]


@contextlib.contextmanager
def built_by(build: Any) -> Iterator[None]:
    """dpar's network built by ``build(config, seed)`` in place of ``build_model`` for the
    block (every experiment that changes the network patches it here)."""
    from dpsynth.synthesizers.ar import synthesizer as ar

    real_build = ar.build_model
    ar.build_model = build
    try:
        yield
    finally:
        ar.build_model = real_build


def fit_from(start: Any, table: bench.Table, train: Any, kw: dict[str, Any], eps: float,
             seed: int, delta: float = bench.DELTA / 2) -> Any:
    """dpar at ``(eps, delta)`` whose new model is first passed to ``start(model)``
    (``build_model`` patched for the one fit)."""
    from dpsynth.synthesizers.ar import DPARSynthesizer
    from dpsynth.synthesizers.ar import synthesizer as ar

    original = ar.build_model

    def build(config: Any, torch_seed: int | None) -> Any:
        model = original(config, torch_seed)
        if torch_seed is not None:  # not when a saved model is loaded
            start(model)
        return model

    with built_by(build):
        return DPARSynthesizer(epsilon=eps, delta=delta, random_state=seed,
                               **kw).fit(train, table.schema)


@contextlib.contextmanager
def mixed_steps(rows_in: Any, ratio: float, seed: int) -> Iterator[None]:
    """dpar's DP-SGD steps each carrying ``round(ratio * B)`` of the released rows
    ``rows_in`` (``B`` the expected private batch; drawn without replacement at each step by
    a seeded generator), clipped like the private rows and sharing the step's noise; the
    private rows' Poisson batches, and so the accounting, are unchanged. For one fit."""
    import torch

    from dpsynth.synthesizers import _dpsgd, _dpsgd_base

    real_train, real_batches = (_dpsgd_base.DPSGDSynthesizer._train_private,
                                _dpsgd.FastPoissonBatches)

    def train_private(self: Any, module: Any, rows: Any, objective: Any, plan: Any,
                      noise: Any, learning_rate: float, name: str, sampling: Any, rep: Any,
                      batch: int, schedule: str = "constant", declared: Any = None) -> Any:
        if declared is not None:
            raise ValueError("mixed_steps does not combine with the library's public rows")
        public = torch.from_numpy(self.tokenizer_.transform(rows_in)).to(rows.device)
        n_private, k = len(rows), min(len(public), max(1, round(ratio * batch)))
        rng = np.random.default_rng(seed + 7)

        class Mixed(real_batches):  # type: ignore[misc, valid-type]
            def __init__(inner, n_rows: int, *args: Any, **kwargs: Any):
                super().__init__(n_private, *args, **kwargs)  # the private rows alone

            def __iter__(inner) -> Iterator[np.ndarray]:
                for private in real_batches.__iter__(inner):
                    drawn = rng.choice(len(public), size=k, replace=False)
                    yield np.concatenate([private, n_private + drawn])

        _dpsgd.FastPoissonBatches = Mixed
        try:
            return real_train(self, module, torch.cat([rows, public]), objective, plan,
                              noise, learning_rate, name, sampling, rep, batch, schedule)
        finally:
            _dpsgd.FastPoissonBatches = real_batches

    _dpsgd_base.DPSGDSynthesizer._train_private = train_private  # type: ignore[method-assign]
    try:
        yield
    finally:
        _dpsgd_base.DPSGDSynthesizer._train_private = real_train  # type: ignore[method-assign]


def anchored(table: bench.Table, train: Any, kw: dict[str, Any], cfg: dict[str, Any],
             eps: float, seed: int) -> Any:
    """dpar whose DP-SGD steps each carry rows drawn from a marginal model (``"anchor"``)."""
    from dpsynth.synthesizers.ar import DPARSynthesizer

    share = float(cfg["share"])
    fake = drawn_rows(cfg["anchor"], table, train, eps * share, seed)
    with mixed_steps(fake, float(cfg.get("public", 1.0)), seed):
        if not cfg.get("warm"):
            return DPARSynthesizer(epsilon=eps * (1 - share), delta=bench.DELTA / 2,
                                   random_state=seed, **kw).fit(train, table.schema)
        return warm_fit(fake, table, train, kw, eps * (1 - share), seed, kw.get("epochs"))


def _per_row_gradients(module: Any) -> tuple[dict[str, Any], Any]:
    """The module's trainable parameters, and a function of token rows ``x`` giving their
    ``(len(x), d)`` per-row gradients of :class:`RowLoss` (``torch.func``, 256 rows at a
    time), the parameters flattened in the order of the dict."""
    import torch
    from torch.func import functional_call, grad, vmap

    from dpsynth.synthesizers.ar.model import RowLoss

    params = {n: p for n, p in module.named_parameters() if p.requires_grad}
    loss = RowLoss()

    def row_loss(weights: Any, x: Any) -> Any:  # one row's negative log-likelihood
        return loss(functional_call(module, weights, (x[None],)), x[None])

    per_row = vmap(grad(row_loss), in_dims=(None, 0))

    def flat(x: Any) -> Any:
        weights = {n: p.detach() for n, p in params.items()}
        parts = []
        for start in range(0, len(x), 256):
            g = per_row(weights, x[start:start + 256])
            parts.append(torch.cat([g[n].reshape(len(g[n]), -1) for n in params], 1))
        return torch.cat(parts)

    return params, flat


@contextlib.contextmanager
def manual_private_steps(step_sum: Any, label: str, noise_scale: float = 1.0
                         ) -> Iterator[None]:
    """dpar's DP-SGD run replaced by a loop over per-row gradients, for one fit.

    ``step_sum(self, module, rows, flat, t, x)`` gets the step's private token rows ``x``
    (``None`` for an empty batch) and returns ``(total, lift)``: the sum of the rows' clipped
    gradients in some space, each row of norm at most ``max_grad_norm`` there, and the map
    from that space back to the flattened parameters. The loop adds the plan's noise
    ``N(0, sigma^2 C^2 I)`` to ``total``, lifts it and divides by the expected batch, so the
    plan's accounting holds whenever ``step_sum`` keeps each row within ``C``. Poisson
    batches, Adam and the learning-rate schedule are dpar's own. ``noise_scale`` multiplies
    the noise: anything but 1 is a diagnostic **without the plan's privacy**. The optimiser
    is the library's (:func:`~dpsynth.synthesizers._dpsgd_base.make_optimizer`: Adam, with
    the model's own parameter groups when it declares them).
    """
    import torch

    from dpsynth.synthesizers import _dpsgd, _dpsgd_base

    real_train = _dpsgd_base.DPSGDSynthesizer._train_private

    def train_private(self: Any, module: Any, rows: Any, objective: Any, plan: Any,
                      noise: Any, learning_rate: float, name: str, sampling: Any,
                      rep: Any, batch: int, schedule: str = "constant",
                      declared: Any = None) -> Any:
        if declared is not None:
            raise ValueError(f"{label} does not combine with the library's public rows")
        params, flat = _per_row_gradients(module)
        optimizer = _dpsgd_base.make_optimizer(module, learning_rate)
        after_step = _dpsgd_base.lr_scheduler(optimizer, schedule, plan.steps)
        noise_fn = _dpsgd.make_noise_fn(noise, rows.device)
        std = plan.noise_multiplier * float(self.max_grad_norm) * noise_scale
        log = _dpsgd.TrainingLog()
        for t, idx in enumerate(_dpsgd.FastPoissonBatches(len(rows), plan.sample_rate,
                                                           plan.steps, sampling)):
            x = rows[torch.from_numpy(np.asarray(idx))] if len(idx) else None
            total, lift = step_sum(self, module, rows, flat, t, x)
            if x is None:
                log.empty_batches += 1
            else:
                log.rows_seen += len(idx)
            step = lift(total + noise_fn(total, std)) / batch
            offset = 0
            for p in params.values():
                p.grad = step[offset:offset + p.numel()].view_as(p).clone()
                offset += p.numel()
            optimizer.step()
            if after_step is not None:
                after_step()
            log.steps_run += 1
        return log, label

    _dpsgd_base.DPSGDSynthesizer._train_private = train_private  # type: ignore[method-assign]
    try:
        yield
    finally:
        _dpsgd_base.DPSGDSynthesizer._train_private = real_train  # type: ignore[method-assign]


def projected(k: int, basis: Any, every: int, probes: int, seed: int
              ) -> contextlib.AbstractContextManager[None]:
    """dpar's DP-SGD steps in a ``k``-dimensional gradient subspace (the ``"project"`` key);
    ``basis`` is ``"self"``, ``"oracle"`` or a frame of released rows to probe with."""
    import torch

    from dpsynth.synthesizers.ar import sampling as ar_sampling

    if isinstance(basis, str) and basis not in ("self", "oracle"):
        raise ValueError(f"basis must be 'self', 'oracle' or rows, not {basis!r}")
    gen = torch.Generator().manual_seed(seed + 11)
    state: dict[str, Any] = {}

    def step_sum(self: Any, module: Any, rows: Any, flat: Any, t: int, x: Any) -> Any:
        if "pool" not in state:  # released rows, tokenised once
            state["pool"] = (None if isinstance(basis, str)
                             else torch.from_numpy(self.tokenizer_.transform(basis)))
        if t % every == 0:
            pool = state["pool"]
            if pool is not None:
                probe = pool[torch.randperm(len(pool), generator=gen)[:probes]]
            elif basis == "self":
                free = np.full((probes, rows.shape[1]), ar_sampling.FREE, np.int64)
                probe = torch.from_numpy(ar_sampling.draw_tokens(module, free, gen)[0])
            else:  # the private rows themselves: a diagnostic without privacy
                probe = rows[torch.randperm(len(rows), generator=gen)[:probes]]
            g = flat(probe)
            state["basis"] = torch.svd_lowrank(g, q=min(k, *g.shape), niter=2)[2]  # (d, k)
        basis_p = state["basis"]
        total = torch.zeros(basis_p.shape[1])
        if x is not None:
            z = flat(x) @ basis_p
            clip = float(self.max_grad_norm)
            total = (z * (clip / z.norm(dim=1, keepdim=True).clamp_min(clip))).sum(0)
        return total, lambda v: basis_p @ v

    return manual_private_steps(step_sum, "projected")


def column_groups(model: Any) -> Any:
    """Group of each flattened trainable coordinate of an ``ARTransformer`` (in the order of
    :func:`_per_row_gradients`): ``j`` for column ``j``'s head and the token-embedding rows
    of its values, ``len(heads)`` for the rest (start token, positions, blocks, final norm)."""
    import torch

    trunk = len(model.heads)
    parts = []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if name.startswith("heads."):
            parts.append(torch.full((p.numel(),), int(name.split(".")[1])))
        elif name == "tokens.weight":
            owner = torch.full((p.shape[0],), trunk)  # the start token stays in the trunk
            for j, (offset, size) in enumerate(zip(model.offsets, model.config.vocab_sizes,
                                                   strict=True)):
                owner[offset:offset + size] = j
            parts.append(owner.repeat_interleave(p.shape[1]))
        else:
            parts.append(torch.full((p.numel(),), trunk))
    return torch.cat(parts)


def grouped(power: float | None, noise_scale: float = 1.0
            ) -> contextlib.AbstractContextManager[None]:
    """dpar with group-wise clipping, a group per column and one for the trunk, group ``g``
    clipped to ``C d_g^power / sqrt(sum_h d_h^(2 power))`` (the ``"group_clip"`` key);
    ``power=None`` clips the whole gradient as one group, through the same loop;
    ``noise_scale`` as in :func:`manual_private_steps` (a diagnostic without privacy)."""
    import torch

    state: dict[str, Any] = {}

    def step_sum(self: Any, module: Any, rows: Any, flat: Any, t: int, x: Any) -> Any:
        if "groups" not in state:  # power None: one group (the plain clip, a control)
            groups = column_groups(module)
            if power is None:
                groups = torch.zeros_like(groups)
            sizes = torch.bincount(groups).double()
            weights = sizes ** (power or 0.0)
            state["groups"] = groups
            state["clips"] = (float(self.max_grad_norm) * weights / weights.norm()).float()
        groups, clips = state["groups"], state["clips"]
        if x is None:
            return torch.zeros(len(groups)), lambda v: v
        return group_clipped_sum(flat(x), groups, clips), lambda v: v

    return manual_private_steps(step_sum, "grouped", noise_scale)


def group_clipped_sum(g: Any, groups: Any, clips: Any) -> Any:
    """The sum over rows of per-row gradients ``g`` ``(B, d)`` with each row's coordinates of
    group ``h`` (``groups`` ``(d,)``) clipped to norm ``clips[h]``: a row's whole clipped
    gradient has norm at most ``||clips||``, the sensitivity the noise is calibrated to."""
    import torch

    norms = torch.zeros(len(g), len(clips)).index_add_(1, groups, g * g).sqrt()
    scale = (clips / norms.clamp_min(1e-12)).clamp(max=1.0)  # (B, groups)
    return (g * scale[:, groups]).sum(0)


def declared_groups(module: Any, clip: float) -> tuple[Any, Any]:
    """The group of each flattened trainable coordinate of ``module`` (in the order of
    :func:`_per_row_gradients`) and each group's clip ``clip sqrt(share)``, from the
    ``clip_groups()`` the model declares for book-keeping."""
    import torch

    groups = module.clip_groups()
    of_param = {id(p): g for g, (params, _) in enumerate(groups) for p in params}
    parts = [torch.full((p.numel(),), of_param[id(p)])
             for p in module.parameters() if p.requires_grad]
    clips = torch.tensor([clip * math.sqrt(share) for _, share in groups])
    return torch.cat(parts), clips


@contextlib.contextmanager
def pairwise(scale: float) -> Iterator[None]:
    """dpar with a direct pairwise term beside the transformer (the ``"pairwise"`` key)."""
    import torch
    from torch import nn

    from dpsynth.synthesizers._init import gpt2_init
    from dpsynth.synthesizers.ar import model as ar_model

    class Pairwise(ar_model.ARTransformer):
        def __init__(self, config: Any):
            super().__init__(config)
            sizes = config.vocab_sizes
            self.pair = nn.ModuleList(nn.Embedding(max(1, self.offsets[j]), sizes[j],
                                                   device="meta")
                                      for j in range(1, len(sizes)))

        def pair_logits(self, tokens: Any, j: int) -> Any:
            shift = torch.tensor(self.offsets[:j], dtype=torch.long, device=tokens.device)
            return scale * self.pair[j - 1](tokens[:, :j] + shift).sum(dim=1)

        def forward(self, tokens: Any) -> Any:
            logits = super().forward(tokens)
            return [z if j == 0 else z + self.pair_logits(tokens, j)
                    for j, z in enumerate(logits)]

        def column_logits(self, tokens: Any, j: int) -> Any:  # what sampling draws from
            z = super().column_logits(tokens, j)
            return z if j == 0 else z + self.pair_logits(tokens, j)

    def build(config: Any, seed: int | None) -> Any:
        model = Pairwise(config).to_empty(device="cpu")
        if seed is not None:
            gpt2_init(model, seed, config.n_layers, ("proj", "fc2"))
            for table in model.pair.children():
                nn.init.zeros_(table.weight)
        return model

    with built_by(build):
        yield


def marginal_prior(table: bench.Table, train: Any, kw: dict[str, Any], eps: float,
                   share: float, seed: int) -> Any:
    """dpar whose heads start from DP 1-way histograms (the ``"marginals"`` prior of tune_dpar)."""
    import torch

    from dpsynth.accounting.calibrate import calibrate_gaussian
    from dpsynth.synthesizers.ar.tokens import TableTokenizer

    tokenizer = TableTokenizer(int(kw.get("n_bins", 64))).fit(table.schema)
    tokens = tokenizer.transform(train)
    std = calibrate_gaussian(eps * share, bench.DELTA / 2) * math.sqrt(tokens.shape[1])
    rng = np.random.default_rng(seed + 99)
    logs = []
    for j, size in enumerate(tokenizer.vocab_sizes):
        counts = np.bincount(tokens[:, j], minlength=size) + rng.normal(0.0, std, size)
        p = np.maximum(counts, 1.0)
        logs.append(torch.tensor(np.log(p / p.sum()), dtype=torch.float32))

    def start(model: Any) -> None:  # the heads' biases at the centred log-histograms
        with torch.no_grad():
            for head, lp in zip(model.heads, logs, strict=True):
                head.bias.copy_(lp - lp.mean())

    return fit_from(start, table, train, kw, eps * (1 - share), seed)


def reordered(table: bench.Table, train: Any, kw: dict[str, Any], how: str, eps: float,
              seed: int) -> Any:
    """dpar fitted with its columns in another order (the ``"order"`` key): ``"ascending"``
    sorts them by vocabulary size, smallest first, ties in schema order; ``"target_first"``
    moves the benchmark's TSTR target to the front and keeps the rest in schema order;
    ``"random:K"`` is a permutation drawn with seed ``K`` (a measurement of how much the order
    alone moves the scores)."""
    import dataclasses

    from dpsynth.synthesizers.ar import DPARSynthesizer
    from dpsynth.synthesizers.ar.tokens import TableTokenizer

    if how == "ascending":
        tokenizer = TableTokenizer(int(kw.get("n_bins", 64))).fit(table.schema)
        sizes = dict(zip(tokenizer.names, tokenizer.vocab_sizes, strict=True))
        columns = sorted(table.schema.columns, key=lambda c: sizes.get(c.name, 0))  # stable
    elif how == "target_first":
        columns = sorted(table.schema.columns, key=lambda c: c.name != table.target)  # stable
    elif how.startswith("random:"):
        perm = np.random.default_rng(int(how.split(":", 1)[1])).permutation(
            len(table.schema.columns))
        columns = [table.schema.columns[i] for i in perm]
    else:
        raise ValueError("order must be 'ascending', 'target_first' or 'random:K', "
                         f"not {how!r}")
    schema = dataclasses.replace(table.schema, columns=tuple(columns))
    return DPARSynthesizer(epsilon=eps, delta=bench.DELTA, random_state=seed,
                           **kw).fit(train[schema.names], schema)


def debiased_rows(synth: Any, n_rows: int, factor: int, seed: int) -> Any:
    """``n_rows`` rows of a fitted dpar, corrected for the clip's bias (the ``"debias"`` key).

    A pool of ``factor * n_rows`` rows is drawn from the model, and ``n_rows`` of them are
    kept by weighted sampling without replacement (Efraimidis and Spirakis, 2006) with weight
    ``max(1, ||g(x)|| / C)``: ``g(x)`` the row's gradient of the row loss at the released
    weights, ``C`` the clip. Why: without the noise, DP-SGD's fixed point solves
    ``sum_i w_i g_i = 0`` with ``w_i = min(1, C / ||g_i||)``, the maximum-likelihood fit of
    the data reweighted by ``w``; if the model fits that reweighted distribution,
    ``p_data(x)`` is proportional to ``p_model(x) / w(x)``, so resampling model draws by
    ``1 / w`` undoes the reweighting. It reads only the released model (post-processing).
    With a target head (``target=...``), each kept row's target is then redrawn by the head
    (twenty-sixth session), as the library's ``sample`` does. Since the twenty-seventh
    session the weights are the library's ``sampling.clip_weights`` (book-keeping's per-row
    norms; the earlier lines used per-row ``vmap`` gradients through
    :func:`_per_row_gradients`, equal to about 1e-6 relative). It keeps its own seeds
    (``seed + 23``, ``+ 29``, ``+ 31``) so that the recorded lines reproduce; the library's
    ``clip_correction=True`` draws the same way from its own stream.
    """
    import torch

    from dpsynth.synthesizers.ar import sampling as ar_sampling

    gen = torch.Generator().manual_seed(seed + 23)
    free = np.full((factor * n_rows, len(synth.tokenizer_.codecs_)), ar_sampling.FREE,
                   np.int64)
    tokens, _ = ar_sampling.draw_tokens(synth.model_, free, gen)
    weights = ar_sampling.clip_weights(synth.model_, tokens, float(synth.max_grad_norm))
    rng = np.random.default_rng(seed + 29)
    keep = ar_sampling.weighted_subset(weights, n_rows, rng)  # the library's weighted draw
    rows = synth.tokenizer_.inverse_transform(tokens[keep], rng)
    rows = rows[[c.name for c in synth.schema_.data_columns]].reset_index(drop=True)
    if getattr(synth, "head_", None) is not None:  # the target head redraws the target
        synth._redraw_target(rows, tokens[keep], np.random.default_rng(seed + 31))
    return rows


def noise_scaled_clip(table: bench.Table, n_rows: int, kw: dict[str, Any], eps: float,
                      noise_std: float) -> float:
    """The clip ``max(1, noise_std / sigma)`` of the ``"noise_std"`` key: ``sigma`` the noise
    multiplier dpar's plan calibrates for ``n_rows`` rows at ``(eps, delta)`` with the
    settings ``kw`` (the row count and the budget only; the plan does not depend on the
    clip), so that the noise's standard deviation ``sigma C`` is ``noise_std`` once the clip
    passes 1 and the clip rises towards the rows' gradient norms as epsilon grows."""
    from dpsynth.synthesizers.ar import DPARSynthesizer
    from dpsynth.synthesizers.plan import DPSGDPlan

    plan = DPARSynthesizer(epsilon=eps, delta=bench.DELTA, **kw).plan_budget(table.schema,
                                                                            n_rows)
    sigma = plan.detail_as(DPSGDPlan).noise_multiplier
    return max(1.0, noise_std / sigma) if sigma > 0 else math.inf


def sharpened(temperature: float, min_p: float, gate: float = 0.0
              ) -> contextlib.AbstractContextManager[None]:
    """dpar's draws at ``temperature`` with min-p truncation (the ``"sampling"`` key): for
    the context, every ``ARTransformer``'s :meth:`column_logits`, which sampling draws
    from, are divided by ``temperature`` and tokens below ``min_p`` times the likeliest one
    masked out, in the rows whose likeliest token has probability at least ``gate`` (all
    rows at 0). Nothing is patched at (1, 0)."""
    if (temperature, min_p) == (1.0, 0.0):
        return contextlib.nullcontext()
    return _sharpened_logits(temperature, min_p, gate)


@contextlib.contextmanager
def _sharpened_logits(temperature: float, min_p: float, gate: float) -> Iterator[None]:
    import torch

    from dpsynth.synthesizers.ar.model import ARTransformer

    original = ARTransformer.column_logits

    def column_logits(self: Any, tokens: Any, j: int) -> Any:
        z = original(self, tokens, j).float() / temperature
        if min_p > 0:
            logp = torch.log_softmax(z, dim=-1)
            top = logp.amax(dim=-1, keepdim=True)
            keep = logp >= top + math.log(min_p)
            if gate > 0:
                keep = keep | (top < math.log(gate))
            z = torch.where(keep, z, torch.full_like(z, -math.inf))
        return z

    ARTransformer.column_logits = column_logits  # type: ignore[method-assign]
    try:
        yield
    finally:
        ARTransformer.column_logits = original  # type: ignore[method-assign]


class _AnyOrderRows:
    """Rows of a fitted any-order dpar, each drawn in a random column order of its own."""

    def __init__(self, synth: Any):
        self.synth = synth

    def sample(self, n_rows: int, random_state: int | None = None) -> Any:
        import torch

        from dpsynth.synthesizers.ar.sampling import CHUNK

        model, tokenizer = self.synth.model_, self.synth.tokenizer_
        gen = torch.Generator().manual_seed(int(random_state or 0) + 7)
        width = len(tokenizer.vocab_sizes)
        parts = []
        with torch.no_grad():
            for start in range(0, n_rows, CHUNK):
                n = min(CHUNK, n_rows - start)
                perm = torch.argsort(torch.rand(n, width, generator=gen), dim=1)
                tokens = torch.zeros(n, width, dtype=torch.long)
                for t in range(width):
                    state = model.hidden_in_order(tokens, perm[:, :t + 1])[:, t]
                    column = perm[:, t]
                    for j in column.unique().tolist():
                        rows = column == j
                        logits = model.heads[j](state[rows]).float()
                        tokens[rows, j] = torch.multinomial(torch.softmax(logits, -1), 1,
                                                            generator=gen).squeeze(1)
                parts.append(tokens.numpy())
        return tokenizer.inverse_transform(np.concatenate(parts),
                                           np.random.default_rng(random_state))


def any_order(table: bench.Table, train: Any, kw: dict[str, Any], eps: float,
              seed: int) -> Any:
    """dpar trained on every column order at once (the ``"any_order"`` key).

    Each training row is read in a random order of its own (drawn from a generator of the
    experiment, independent of the data, so the accounting is dpar's): position 0 holds the
    start token, position ``t`` the token of the column read at ``t - 1``, and every position
    adds the embedding of the column it predicts, in place of the fixed-order model's
    position embedding; column ``j``'s head reads the state of the position that predicts
    it. Sampling draws each row in a random order too, so the rows are a mixture over
    orders. After the order-agnostic NADE (Uria, Murray and Larochelle, ICML 2014) and
    autoregressive diffusion models (Hoogeboom et al., ICLR 2022).
    """
    import torch

    from dpsynth.synthesizers.ar import DPARSynthesizer
    from dpsynth.synthesizers.ar import model as ar_model
    from dpsynth.synthesizers.ar import synthesizer as ar

    orders = torch.Generator().manual_seed(seed + 12345)

    class AnyOrder(ar_model.ARTransformer):
        def hidden_in_order(self, tokens: Any, perm: Any) -> Any:
            """States ``(B, n)`` when position ``t`` predicts column ``perm[:, t]``."""
            b, n = perm.shape
            shift = torch.tensor(self.offsets, dtype=torch.long, device=tokens.device)
            start = torch.full((b, 1), self.start_token, dtype=torch.long, device=tokens.device)
            read = perm[:, :n - 1]
            ids = torch.cat([start, tokens.gather(1, read) + shift[read]], dim=1)
            return self.encode(ids, perm.contiguous())  # the position ids name the column

        def forward(self, tokens: Any) -> Any:
            b, width = tokens.shape
            perm = torch.argsort(torch.rand(b, width, generator=orders), dim=1).to(
                tokens.device)
            h = self.hidden_in_order(tokens, perm)
            where = torch.argsort(perm, dim=1)  # the position that predicts each column
            rows = torch.arange(b, device=tokens.device)
            return [head(h[rows, where[:, j]]) for j, head in enumerate(self.heads)]

    real_build = ar.build_model

    def build(config: Any, torch_seed: int | None) -> Any:
        model = real_build(config, torch_seed)  # dpar's own weights and initialisation
        model.__class__ = AnyOrder  # the same parameters, read in other orders
        return model

    with built_by(build):
        synth = DPARSynthesizer(epsilon=eps, delta=bench.DELTA, random_state=seed,
                                **kw).fit(train, table.schema)
    return _AnyOrderRows(synth)


@contextlib.contextmanager
def mixture(components: int, init_std: float = 0.5) -> Iterator[None]:
    """dpar's transformer replaced by a mixture of products (the ``"mixture"`` key).

    ``p(x) = sum_k pi_k prod_j p_k(x_j)``: ``components`` latent classes, each with one
    categorical distribution per column over dpar's tokens, the latent class model that
    DPMPM synthesisers fit by Gibbs sampling (Si and Reiter, "Nonparametric Bayesian multiple
    imputation for incomplete categorical variables in large-scale assessment surveys",
    JEBS 2013), here fitted by DP-SGD on the log-likelihood. Class ``k``'s logits (its
    tokens', then its prior's) are row ``k`` of one embedding plus a row every class shares,
    read once per row, so book-keeping clips them as it clips the transformer. (As declared
    this was ``nn.Linear(components, sum(vocab) + 1)`` read at each class's one-hot code:
    the same function and the same per-row gradients, the weight the classes' rows and the
    bias the shared row, drawn alike, but the noise drawn in other shapes. It was meant to
    be faster and is not: 27.8 CPU-seconds on HMDA at ``K`` = 64 against 26.3, because the
    cost is the per-row tables of ``K`` times the vocabulary, not the clipping.) The model is
    written as the autoregressive factorisation ``p(x_j | x_<j) = sum_k p(k | x_<j) p_k(x_j)``,
    so dpar's loss (the sum of the columns' cross-entropies), sampler and conditional
    sampler use it unchanged. Class rows N(0, ``init_std``^2) from the seeded generator, the
    shared row 0.
    """
    from dpsynth.synthesizers.ar.model import MixtureOfProducts

    def build(config: Any, seed: int | None) -> Any:
        model = MixtureOfProducts(config.vocab_sizes, components).to_empty(device="cpu")
        if seed is not None:
            model.draw(seed, init_std)
        return model

    with built_by(build):
        yield


@contextlib.contextmanager
def product_of_experts(components: int, share: float, mix_rate: float,
                       noise_scale: float = 1.0) -> Iterator[None]:
    """dpar's transformer and a mixture of ``components`` products as one product of experts
    (the ``"poe"`` key).

    Column ``j``'s conditional is ``p(x_j | x_<j) ∝ q_j(x_j | x_<j) exp(z_j(x_<j))``: the
    mixture's exact conditional ``q_j`` (:func:`mixture`) times the exponentiated logits
    ``z_j`` of dpar's transformer (a product of experts, Hinton, "Training products of
    experts by minimizing contrastive divergence", Neural Computation 2002; here each
    column's two factors are normalised together, so the likelihood stays exact). The
    transformer starts as dpar's (its logits near 0), so the model starts near the mixture
    and the transformer learns what the classes miss. The network is the library's
    ``ProductOfExperts`` at this share and rate, trained by DP-SGD with the plan's noise on
    the clip groups and learning rates it declares: the mixture's part of a row's gradient
    clipped to ``C sqrt(share)``, the transformer's to ``C sqrt(1 - share)``, so the whole
    has norm at most ``C`` and the plan's accounting holds (group-wise clipping, McMahan et
    al., "Learning differentially private recurrent language models", ICLR 2018); Adam runs
    the transformer at dpar's rate and the mixture at ``mix_rate``, the schedule scaling
    both. Per-row gradients come from ``torch.func``
    (:func:`manual_private_steps`), not from book-keeping; ``noise_scale`` as there (anything
    but 1 is a diagnostic without the plan's privacy).
    """
    import dataclasses

    import torch

    from dpsynth.synthesizers.ar import model as ar_model

    if not 0.0 < share < 1.0:
        raise ValueError(f"share must lie strictly between 0 and 1, not {share}")

    def build(config: Any, seed: int | None) -> Any:  # the library's network (same draws)
        return ar_model.build_model(dataclasses.replace(
            config, network="experts", n_classes=components, mixture_clip_share=share,
            mixture_learning_rate=mix_rate), seed)

    state: dict[str, Any] = {}

    def step_sum(self: Any, module: Any, rows: Any, flat: Any, t: int, x: Any) -> Any:
        if "groups" not in state:  # the model's own clip groups, per flattened coordinate
            state["groups"], state["clips"] = declared_groups(module, float(self.max_grad_norm))
        if x is None:
            return torch.zeros(len(state["groups"])), lambda v: v
        return group_clipped_sum(flat(x), state["groups"], state["clips"]), lambda v: v

    with built_by(build), manual_private_steps(step_sum, "product of experts", noise_scale):
        yield


class TargetHead:
    """Rows from ``dpar`` with the target column redrawn from a DP-SGD logistic regression
    on the other columns (the ``"head"`` key; fitted by :func:`target_head`).

    ``sample`` draws whole rows from dpar (so the other columns keep dpar's joint, the target
    marginalised out), then each row's target from ``p(target = positive | other columns)``
    of the regression, its intercept shifted so that the share of positives is that of
    dpar's own draw (:func:`bench_dp_classifier_bound.shifted_to_rate`), with a generator
    seeded from ``random_state``: post-processing of the two releases. ``privacy_.epsilon`` is the
    PLD composition of the two (:func:`target_head`).
    """

    def __init__(self, synth: Any, table: bench.Table, n_bins: int, weights: Any,
                 epsilon: float) -> None:
        import types

        self.synth, self.table, self.n_bins, self.weights = synth, table, n_bins, weights
        self.privacy_ = types.SimpleNamespace(epsilon=epsilon)

    def sample(self, n_rows: int, random_state: int) -> Any:
        from bench_dp_classifier_bound import features, shifted_to_rate

        rows = self.synth.sample(n_rows, random_state=random_state)
        x, drawn = features(self.table, rows, self.n_bins)
        p = shifted_to_rate(x @ self.weights, float(drawn.mean()))
        rng = np.random.default_rng([int(random_state), 25])
        categories = list(self.table.schema[self.table.target].categories or ())
        other = [c for c in categories if str(c) != str(self.table.positive)]
        if len(other) != 1:
            raise ValueError("the head experiment needs a target with two categories")
        rows[self.table.target] = np.where(rng.random(n_rows) < p, self.table.positive,
                                           other[0])
        return rows


def target_head(table: bench.Table, train: Any, kw: dict[str, Any], share: float,
                setting: Any, eps: float, seed: int) -> TargetHead:
    """The target's logistic regression (:func:`bench_dp_classifier_bound.dp_logistic`,
    ``setting`` its ``[n_bins, batch, epochs, lr]``, the ``"head_setting"`` key of
    :mod:`tune_dpar` and of ``dpar-head`` in :mod:`bench_table_models`), its noise
    calibrated so that it alone is ``(share epsilon, delta)``-DP; then dpar on every column,
    its noise calibrated with the regression's steps as prior events (:meth:`plan_training` with
    ``prior``, the library's path for composites), so that the two compose by PLD to
    ``(epsilon, delta)``. The reported epsilon is that composition."""
    from bench_dp_classifier_bound import dp_logistic, features

    from dpsynth.accounting import Budget, BudgetSession, NoiseSource
    from dpsynth.accounting.analysis import pld_epsilon
    from dpsynth.accounting.events import SubsampledGaussianEvent
    from dpsynth.synthesizers.ar import DPARSynthesizer

    if not 0.0 < share < 1.0:
        raise ValueError(f"share must lie strictly between 0 and 1, not {share}")
    n_bins, batch, epochs, rate = setting
    x, y = features(table, train, int(n_bins))
    epochs = int(epochs)
    q = 1.0 if batch == "all" else min(1.0, int(batch) / len(x))
    weights, sigma = dp_logistic(x, y, epsilon=eps * share, batch=batch, epochs=epochs,
                                 lr=float(rate), seed=seed, delta=bench.DELTA)
    head = SubsampledGaussianEvent(sigma, q, max(1, round(epochs / q)))
    budget = Budget(eps, bench.DELTA)
    synth = DPARSynthesizer(epsilon=eps, delta=bench.DELTA, random_state=seed, **kw)
    plan = synth.plan_training(table.schema, len(train), budget, prior=[head])
    synth.fit_planned(train, table.schema, plan=plan, recorder=BudgetSession(budget),
                      noise=NoiseSource.create(seed, False))
    total = pld_epsilon([head, *plan.events], bench.DELTA)
    return TargetHead(synth, table, int(n_bins), weights, total)
