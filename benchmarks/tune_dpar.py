"""Tuning runs of ``dpar`` on the declared tuning tables only (HMDA, Fertility, randhie-wide,
Affairs, HousePrices).

The tables are those of :mod:`bench_table_models` (``AER::HMDA``, ``AER::Fertility``, from
the sixth session the wide ``sampleSelection::RandHIE`` and from the tenth the small
``AER::Affairs`` and ``AER::HousePrices``; each named there before any tuning on it);
nothing here reads an evaluation table. Each configuration is a JSON object of ``dpar``
parameters, fitted on the 80 % split of seeds ``0 .. seeds - 1`` and scored as in the
benchmark (TVD against the training rows, TSTR on the real 20 %); the line printed is
the mean over seeds.

From the twenty-eighth session dpar draws its rows systematically by default
(``draw="systematic"``); every configuration here draws independently, as every earlier line
did, unless it names ``"draws"`` (the earlier lines reproduce).

From the twenty-fourth session dpar takes ``network="experts"`` (the product of experts below);
every configuration here runs the transformer, the network of every earlier line, unless it
names ``"network"`` (HMDA's defaults, mixture and product of experts lines of seed 0
reproduce to the last digit after the change).

Two special keys:

* ``{"only": "aim", "share": s}``: the marginal synthesizer alone at ``s * epsilon`` (a
  reference, not dpar);
* ``{"prior": "aim", "share": s, ...}``: an **experiment not in the library**: dpar's weights
  are first trained without noise on rows sampled from ``aim`` fitted at ``s * epsilon``
  (post-processing of a DP release), then fine-tuned with DP-SGD at ``(1 - s) * epsilon`` on
  the real rows (basic composition; delta split in halves). It was tried as a way to help
  small tables and not kept (``docs/benchmarks.md``).
  From the twelfth session it takes ``"fake_factor": k`` (``k`` times the training rows are
  drawn from the marginal model; default 1) and ``"prior_epochs"`` (the warm run's passes,
  default 20); the warm run uses dpar's automatic plain rate (1e-2) whatever
  ``learning_rate`` the fine-tune is given. Tried on ``randhie-wide`` and not kept.
* ``{"prior": "marginals", "share": s, ...}``: an **experiment not in the library** (eighth
  session): every column's 1-way histogram of dpar's tokens is released by one Gaussian
  mechanism at ``(s * epsilon, delta / 2)`` (L2 sensitivity ``sqrt(columns)``; counts floored
  at 1), each head's bias starts at the centred log of its noisy histogram, and dpar trains
  with DP-SGD at ``((1 - s) * epsilon, delta / 2)`` (basic composition). Not kept.

* ``{"sampling": [[t, m], ...], ...}``: an **experiment not in the library** (ninth session):
  each fitted model is sampled once per pair, with the next-column distributions raised to
  the power ``1 / t`` (temperature ``t``) and, for ``m > 0``, tokens below ``m`` times the
  likeliest one dropped (min-p truncation), both post-processing; one line per pair. Not kept.

* ``{"adam_bc": g, ...}``: an **experiment not in the library** (ninth session): Adam with
  the bias correction of DP-AdamBC (Tang et al., AAAI 2024): the noise's known variance per
  coordinate, ``(sigma C / B)^2``, is subtracted from Adam's second-moment estimate, floored
  at ``g`` times that variance. Not kept.

* ``{"smooth": k, ...}``: an **experiment not in the library** (tenth session): every ordered
  column (numeric, datetime, integer, ordinal) with more than ``k`` values gets, instead of
  one embedding row and one head weight row per value, ``k`` fixed Gaussian bumps over the
  value order mapped by one learned matrix (plus one learned row per column for the
  embedding, and one learned bias per token for the head). Not kept.

* ``{"col_weight": p, ...}``: an **experiment not in the library** (tenth session): column
  ``j``'s cross-entropy in the row loss weighted by ``log(v_j) ** -p`` (mean weight 1, ``v_j``
  its vocabulary size). Not kept.

* ``{"exact_max": m, ...}``: an **experiment not in the library** (tenth session): integer
  columns with at most ``m`` values keep a token per value whatever ``n_bins`` is. Not kept.

* ``{"hybrid": "mst" | "aim", "share": s, "pool": k, "step": e, ...}``: an **experiment not
  in the library** (tenth session): the marginal model at ``(s * epsilon, delta / 2)`` keeps
  its noisy measurements, dpar is fitted at ``((1 - s) * epsilon, delta / 2)``, a pool of
  ``k`` times the rows is drawn from it and its weights are fitted to the noisy counts by
  mirror descent (step ``e``, each count weighted by its inverse noise variance); rows are
  drawn by weight. Not kept.

* ``{"weight_decay": w, ...}``: an **experiment not in the library** (twelfth session):
  AdamW with decoupled weight decay ``w`` in place of Adam. Not kept.
* ``{"sgd": m, "learning_rate": r, ...}``: an **experiment not in the library** (twelfth
  session): SGD with momentum ``m`` at rate ``r`` in place of Adam.
* ``{"anchor": "aim", "share": s, "public": r, ...}``: an **experiment not in the library**
  (eighteenth session, declared before any run): ``aim`` is fitted at ``(s * epsilon,
  delta / 2)`` and as many rows as the training set are drawn from it (post-processing).
  dpar then trains with DP-SGD at ``((1 - s) * epsilon, delta / 2)`` (basic composition)
  on the real rows, and **every step also carries** ``round(r * B)`` of the drawn rows
  (``B`` the expected private batch; drawn without replacement from the pool at each step,
  by a seeded generator: the rows are public once aim is released). They are clipped like
  the private rows and share the step's noise, so the accounting of the private rows is
  unchanged (the noise is calibrated to one private row's clipped gradient; the drawn rows
  are the same in neighbouring datasets given aim's output: adaptive composition).
  ``"warm": true`` also starts from the weights trained without noise on the drawn rows
  (the twelfth session's warm start). Why it might help: the twelfth session's warm start
  landed between dpar and aim on the wide tuning table (3-way TVD on 39 columns 0.109
  against aim's 0.106, TSTR 0.682 against 0.687) because the noisy fine-tune drifts from
  the warm weights; rows from aim in every step keep pulling the model back to what aim
  measured while the private rows add what it did not. Rule, fixed now: run on
  ``randhie-wide`` at epsilon 4, seed 0, with ``s`` in {0.5, 0.3} and ``r`` = 1, and with
  ``"warm"`` at ``s`` = 0.5; a setting goes on (seed 1, then the wide evaluation tables)
  only if it beats aim at epsilon 4 on both the 39-column 3-way TVD (0.106) and TSTR
  (0.687) on seed 0. Not kept: 0.107-0.131 and 0.590-0.678 (``docs/benchmarks.md``).

* ``{"project": k, "basis": "self" | "oracle", "every": r, "probes": m, ...}``: an
  **experiment not in the library** (nineteenth session, declared with its rule before any
  run): DP-SGD in a low-dimensional gradient subspace, after Zhou, Wu and Banerjee ("Bypassing
  the ambient dimension: private SGD with gradient subspace identification", ICLR 2021) and Yu
  et al. ("Do not let privacy overbill utility: gradient embedding perturbation", ICLR 2021).
  Every ``r`` steps an orthonormal basis ``P`` (d x k) is taken as the top ``k`` right singular
  vectors of the per-row gradients of ``m`` probe rows. Each private row's gradient is
  projected, ``P^T g``, clipped to ``C`` in the ``k`` dimensions, summed, the noise
  ``N(0, sigma^2 C^2 I_k)`` added, and the step's gradient is ``P (sum + noise) / B``. The
  projection has operator norm 1 and depends only on released weights, so a row's
  contribution still has norm at most ``C`` and the plan's noise multiplier, rate and steps
  (hence the PLD accounting) are unchanged; the noise now has norm ``sigma C sqrt(k)`` in
  place of ``sigma C sqrt(d)`` (``d`` about 20,000-100,000 here). Probe rows:
  ``"self"`` draws them from the current model (post-processing: free; the per-row gradient
  covariance under the model is its Fisher information, whose top eigenvectors are where
  the gradient of the data's likelihood concentrates, Gur-Ari et al. 2018);
  ``"oracle"`` takes them from the **private training rows without any privacy**: a
  diagnostic of how much a perfect subspace could give, never a candidate. Why it might
  help: the clipped signal of a row is at most ``C`` while the noise grows with the square
  root of the parameter count, and every lever so far (narrower models, fewer bins,
  bias-corrected Adam) left that ratio alone. Rule, fixed now: run ``"self"`` and
  ``"oracle"`` with ``k`` in {64, 256}, ``r`` = 10, ``m`` = 512 on HMDA at epsilon 1 (3 seeds);
  ``"self"`` goes on to Fertility at epsilon 1 (2 seeds) and randhie-wide at epsilon 4 (seed
  0) only if one ``k`` lowers HMDA's mean 3-way TVD below the defaults' 0.130; it goes on
  to the evaluation tables only if the same ``k`` also lowers the 3-way TVD on Fertility
  (0.042) and randhie-wide (39 columns, 0.117) and does not lose more than 0.01 of TSTR on
  either (0.593, 0.641). If ``"oracle"`` does not lower HMDA's TVD either, the subspace
  idea is dropped.
  *First runs:* on HMDA the oracle gave 0.100 / 0.094 (k = 64 / 256) and ``"self"`` 0.228 /
  0.122, so ``"self"`` at 256 went on; on Fertility it gave 0.050 (TSTR 0.569), worse than
  the defaults, so it stops there. The oracle says the subspace is worth having if it can
  be found privately. **Amendment, declared before its runs:** ``"basis": "aim"`` with
  ``"share": s`` takes the probe rows from ``aim`` fitted at ``(s * epsilon, delta / 2)``
  (rows drawn once, as many as the training set; post-processing of its release), and
  DP-SGD runs at ``((1 - s) * epsilon, delta / 2)`` (basic composition): gradient embedding
  perturbation with a DP release standing in for public data. Run with ``k`` = 256 and
  ``s`` in {0.1, 0.2} on HMDA at epsilon 1 (3 seeds), with ``"self"`` at ``k`` = 1024 beside
  them for the trend in ``k``. The same gates as above, except that HMDA's mean 3-way TVD
  must fall by at least 0.01 below the defaults (to 0.120 or less).
  *Amendment runs:* probes from aim at ``s`` = 0.1 / 0.2 gave 0.130 / 0.136, ``"self"`` at
  256 on randhie-wide 0.278 (39 columns 0.261). **A second diagnostic, declared before its
  run:** ``"basis": "heldout"`` probes with the table's real 20 % test rows (real rows of
  the same population, none of them in training; no privacy, never a candidate). If it
  gives HMDA the oracle's gain, the subspace needs rows from the data's distribution and
  aim's rows were too poor; if not, the oracle's gain came from probing the very rows
  being trained on, which no private subspace can copy, and the idea is dropped.
  *Diagnostic runs:* held-out probes gave HMDA 0.102 / 0.092 (k = 64 / 256), the oracle's
  gain: rows of the data's distribution are what the subspace needs. ``"self"`` at
  ``"project": 1024`` gave 0.112 on HMDA (``k`` is capped at the 512 probes, so this is the
  whole span of the probes' gradients; the trend in ``k`` is 0.228 / 0.122 / 0.112 at 64 /
  256 / 512). **Amendment 3, declared before its runs:** the noise's share of a step is
  ``sigma sqrt(d) / B`` against a clipped mean of norm at most 1, fixed before training from
  the public row count: 2.5-7 on the small tables at epsilon 1, 0.6-0.9 on the wide ones at
  epsilon 4. So the projection may be gated on it. ``"self"`` at ``"project": 1024`` and
  the defaults run side by side on the small tuning tables Affairs and HousePrices at
  epsilon 1, 8 seeds. If the projection lowers the mean 3-way TVD on HMDA, Affairs and
  HousePrices, a threshold on ``sigma sqrt(d) / B`` is set between the tuning tables where
  it helps and those where it does not (Fertility, randhie-wide), and the gated rule runs on
  the small evaluation tables (wage, CreditCard, SwissLabor; epsilon 1 and 4, 3 seeds)
  against the tenth session's figures, reported whatever they show.
  *Amendment 3's runs (8 seeds):* Affairs 0.376 against the defaults' 0.413 (aim 0.343),
  HousePrices 0.311 against 0.320 (aim 0.250); Fertility at ``k`` = 512 level on 3-way TVD
  (0.043 against 0.042) and 0.021 lower on TSTR. So the projection helps at noise shares
  2.96 (HMDA at epsilon 1), 9.99 (Affairs) and 10.9 (HousePrices), and not at 0.57
  (Fertility) or 0.90 (randhie-wide). **The threshold is 1.6**, near the geometric middle
  of 0.90 and 2.96. The rule was built into ``DPARSynthesizer`` as ``subspace="auto"``
  (512 probes, a basis every 10 steps, a QR of the probes' gradients; commits ``11ea494`` and
  ``a571df1``, with tests), where ``{"subspace": 512}`` gave HMDA 0.108 / TSTR 0.526 (the
  experiment 0.112 / 0.469, defaults 0.130 / 0.510). *On the small evaluation tables* (3
  seeds, ``benchmarks/results/table_models_subspace.json``) it was mixed and never closed a
  gap: TSTR better on CreditCard (0.933 against 0.880 at epsilon 1; aim 0.994), worse on
  wage (0.554 against 0.573) and SwissLabor (0.467 against 0.536), more rule breaks on wage.
  **Not kept:** the option was taken out of the library again (``docs/benchmarks.md``).
  The ``"project"`` lines reproduce only to about ±0.005: ``torch.svd_lowrank`` draws its
  random test matrix from torch's global generator, whose state depends on what ran before
  in the process (``"self"`` at 256 on HMDA gave 0.1218 after the 64 line, 0.1176 alone).
  *Twentieth session:* the generator was not seeded at all, and one seed of ``"self"`` at 64
  on HMDA gave 3-way TVDs from 0.18 to 0.30 in five runs of the same code; so the recorded
  ``"project"`` lines are single draws of a noisy experiment. :func:`score` now seeds torch's
  global generator with the seed before each fit; with it, the code before and after the
  twentieth session's refactor of this experiment give the same line to the last digit
  (0.326 on seed 0). The library's own paths never read that generator (the defaults' lines
  reproduce across sessions).

* ``{"prior": "aim", "share": s, "project": k, ...}``: **the warm start with a projected
  fine-tune** (nineteenth session, declared with its rule before any run): the twelfth
  session's warm start (weights trained without noise on rows drawn from aim at
  ``(s * epsilon, delta / 2)``), then the DP-SGD fine-tune at ``((1 - s) * epsilon, delta / 2)``
  in the span of the warm model's own samples (``"basis": "self"``, as above). Why it might
  help: the subspace experiment failed on TSTR because the model's own samples only span
  what it has already learned; after the warm start the model has learned aim's dependencies,
  so its samples span them, and the fine-tune's noise, which washed the warm weights out
  (twelfth session), is confined to ``k`` dimensions. Rule, fixed now: ``s`` = 0.5, fine-tune
  at 1e-3, ``k`` = 512, on randhie-wide at epsilon 4 (seed 0) and HMDA at epsilon 1 (3
  seeds); it goes on (randhie-wide seed 1, then adult-wide and loans-wide at epsilon 4) only
  if it beats aim on randhie-wide on both the 39-column 3-way TVD (0.106) and TSTR (0.687).
  *Runs:* randhie-wide 0.112 (39 columns) and TSTR 0.654, against the warm start alone's
  0.109 / 0.682 and aim's 0.106 / 0.687, for 1,635 CPU-s; HMDA 0.116 / 0.512 (the warm
  start alone 0.119 / 0.472, aim 0.096 / 0.669). The rule fails. Not kept.

* ``{"pairwise": m, ...}``: an **experiment not in the library** (nineteenth session,
  declared with its rule before any run): every column ``j`` gets, besides its head on the
  transformer's state, a direct term ``m * sum_{i<j} U_j[x_i]`` added to its logits: one
  ``nn.Embedding`` per column, over the tokens of the earlier columns, with a row of
  ``V_j`` logits per earlier token, started at zero (so the first step is the plain model's).
  That is the linear autoregressive model of the fully visible sigmoid belief network
  (Neal 1992; Frey 1998), with every 2-way interaction between a column and an earlier one,
  as a skip path beside the transformer. Why it might help: at initialisation the last
  column's state reads an earlier token only through near-uniform attention, a layer norm
  and embeddings of scale 0.02, so the gradient of a pairwise dependency (CreditCard's ``card``
  and ``spends``, first and last) is diluted among the columns; the direct term's gradient
  for ``U_j[a]`` is ``e_{x_j} - p_j`` summed over the rows holding ``a``, the statistic a 2-way
  marginal counts. It adds ``V_j`` times the earlier columns' tokens of parameters per
  column; ``m`` scales the path (with Adam, the same as scaling its learning rate). The
  tables are book-keeping-clippable (embeddings used once per forward, batch first), so
  DP-SGD and the accounting are dpar's own. Rule, fixed now: ``m`` in {1, 0.3} on HMDA at
  epsilon 1 (3 seeds), Affairs and HousePrices at epsilon 1 (8 seeds), Fertility at epsilon 1
  (2 seeds) and randhie-wide at epsilon 4 (seed 0), beside the defaults. An ``m`` goes on to
  the evaluation tables only if it lowers the mean 3-way TVD on HMDA, Affairs and
  HousePrices, raises their pooled mean TSTR (19 fits) by at least 0.02, and costs
  Fertility and randhie-wide (39 columns) at most 0.005 of 3-way TVD and 0.01 of TSTR.
  *Runs:* the first ones (HMDA 0.205 / 0.134, Affairs 0.448 / 0.432, HousePrices 0.345 /
  0.312 at ``m`` = 1 / 0.3) sampled **without** the pairwise term: the draw was patched only
  inside the fit's context, which had closed by the time the rows were drawn. The review
  found it; the term now lives in the model's ``column_logits``, which sampling calls. The
  rerun (the last six ``pairwise`` lines of the results file): 3-way TVD at ``m`` = 1 / 0.3
  against the defaults: HMDA 0.126 / 0.124 (0.130), Affairs 0.433 / 0.432 (0.413),
  HousePrices 0.312 / 0.310 (0.320); pooled TSTR 0.539 / 0.515 against 0.531. Affairs is
  worse and TSTR gains under 0.02, so the first gate still fails; Fertility and
  randhie-wide were not run. Not kept.

* ``{"group_clip": a, ...}``: an **experiment not in the library** (twentieth session,
  declared with its rule before any run): group-wise clipping (McMahan et al., "Learning
  differentially private recurrent language models", ICLR 2018, per-layer clipping; He et al.,
  "Exploring the limits of differentially private deep learning with group-wise clipping",
  ICLR 2023). The parameters are split into one group per column (its head, and the rows of
  the token embedding that encode its values) and one trunk group (the start token,
  positions, blocks and final norm). Each private row's gradient is clipped **group by
  group**, group ``g`` to ``C_g = C w_g / sqrt(sum w^2)`` with ``w_g = d_g ** a`` (``d_g`` the
  group's parameter count, public), summed, and ``N(0, sigma^2 C^2 I)`` added as usual. A row's
  clipped gradient has norm at most ``sqrt(sum C_g^2) = C``, so the plan's noise multiplier,
  rate and steps, and the PLD accounting, are unchanged. Per-row gradients come from
  ``torch.func`` (as the ``"project"`` experiment). Why it might help: with one clip over
  the whole gradient, a row's unit of signal is shared in proportion to each part's gradient
  norm, so the 64-bin columns' heads and the trunk take most of it and a binary column (the
  TSTR target, the rules' flags) gets a few per cent, against noise of the same size in every
  coordinate; its head's signal-to-noise is what the targets measure. Group clipping gives
  every column a fixed share whatever the row's other columns do. ``a`` = 0 gives every
  group the same share (small groups gain most); ``a`` = 0.5 gives shares in proportion to
  the noise each group receives (the same signal-to-noise per coordinate at the clip). The
  eighth session's ``col_weight`` moved weight between columns' losses, a fixed reweighting
  of the same single clip (which also changes the trunk's gradient); this instead changes
  the clip. Rule, fixed now: ``a`` in {0, 0.5} on HMDA at epsilon 1 (3 seeds), Affairs and
  HousePrices at epsilon 1 (8 seeds), beside the defaults (the pairwise lever's first gate):
  an ``a`` goes on only if it lowers the mean 3-way TVD on all three and raises their pooled
  mean TSTR (19 fits) by at least 0.02; then Fertility at epsilon 1 (2 seeds) and
  randhie-wide at epsilon 4 (seed 0) may cost at most 0.005 of 3-way TVD (39 columns on
  randhie-wide) and 0.01 of TSTR; then the small evaluation tables (wage, CreditCard,
  SwissLabor at epsilon 1 and 4, 3 seeds) against the tenth session's figures, reported
  whatever they show. ``"group_clip": "one"`` is the control: the whole gradient as one group
  through the same loop (per-row gradients from ``torch.func``), which should give the
  defaults' figures (declared after the first runs, before its own).
  *Runs:* the control reproduces the defaults to the fourth digit (HMDA 0.1297 / 0.5098,
  Affairs 0.4132 / 0.5197). 3-way TVD at ``a`` = 0 / 0.5 against the defaults: HMDA 0.253 /
  0.162 (0.130), Affairs 0.438 / 0.394 (0.413), HousePrices 0.397 / 0.321 (0.320); pooled
  TSTR 0.545 / 0.556 (0.531). TSTR rises, but the TVD is worse on HMDA at both and the
  first gate fails. Not kept. ``dpar_gradient_shares.py`` shows why: the plain clip already
  gives each column's group about the same share of a row's squared gradient (2-8 %, flags
  included) and the trunk about 55 %; equal clips (``a`` = 0) cut the trunk to 7 %, and clips
  by size (``a`` = 0.5) cut the flags from about 2 % to 0.5 %.

* ``{"epochs": e}`` at epsilon 1 on the small tuning tables (twentieth session, declared
  with its rule before any run): ``DP_EPOCHS`` (20) was chosen on HMDA and Fertility against
  40 (third session) and never against fewer passes. Fewer steps at the same epsilon need less
  noise per step (the noise share ``sigma sqrt(d) / B`` falls), which may suit the tables
  where that share is largest. Rule, fixed now: ``e`` in {5, 10} beside the defaults on HMDA
  (3 seeds), Affairs and HousePrices (8 seeds) at epsilon 1, with the group-wise clipping
  lever's first gate (lower 3-way TVD on all three, pooled TSTR +0.02); a value that passes
  would next need a rule by noise share, set on Fertility and randhie-wide, before any
  evaluation table. *Runs:* 5 and 10 passes are worse on 3-way TVD on HMDA (0.178, 0.143)
  and Affairs (0.488, 0.443). **Amendment, declared before its runs:** the other way, ``e``
  in {40, 80} (HMDA at 40 gave 0.120 / 0.536 in the third session, against 0.130 / 0.510,
  and was left at 20 for Fertility's TSTR and the CPU), under the same gate; what passes
  would become a floor on DP steps for small tables (like ``PLAIN_MIN_STEPS``), set on
  Fertility and randhie-wide, where 20 passes are already many steps.
  *Amendment runs:* 40 / 80 passes give 3-way TVD HMDA 0.118 / 0.119, Affairs 0.4135 /
  0.410 (defaults 0.4132), HousePrices 0.304 / 0.310, pooled TSTR 0.547 / 0.543 against
  0.531. 80 passes lower the TVD on all three, but TSTR gains 0.012, short of 0.02; 40
  passes are level on Affairs. The gate fails. Not kept.

* ``{"order": "ascending", ...}``: an **experiment not in the library** (twentieth session,
  declared with its rule before any run): the columns are modelled in the order of their
  vocabulary size, smallest first (ties in schema order; the sizes come from the public
  schema and ``n_bins``), so flags and short categoricals come first and every wide numeric
  column is conditioned on them. The sixth session tried the opposite order (largest first:
  flags conditioned on everything), which helped HMDA and lost on Fertility and randhie-wide.
  Why this one might help: a binary target placed early is read by every later column's
  head, so its dependencies are learned as many direct terms ``p(x_j | target, ...)``, each
  one attention hop from a fixed early position, rather than as one head that must combine
  all columns; the rules' flags (CreditCard's ``card`` and ``spends``) become neighbours.
  Rule, fixed now: the group-wise clipping lever's gates (HMDA, Affairs and HousePrices at
  epsilon 1 first: lower 3-way TVD on all three and pooled TSTR +0.02; then Fertility at
  epsilon 1 and randhie-wide at epsilon 4 may lose at most 0.005 of 3-way TVD and 0.01 of
  TSTR; then the small evaluation tables, 3 seeds, reported whatever they show).
  *Runs:* 3-way TVD HMDA 0.126 (defaults 0.130), Affairs 0.431 (0.413), HousePrices 0.312
  (0.320); pooled TSTR 0.520 against 0.531. Worse on Affairs and on TSTR: the first gate
  fails. Not kept.

* ``{"order": "target_first", ...}``: an **experiment not in the library** (twenty-first
  session, declared with its rule before any run): the TSTR target is modelled first and
  every other column after it, in schema order. On the tuning tables the target is last or
  next to last, so dpar learns ``p(target | everything)`` through one head; with the target
  first every column's head reads it, as in a generative classifier, which needs fewer rows
  to reach its (higher) asymptotic error than the discriminative one (Ng and Jordan, NIPS
  2001), the regime of the small tables at epsilon 1. The ascending order put the target
  among other flags, not first, so it did not test this. It would also make sampling
  conditional on the target exact (a fixed prefix). Rule, fixed now: HMDA (3 seeds),
  Affairs and HousePrices (8 seeds) at epsilon 1; it goes on to the small evaluation tables
  (wage, CreditCard, SwissLabor at epsilon 1 and 4, 3 seeds, reported whatever they show)
  only if the pooled TSTR over the 19 fits is at least 0.02 above the defaults' 0.531 and
  no table's 3-way TVD is worse by more than 0.005 (a TSTR lever: the TVD may not fall).
  *Runs:* HMDA 3-way TVD 0.134 (defaults 0.130), TSTR **0.608** (0.510; aim 0.669);
  Affairs 0.426 (0.413), TSTR 0.517 (0.520); HousePrices 0.305 (0.320), TSTR 0.557 (0.550).
  Pooled TSTR 0.548 against 0.531: +0.017, short of 0.02, and Affairs' TVD is 0.013 worse.
  **The rule fails.** **Amendment, declared before its runs** (a relaxed rule, set after
  seeing the results above, and named as such): HMDA's gain is large and Affairs' and
  HousePrices' TSTR (120 test rows each) swing by 0.3 between seeds. So the order also
  runs on the two larger tuning tables, Fertility at epsilon 1 and randhie-wide at epsilon
  4 (seeds 0 and 1, against this session's defaults: 0.042 / 0.593 and 39 columns 0.1185 /
  0.629). It goes to the small evaluation tables, as a measurement reported whatever it
  shows (wage, CreditCard and SwissLabor at epsilon 1 and 4, 3 seeds, against the
  defaults in the same invocation), only if on both it loses at most 0.005 of 3-way TVD and
  0.01 of TSTR. It could enter the library only as an option a user sets (the target is
  the user's to name, and the defaults stay schema order).
  *Amendment runs:* Fertility's target is already its first column, and the lines equal
  the defaults' to the last digit; randhie-wide 39 columns 0.120 (0.1185), TSTR 0.572
  (0.629). **The amendment fails.** Not kept, and the evaluation tables were not run.

* ``{"order": "random:K"}`` (twenty-first session): a **measurement, not a lever**: the
  columns in a permutation drawn with seed ``K``. Target-first moved randhie-wide's target
  from the fourth column to the first and its TSTR by 0.057, so the order alone may move
  the scores as much as a seed does; this says how much, to read the order levers against.
  Run: ``K`` = 0..9 on HMDA at epsilon 1 (3 seeds each) and ``K`` = 0..3 on randhie-wide at
  epsilon 4 (seed 0); nothing is chosen on it.
  *Runs:* HMDA's mean TSTR over 3 seeds ranges from 0.502 to 0.643 over the ten orders
  (mean 0.573; schema order 0.510, target first 0.608), with no trend in the target's
  position; the 3-way TVD from 0.124 to 0.135 (schema order 0.130). randhie-wide (seed 0):
  TSTR 0.583 to 0.660 over four orders, 39-column 3-way TVD 0.116 to 0.122.

* ``{"any_order": true, ...}``: an **experiment not in the library** (twenty-first session,
  declared with its rule before any run; ``dpar_experiments.any_order``): one dpar trained
  on every column order at once, each training row read in a random order of its own (drawn
  independently of the data: the accounting is dpar's), and each synthetic row drawn in a
  random order too, so the output is a mixture over orders (order-agnostic NADE, Uria et
  al. 2014; ARDMs, Hoogeboom et al. 2022). Why it might help: the measurement above says
  the column order alone moves HMDA's TSTR over 0.14, more than the issue's gaps, and that
  schema order is among the worst; a mixture over orders does not bet on one, and a
  mixture of noisy models can beat its members. What it may cost: the same parameters
  must carry every factorisation, so at a fixed budget each is learned less well. Rule,
  fixed now: the target-first lever's first gate (HMDA 3 seeds, Affairs and HousePrices 8
  seeds, epsilon 1: pooled TSTR at least 0.02 above the defaults' 0.531, no table's 3-way
  TVD worse by more than 0.005); then Fertility at epsilon 1 and randhie-wide at epsilon 4
  (2 seeds each) may lose at most 0.005 of 3-way TVD (39 columns on randhie-wide) and 0.01
  of TSTR; then the evaluation tables, as a measurement reported whatever it shows (wage,
  CreditCard and SwissLabor at epsilon 1 and 4, 3 seeds; adult-wide and loans-wide at
  epsilon 4, seed 0; against the defaults in the same invocation). It would enter the
  library only if it closes part of a gap there without opening another.
  *Runs:* HMDA 3-way TVD 0.126 (defaults 0.130), TSTR **0.397** (0.510: below chance on
  every seed); Affairs 0.432 (0.413), 0.490 (0.520); HousePrices 0.340 (0.320), 0.489
  (0.550); pooled TSTR 0.475 against 0.531. **The first gate fails** on every count. The
  code is not at fault: without noise (HMDA at epsilon infinity, 2 seeds) the any-order model
  matches the fixed order (3-way TVD 0.057 against 0.056, TSTR 0.751 against 0.798). Under
  DP-SGD the noisy model spreads what it learns over every factorisation, and the mixture
  keeps the 1-way marginals but not the target's dependencies. Not kept.

* ``{"oversample": k, ...}`` (twentieth session): ``k`` times the training rows are drawn
  and scored. Not a lever but a measurement: how much of dpar's TVD is the noise of drawing
  rows one by one (i.i.d.), which a ``k``-times larger sample cuts by ``sqrt(k)``. aim draws
  by rounded ancestral sampling (counts per group rounded from their expectations), dpar by
  plain ancestral sampling; if the gap shrank much at ``k`` = 10, a rounding sampler for
  dpar would be worth building. *Runs* (seed 0): 3-way TVD HMDA at epsilon 1 0.129 → 0.126,
  Fertility at epsilon 1 0.043 → 0.043: the TVD is the model's, not the draw's. But HMDA's
  TSTR rose from 0.487 to 0.623: the classifier trained on 10 times the rows learns the
  model's conditional of the target far better. **Declared before further runs:** the same
  for TSTR, fairly: ``k`` = 10 for dpar and for aim (``{"only": "aim", "oversample": 10}``)
  on HMDA (3 seeds), Affairs and HousePrices (8 seeds) at epsilon 1, beside both at ``k`` =
  1. If dpar's pooled TSTR gains at least 0.02 more than aim's, a second TSTR (every
  generator's release at 10 times the training rows) is added to the benchmark and run on
  the evaluation tables, and reported whatever it shows; the targets stay as the issue
  states them, read on the benchmark's TSTR at the training rows' count.
  *Runs:* pooled TSTR (19 fits) dpar 0.531 → 0.559 (+0.028), aim 0.559 → 0.574 (+0.015);
  HMDA dpar 0.510 → 0.585, aim 0.669 → 0.705. dpar gains 0.013 more than aim, short of
  0.02: the benchmark keeps one TSTR.

* ``{"group_clip": "one", "noise_scale": f}``: a **diagnostic without privacy** (twentieth
  session, declared before its runs): the plan's DP-SGD steps (Poisson batches, the clip,
  the schedule) with the noise multiplied by ``f``. ``f`` = 0 trains with the clip and no
  noise. It splits the gap between dpar under DP and dpar without DP (no clip, no noise)
  into the clip's part and the noise's. Rows' gradients are clipped here (median norms of
  28-59 against 1, ``dpar_gradient_shares.py``), so the update is a mean of per-row directions that
  weighs every row alike, a biased estimate of the gradient (Chen, Wu and Hong, NeurIPS 2020).
  If ``f`` = 0 lands far from the plain fit, the clip's bias is worth attacking (for instance
  by error feedback, Zhang et al., "DiceSGD", ICLR 2024); if it lands near it, the noise is
  the whole gap. Run: ``f`` in {0, 0.5} on HMDA at epsilon 1 (3 seeds), Fertility at epsilon 1
  (seed 0) and randhie-wide at epsilon 4 (seed 0), beside dpar without DP (epsilon inf, same
  seeds) and beside ``f`` = 0 with ``"max_grad_norm": 1e6`` (no row reaches the clip: plain
  minibatch Adam on the plan's Poisson batches and schedule, which separates the schedule's
  part from the clip's).

* ``{"debias": k, ...}``: an **experiment not in the library** (twentieth session, declared
  with its rule before any run): the clip's bias undone at sampling time
  (``dpar_experiments.debiased_rows``). ``k`` times the wanted rows are drawn from the fitted
  model and the wanted number kept by weighted sampling without replacement, with weight
  ``max(1, ||g(x)|| / C)`` (the row's gradient norm at the released weights over the clip).
  Why: the clip diagnostic above found that on Fertility at epsilon 1 the clip alone (no
  noise) gives a 3-way TVD of 0.051 against 0.022 without it, at the same schedule: there the
  clip, not the noise, is the gap. With (nearly) every row clipped, DP-SGD converges where
  ``sum_i g_i / ||g_i|| = 0``: the maximum-likelihood fit of the data reweighted by
  ``1 / ||g_i||``, which under-weights the rows the model fits worst (rare values, unusual
  combinations). Resampling model draws by ``||g(x)||`` undoes that weighting if the model
  fits the reweighted data. It reads only the released model: post-processing, free.
  Rule, fixed now, with ``k`` = 5: first the mechanism, on the clip-without-noise fit of
  Fertility (seed 0): the correction must lower its 3-way TVD (0.051) towards the unclipped
  0.022; if it does not, the idea is dropped. Then as a lever on dpar's defaults: Fertility
  at epsilon 1 (seeds 0 and 1), randhie-wide at epsilon 4 (seed 0) and HMDA at epsilon 1 (3
  seeds); it goes on to the evaluation tables only if it lowers the 3-way TVD on Fertility
  and randhie-wide (39 columns) by at least 0.005 each, does not raise HMDA's, and loses at
  most 0.01 of TSTR on each. On the evaluation tables (every one, the wide ones at epsilon
  4, the narrow at 1 and 4, seed 0) it is reported whatever it shows, and built into the
  library only if it closes part of a gap there without opening another.
  *Runs:* the mechanism holds: on the clip-without-noise fit of Fertility the correction
  takes the 3-way TVD from 0.051 to 0.024 (unclipped 0.022) and the 1-way from 0.020 to
  0.004. On dpar's defaults: Fertility 0.023 against 0.042 (2 seeds; aim at epsilon 1 gave
  0.0235 on this table), TSTR 0.589 against 0.593; randhie-wide 39 columns 0.114 against
  0.117 (short of the 0.005 asked), TSTR 0.633 against 0.641; HMDA 0.131 against 0.130, TSTR
  0.469 against 0.510. **The rule fails** (randhie-wide's drop is 0.003, and HMDA is worse).
  The clip diagnostic, run before these, says why the two differ: at the plan's schedule
  the clip alone costs Fertility 0.030 of 3-way TVD and the noise nothing (0.051 with the
  clip and no noise, 0.043 with both), randhie-wide 0.009 (0.097 → 0.106, all 44 columns)
  with the noise costing 0.027 more, and HMDA 0.004 with the noise costing 0.055. The
  correction can only remove the clip's part.
  **Amendment, declared before its runs** (a relaxed rule, set after seeing the results
  above, and named as such): the correction gated on the noise share ``sigma sqrt(d) / B``
  below 1.6 (the threshold of the nineteenth session, between randhie-wide's 0.90 and HMDA's
  2.96; it leaves the small tables as they are). It goes to the evaluation tables, as a
  measurement reported whatever it shows, if on randhie-wide seed 1 it also lowers the
  39-column 3-way TVD and loses at most 0.01 of TSTR. There it runs as the benchmark's
  ``dpar-debias`` (the same fit as ``dpar``, drawn with the correction when the gate allows):
  CPS1988, Adult and wage at epsilon 1 and 4, adult-wide and loans-wide at epsilon 4, seed 0.
  Nothing goes into the library this session.
  *Amendment run:* randhie-wide seed 1 lowers the 39-column 3-way TVD (0.118 against 0.120)
  but loses 0.047 of TSTR (0.571 against 0.618). **The amendment fails; the evaluation
  tables were not run** (one smoke run of ``dpar-debias`` on wage, made to test the
  harness before the gate's result, is not reported as a result), and ``dpar-debias`` was
  taken out of the benchmark again. Across the tuning fits the correction lowers the TVD
  and costs TSTR (-0.004 on Fertility, -0.041 on HMDA, -0.008 and -0.047 on randhie-wide):
  the rows it favours, those the model fits worst, carry the target less cleanly.

* ``{"rows": n, ...}`` (eighteenth session): the table is first cut to ``n`` rows (seeded by
  the seed), then split 80/20 as usual. Not a lever but a measurement: how many rows dpar
  needs to come within reach of aim at the same epsilon, on a tuning table (Fertility), for
  the README's advice on when to choose which.

Tables with numeric columns of at most 20 distinct training values (``randhie-wide``) also
get ``tvd3_rest``: the 3-way TVD without those columns, whose bin decoding favours finer bins
(``randhie_artifacts.py``).

``max_grad_norm`` is tunable too (tenth session: no effect from 0.1 to 10).

* ``{"max_grad_norm": C}`` **at the gradient's own scale** (twenty-first session, declared
  with its rule before any run). The tenth session tried 0.1 to 10 on HMDA only and saw no
  effect; that is expected, since the median row gradient norm is 28-59 on the tuning tables
  (``dpar_gradient_shares.jsonl``): every row is clipped at all of those values and Adam
  undoes a common scale. Only a clip near the norms changes what DP-SGD fits. Why it might
  help: on Fertility at epsilon 1 the clip is the whole gap (3-way TVD 0.051 clipped without
  noise, 0.022 unclipped, 0.043 with both), and on randhie-wide at epsilon 4 it is a quarter
  of it; a clip above most rows' norms removes the reweighting by ``1 / ||g_i||`` at the
  price of more noise per unit of signal (the noise is ``sigma C``, the signal of a row its
  own norm when below ``C``). Unlike the sampling-time correction it changes training, not
  the draws, and it is paid for by the same accounting (the PLD of the plan does not depend
  on ``C``). Rule, fixed now: ``C`` in {30, 100, 300} against the defaults (``C`` = 1) on
  Fertility at epsilon 1 (seeds 0, 1), randhie-wide at epsilon 4 (seeds 0, 1) and HMDA at
  epsilon 1 (3 seeds). A ``C`` goes on only if it lowers the 3-way TVD on Fertility and on
  randhie-wide (39 columns) by at least 0.005 each and loses at most 0.01 of TSTR on each.
  If it makes HMDA (noise share 2.96) worse, it may go on **gated** on the noise share
  ``sigma sqrt(d) / B`` below 1.6 (the nineteenth session's threshold; declared now, not
  after the runs). Then the evaluation tables as a measurement reported whatever it shows
  (CPS1988 and Adult at epsilon 1 and 4, adult-wide and loans-wide at epsilon 4, seed 0,
  against the defaults in the same invocation); it goes into the library only if it lowers
  the 3-way TVD on most of them without losing more than 0.01 of TSTR on any.
  *Runs* (means; Fertility and randhie-wide 2 seeds, HMDA 3): at ``C`` = 30 / 100 / 300
  against the defaults, Fertility 3-way TVD 0.031 / 0.047 / 0.070 (0.042), TSTR 0.551 /
  0.539 / 0.520 (0.593); randhie-wide 39 columns 0.1185 / 0.136 / 0.194 (0.1185), TSTR
  0.637 / 0.575 / 0.522 (0.629); HMDA 0.137 / 0.294 / 0.516 (0.130). **The rule fails:**
  30 brings Fertility's marginals closer (1-way 0.017 to 0.007) and costs 0.042 of TSTR,
  as the sampling-time correction did; randhie-wide's rows are still clipped at 30. Not kept.

* ``{"opt_in": p, "use": u, ...}``: an **experiment not in the library** (twenty-second
  session, declared with its rule before any run): **declared public rows**
  (``dpar_experiments.public_fit``). A seeded share ``p`` of the training rows is set aside
  as the rows of people who opted in to publication (the opt-in model of Avent et al.,
  "BLENDER: enabling local search with a hybrid differential privacy model", USENIX
  Security 2017). The private rows are the rest. Every configuration with this key, aim
  included, is fitted on the private rows alone at the whole ``(epsilon, delta)`` and scored
  against them (TVD) and the real 20 % (TSTR). ``u`` says what dpar does with the public
  rows, ``+``-joined:

  - ``only``: a plain fit on them alone, the private rows untouched (what the public rows
    give without any private data; the no-private ablation);
  - ``warm``: DP-SGD starts from weights trained on them without noise (automatic plain
    schedule);
  - ``anchor``: ``"ratio"`` (default 1) times the expected batch of them in every DP-SGD
    step, clipped like the private rows and sharing the noise (the eighteenth session's
    anchor, with real public rows in place of aim's);
  - ``project``: DP-SGD in the span of their gradients (the nineteenth session's held-out
    diagnostic, made legitimate by declaring the rows public).

  Why it might help: twenty-one sessions of levers on the private rows alone point at the
  noise (noise share 3-11 on the small tables) and at the need for a prior from outside the
  private rows. The nineteenth session's held-out probes gave HMDA a 3-way TVD of
  0.092-0.102 against the defaults' 0.130 and aim's 0.096. DP fine-tuning after public
  pre-training is how DP deep models close their gaps elsewhere (Yu et al., "Differentially
  private fine-tuning of language models", ICLR 2022). This is a **different scenario**
  from issue 16's: its targets compare dpar with aim on the private rows alone, and aim
  cannot use public rows as it stands, so nothing measured here counts toward them.
  Rule, fixed now: ``p`` = 0.1; beside ``{"opt_in": 0.1}`` (dpar on the private rows alone)
  and ``{"opt_in": 0.1, "only": "aim"}``, ``u`` in {only, warm, warm at learning rate 3e-3,
  warm+anchor, warm+project at 512}, on HMDA at epsilon 1 (3 seeds), Affairs and HousePrices
  at epsilon 1 (8 seeds) and randhie-wide at epsilon 4 (seed 0). A use goes on only if it
  beats dpar on the private rows alone by at least 0.02 of pooled TSTR (HMDA, Affairs,
  HousePrices: 19 fits) and on 3-way TVD on HMDA and randhie-wide (39 columns), **and**
  beats ``only`` on 3-way TVD on both (else the private rows add nothing to the public
  ones). Then the evaluation tables, as a measurement reported whatever it shows, against
  aim and dpar on the same private rows: adult-wide and loans-wide at epsilon 4 (seed 0);
  wage, CreditCard and SwissLabor at epsilon 1 and 4 (3 seeds). It would go into the
  library (``fit(..., public=rows)``, with the public rows' digest in the ledger and the
  card) only if there it beats aim on both 3-way TVD and TSTR on the wide tables at epsilon
  4, or brings the small tables' TSTR at epsilon 1 within 0.05 of aim's.
  *Runs* (3-way TVD / TSTR; randhie-wide's TVD on its 39 columns; all against the private
  rows): dpar on the private rows alone HMDA 0.138 / 0.482, Affairs 0.432 / 0.539,
  HousePrices 0.334 / 0.482, randhie-wide 0.121 / 0.640, pooled TSTR 0.506; aim 0.105 /
  0.679, 0.368 / 0.556, 0.273 / 0.525, 0.109 / 0.692; ``only`` 0.110 / 0.741, 0.401 / 0.566,
  0.256 / 0.660, 0.119 / 0.626 (pooled 0.633: the public rows alone, without any private
  row, score the highest TSTR on the small tables); ``warm`` 0.101 / 0.550, 0.370 / 0.530,
  0.280 / 0.567, 0.112 / 0.633 (pooled 0.549); ``warm`` at 3e-3 0.145 / 0.667, 0.391 /
  0.564, 0.263 / 0.665, 0.104 / 0.634 (pooled 0.623); ``warm+anchor`` 0.0985 / 0.635, 0.335
  / 0.523, 0.252 / 0.585, 0.1035 / 0.668 (pooled 0.567); ``warm+project`` 0.100 / 0.470,
  0.349 / 0.505, 0.242 / 0.527 (pooled 0.509; its randhie-wide run was stopped once the
  pooled gate had failed). **``warm`` and ``warm+anchor`` pass the gate**; ``warm`` at 3e-3
  fails on HMDA's TVD and ``warm+project`` on TSTR. ``warm+anchor`` is ahead of ``warm`` on
  every tuning table on both measures, so it is the one carried into the library
  (``DPARSynthesizer.fit(..., public=...)``, the public rows per step fixed at the expected
  private batch as declared, ``PUBLIC_BATCH_RATIO``); both ran on the evaluation tables
  (``docs/benchmarks.md``), where the library's version then ran on 8 seeds. One change
  from the declaration: the public rows' count and fingerprint are kept in the model's
  manifest (``fit_notes``) and on the release card (``source.public_rows``, with
  ``release(..., public=...)`` / ``dpsynth release --public``), not in the ledger, which
  records spends (the public rows cost none).

* ``{"anchor": "aim", "share": s, "public": 1.0, "warm": true}`` **on the small tables at
  epsilon 1** (twenty-second session, declared with its rule before any run). The eighteenth
  session's anchor (a warm start on rows drawn from aim at ``s * epsilon``, and as many of
  them as the expected batch in every DP-SGD step at ``(1 - s) * epsilon``) ran only on the
  wide tuning table, where it landed near aim (0.107-0.131 against 0.106). The opt-in
  experiment above found the same recipe with real public rows strongest on the small
  tuning tables (HMDA 0.0985 / 0.635), and the public rows alone strongest on TSTR: a
  fixed, good prior held in every step keeps DP-SGD's noise from washing out what it knows.
  Rows drawn from aim are such a prior, paid for from the budget. Why it might meet the
  small tables' target (TSTR within 0.05 of aim at epsilon 1) where it cannot beat aim: the
  model is pulled towards aim at ``s * epsilon``, and aim's TSTR loses little between
  ``epsilon / 2`` and ``epsilon``. Rule, fixed now: ``s`` in {0.3, 0.5} at dpar's default
  rate, beside the defaults and aim, on HMDA (3 seeds), Affairs and HousePrices (8 seeds) at
  epsilon 1. A share goes on only if its pooled TSTR (19 fits) is at least 0.02 above the
  defaults' and within 0.05 of aim's, and no table's 3-way TVD is worse than the defaults' by
  more than 0.005; then Fertility at epsilon 1 (2 seeds) and randhie-wide at epsilon 4 (seed
  0) may lose at most 0.005 of 3-way TVD (39 columns) and 0.01 of TSTR against the defaults;
  then the small evaluation tables (wage, CreditCard, SwissLabor, epsilon 1 and 4, 8 seeds,
  beside dpar and aim in the same invocation), reported whatever they show. It would go
  into the library only if it meets the small tables' TSTR targets there without raising
  the rules broken.
  *Runs* (3-way TVD / TSTR at ``s`` = 0.3 / 0.5, against the defaults and aim): HMDA 0.123 /
  0.454 and 0.118 / 0.459 (defaults 0.130 / 0.510, aim 0.096 / 0.669); Affairs 0.475 / 0.512
  and 0.462 / 0.554 (0.413 / 0.520, aim 0.343 / 0.536); HousePrices 0.359 / 0.472 and 0.348 /
  0.568 (0.320 / 0.550, aim 0.250 / 0.540). Pooled TSTR 0.486 and 0.545 against the
  defaults' 0.531, and the TVD is worse by 0.03-0.06 on Affairs and HousePrices. **The rule
  fails at both shares.** Not kept. Rows from aim at half the budget on 440-1,900 rows are
  a poor prior, unlike real public rows: the budget they take costs DP-SGD more than they
  give.

* ``{"mixture": K, ...}``: an **experiment not in the library** (twenty-third session,
  declared with its rule before any private run; ``dpar_experiments.mixture``): the
  transformer replaced by a mixture of ``K`` products (a latent class model, as in the
  DPMPM synthesisers of Si and Reiter, JEBS 2013) over dpar's tokens, trained by the same
  DP-SGD (the plan, clip, Poisson batches and schedule are dpar's; only the network
  differs). Why it might help: twenty-two sessions of levers left the small tables
  noise-bound. The transformer has 27,418 weights on HMDA and row gradients of norm 28-59
  clipped to 1; the mixture has ``(K + 1) * (sum of vocabularies + 1)`` logits (4,811 on
  HMDA at ``K`` = 16; both figures corrected after the runs, the rule unchanged), each a
  direct log-probability, so the same clipped signal lands on far fewer
  coordinates. Latent classes also carry dependencies every column shares, such as the
  rules the benchmark checks. What it may cost: a mixture of products needs many classes
  for a sharp conditional of the target, so TSTR may trail the transformer where there is
  little noise. *Mechanism check, without privacy* (HMDA at epsilon infinity, seed 0, run
  before this declaration): at dpar's plain rate 1e-2 the logits barely leave their start
  (3-way TVD 0.18 at ``K`` = 16 and 64); at rate 0.1 ``K`` = 16 reaches the transformer's
  3-way TVD (0.057 against 0.056) with TSTR 0.673 (0.685 at 100 epochs) against 0.723.
  So the runs use rates 10 times dpar's. Configurations, fixed now: ``K`` in {16, 64} and
  ``learning_rate`` in {0.1, 0.3} (four), everything else dpar's defaults. Rule, fixed
  now: the first gate of the target-first lever (HMDA 3 seeds, Affairs and HousePrices 8
  seeds, epsilon 1: pooled TSTR at least 0.551, the defaults' 0.531 plus 0.02, and no
  table's 3-way TVD worse than the defaults' by more than 0.005); of the configurations
  that pass, the one with the highest pooled TSTR goes on; Fertility at epsilon 1 and
  randhie-wide at epsilon 4 (2 seeds each) may then lose at most 0.005 of 3-way TVD (39
  columns on randhie-wide) and 0.01 of TSTR against the defaults; then the evaluation
  tables as a measurement reported whatever it shows (wage, CreditCard and SwissLabor at
  epsilon 1 and 4, 8 seeds; adult-wide and loans-wide at epsilon 4, seed 0; beside dpar and
  aim in the same invocations), rules broken included. It would go into the library (as a
  choice of network in dpar) only if it closes part of a gap there without opening another.
  *Runs* (3-way TVD / TSTR at epsilon 1; the defaults' 0.130 / 0.510, 0.413 / 0.520 and
  0.320 / 0.550; aim's 0.096 / 0.669, 0.343 / 0.536 and 0.250 / 0.540):

  ============  ===============  ===============  ===============  ===========
  K, rate       HMDA (3 seeds)   Affairs (8)      HousePrices (8)  pooled TSTR
  ============  ===============  ===============  ===============  ===========
  16, 0.1       0.138 / 0.537    0.407 / 0.540    0.294 / 0.526    0.534
  16, 0.3       0.102 / 0.524    0.366 / 0.515    0.265 / 0.521    0.519
  64, 0.1       0.158 / 0.554    0.420 / 0.528    0.293 / 0.435    0.493
  64, 0.3       0.110 / 0.627    0.371 / 0.497    0.269 / 0.522    0.528
  ============  ===============  ===============  ===============  ===========

  **The first gate fails for all four**: no pooled TSTR reaches 0.551. At rate 0.3 the
  3-way TVD falls on every table, by 0.02-0.055, most of the way to aim's (HMDA 0.102
  against the defaults' 0.130 and aim's 0.096). The same two rate-0.3 fits on HMDA with
  the network written as an embedding (``dpar_experiments.mixture``) and therefore other
  noise draws gave 3-way
  TVD 0.106 / 0.112 and TSTR 0.558 / 0.520: on three seeds HMDA's TSTR moves by 0.03-0.1
  with the noise draw alone.
  *Amendment for the wide tables, declared after the first gate's runs and before any run
  on a wide table.* The first gate reads the small tables' TSTR. The TVD gains bear on the
  issue's other target, 3-way TVD and TSTR better than aim on a wide table at epsilon 4,
  which it does not test. Runs, fixed now: randhie-wide at epsilon 4 (2 seeds), ``K`` in
  {16, 64} at rate 0.3. The rule: the 3-way TVD on 39 columns at least 0.005 below the
  defaults' 0.1185 and TSTR at most 0.01 below their 0.629. If both pass, the lower 3-way
  TVD goes on. It is then measured on adult-wide and loans-wide at epsilon 4 (seed 0, beside
  dpar and aim in the same invocation; generators ``dpar-mixture16`` / ``dpar-mixture64`` of
  :mod:`bench_table_models`) and reported whatever it shows. It goes into the library as a
  choice of network only if it is ahead of dpar's defaults on 3-way TVD on both wide
  evaluation tables and no more than 0.01 behind them on TSTR; the issue's target is read
  against aim.
  *Runs* (seeds 0 and 1 run one per process, ``tune_dpar.score`` per seed, the mean taken
  by hand; the lines carry ``"seed"``): ``K`` = 16 gives a 39-column 3-way TVD of **0.155**
  against the defaults' 0.1185 (aim 0.106) and TSTR **0.507** against 0.629, at 920-940
  CPU-seconds per fit against the defaults' 70. **The amendment fails.** ``K`` = 64 was
  started and stopped unfinished: at about 6 CPU-seconds per step (the classes' logits are
  held per row, ``K`` times the vocabulary of 1,875 tokens) a fit would take about 45
  minutes, and with ``K`` = 16 this far behind, no wide evaluation table was run. Not kept.

* **A sharper TSTR gate: HMDA on 20 seeds** (twenty-third session, a measurement declared
  before its runs). The pooled TSTR of the first gate has a standard error near 0.024 (paired
  differences from the defaults 0.023-0.033), and even aim against dpar's defaults reads
  +0.028 +- 0.030 on it (``docs/benchmarks.md``): Affairs' and HousePrices' 120 test rows
  swing TSTR by 0.1-0.12 between seeds. HMDA's 476 test rows swing it by 0.023 across the
  defaults' seeds. So HMDA alone on seeds 0-19 at epsilon 1: the defaults, aim, target first
  and the mixture at ``K`` 16 and 64 (rate 0.3), each paired with the defaults seed by seed.
  Rule, fixed now: a lever passes if its mean paired TSTR gain is at least 0.03 and more than
  twice its standard error, with its 3-way TVD no worse than the defaults' by more than
  0.005. Target first has already failed randhie-wide and the mixture randhie-wide by far,
  so a pass here changes nothing in the library by itself. For the mixture, it would let
  a later session declare a rule by table size on the tuning tables. It says whether the
  first gate's verdicts on TSTR were sound.
  *Runs* (HMDA, epsilon 1, seeds 0-19; 3-way TVD / TSTR, paired TSTR gain over the
  defaults +- its standard error): defaults 0.128 / 0.507 (the TSTR's s.d. across seeds is
  0.057, not the 0.023 that three seeds showed); aim 0.100 / 0.635, +0.128 +- 0.015; target
  first 0.131 / 0.584, +0.077 +- 0.022; mixture ``K`` = 16 0.105 / 0.554, +0.047 +- 0.014;
  mixture ``K`` = 64 0.108 / 0.576, +0.069 +- 0.022. **All three levers pass**: the first
  gate's TSTR verdicts on them were noise.

* ``dpar`` with the mixture for small tables (twenty-third session, declared with its rule
  before any run on an evaluation table): dpar fits the mixture of ``K`` = 64 products at
  rate 0.3 (the higher TSTR on HMDA's 20 seeds) when the training table has at most 5,000
  rows, and the transformer otherwise. The tuning tables do not pin the threshold: the
  mixture won on HMDA (1,904 training rows) and lost on randhie-wide (12,000, 44 columns), and no
  tuning table lies between; 5,000 is fixed now, before any evaluation run. Fertility (37,500
  rows) and randhie-wide keep the transformer, so the second gate holds by construction.
  Run, fixed now: wage, CreditCard and SwissLabor at epsilon 1 and 4, seeds 0-7, the
  generator ``dpar-mixture64`` beside ``dpar`` and ``aim`` in the same invocations, reported
  whatever it shows. Rule for the library, fixed now: over the six (table, epsilon) cells the
  mixture's mean TSTR is above dpar's, its mean 3-way TVD not above dpar's and its mean
  share of rules broken not above dpar's; then dpar's automatic network follows the size
  rule (``network="auto"``).
  *Runs* (``benchmarks/results/table_models_mixture_small.json``; the dpar and aim lines of
  seeds 3-7 reproduce the twenty-first session's to the last digit): over the six cells the
  mixture's mean TSTR is **0.001 below** dpar's, its 3-way TVD 0.032 below and its rules
  broken 0.039 below. **The rule fails on TSTR.** The cells split: the TSTR gap to aim at
  epsilon 1 falls from 0.138 to 0.049 on CreditCard and from 0.064 to 0.048 on SwissLabor
  (both inside the issue's 0.05), and rises from 0.079 to 0.128 on wage; at epsilon 4 wage's
  rises from 0.033 to 0.115. Not kept; the library is unchanged.

* ``{"mixture": 64, "learning_rate": 0.3, "n_bins": b}`` (twenty-third session, declared
  with its rule before its runs): the mixture with coarser bins. **Where the idea came
  from, said plainly:** from the evaluation run above, where the mixture lost on wage, a
  table with wide numeric columns. In a mixture, a row's class posterior is the sum of its
  columns' log-probabilities under each class, and each 64-bin column adds 64 noisy logits
  per class. So the posterior may follow the noise in the numeric columns rather than the
  columns that carry the target. Fewer bins mean fewer noisy logits. The lever is chosen on
  HMDA only, where three of the thirteen columns are 64-bin ratios. Runs, fixed now: ``b``
  in {16, 32} on HMDA at epsilon 1, seeds 0-19, paired seed by seed with the mixture at 64
  bins (the lines above).
  Rule, fixed now: the bins with the larger paired TSTR gain go on if that gain is at least
  0.02 and more than twice its standard error, with the 3-way TVD (scored on the
  benchmark's own 20 bins) no worse by more than 0.005. They go on to the small evaluation
  tables under the rule above (8 seeds, ``dpar-mixture64`` with those bins, beside dpar
  and aim): the library would take the mixture at those bins for tables of at most 5,000
  rows if, over the six cells, its mean TSTR is above dpar's and its mean 3-way TVD and
  rules broken are not above dpar's.
  *Runs* (HMDA, seeds 0-19, against the mixture at 64 bins: 3-way TVD 0.108, TSTR 0.576):
  16 bins 0.181 / 0.617, paired TSTR gain +0.041 +- 0.027; 32 bins 0.103 / 0.569, -0.006 +-
  0.022. **It fails:** the gain at 16 bins is under twice its standard error and its TVD
  is 0.07 worse; 32 bins gains nothing. No evaluation run. Not kept.

* ``{"poe": K, "mix_share": s, "mix_rate": r}`` (twenty-fourth session, declared with its
  rule before any run with noise; ``dpar_experiments.product_of_experts``): dpar's
  transformer and a mixture of ``K`` products as one **product of experts**. Column ``j``'s
  conditional is the mixture's exact conditional times the transformer's exponentiated
  logits, normalised together. Both are trained at once by dpar's DP-SGD (plan, Poisson
  batches, schedule), each row's gradient clipped in two parts: the mixture's to
  ``C sqrt(s)``, the transformer's to ``C sqrt(1 - s)``, so the row's whole gradient stays
  within ``C`` and the plan's noise and accounting are unchanged. Adam runs the transformer
  at dpar's automatic rate and the mixture at ``r``; per-row gradients come from
  ``torch.func``, not book-keeping. Why it might help: the twenty-third session found the
  mixture ahead of the transformer on HMDA (+0.069 TSTR over 20 seeds), CreditCard and
  SwissLabor, and far behind it on wage; the transformer starts with logits near 0, so the
  product starts as the mixture and the transformer can learn what the classes miss. What
  it may cost: each expert gets only part of the clip, so either may end up worse than
  alone. *Diagnostic without privacy, run before this declaration* (HMDA seed 0, ``K`` =
  64, ``s`` = 0.5, ``r`` = 0.3, the plan's clip and no noise, ``"noise_scale": 0``): 3-way
  TVD 0.057 and TSTR 0.714, against the transformer's 0.075 (3 seeds) and 0.641 (seed 0)
  under the same clip without noise; 46 CPU-seconds per fit.
  Configurations, fixed now: ``K`` = 64, ``r`` = 0.3 (the mixture's rate of the
  twenty-third session) and ``s`` in {0.5, 0.8}. Runs, fixed now: HMDA at epsilon 1, seeds
  0-19 (split across two processes with ``--start``), each paired seed by seed with the
  defaults' 20-seed line of the twenty-third session (the same splits and test rows).
  Rule, fixed now (the sharper gate's): a share passes if its mean paired TSTR gain over
  the defaults is at least 0.03 and more than twice its standard error, and its 3-way TVD
  is no worse than the defaults' 0.128 by more than 0.005. Of those that pass, the higher
  mean TSTR goes on to the small evaluation tables: wage, CreditCard and SwissLabor at
  epsilon 1 and 4, seeds 0-7, as ``dpar-poe64`` of :mod:`bench_table_models` beside
  ``dpar`` and ``aim`` in the same invocations, reported whatever it shows. Rule for the
  library, fixed now (the twenty-third session's for the mixture): over the six (table,
  epsilon) cells its mean TSTR is above dpar's, and its mean 3-way TVD and mean share of
  rules broken are not above dpar's; then dpar would fit the product of experts on tables
  of at most 5,000 training rows and the transformer otherwise (the mixture's cost grows
  with ``K`` times the vocabulary, about 45 minutes per fit on randhie-wide, so the wide
  tables and Fertility keep the transformer by construction).
  *Runs* (``benchmarks/results/dpar_tuning_session24.jsonl``; one process per share, seeds
  0-19 in each): ``s`` = 0.5 gives 3-way TVD 0.112 and TSTR 0.569, paired gain over the
  defaults +0.062 +- 0.022; ``s`` = 0.8 gives 0.112 and 0.570, +0.063 +- 0.018. **Both pass.**
  Against the mixture alone (0.108 / 0.576) both are -0.006 (+- 0.027 and 0.025): on HMDA the
  product is the mixture. ``s`` = 0.8 has the higher mean TSTR (by 0.0002) and goes on.
  *Evaluation runs* (``benchmarks/results/table_models_poe_small.json``; the dpar and aim
  lines reproduce the twenty-third session's, 96 of 96): over the six cells the product's
  mean TSTR is 0.694 against dpar's 0.687 (+0.007 +- 0.006, paired by seed), its 3-way TVD
  0.225 against 0.250 and its rules broken 0.194 against 0.221. **The rule passes.** The
  cells split: CreditCard at epsilon 1 +0.085, SwissLabor +0.02-0.03, wage -0.029 and
  -0.072 (its gap to aim at epsilon 4 from 0.033 to 0.106). It went into the library as
  ``network="experts"`` (``benchmarks/results/table_models_dpar_experts_small.json``: the
  library's version, 47 of 48 TSTRs equal to these), first as the automatic choice below
  5,000 rows. **Then reverted to an option, against the rule, said plainly:** Adult cut to
  2,000 and 5,000 rows (1,600 and 4,000 training rows; run to update the README's advice by
  size, 2 seeds, ``benchmarks/results/table_models_rows_adult_experts.json``) gave a TSTR
  0.025 lower than the transformer's on average at 15-20 times its CPU time (60 and 160
  CPU-seconds against 4 and 8). Pooled over the ten cells the TSTR effect is near zero
  (-0.005), and a default 7-20 times slower with no TSTR gain is not a sane default; the
  3-way TVD gain (0.01-0.025) holds in both. The default stays the transformer.
  *A measurement on the tuning tables for a later session's rule* (declared before its runs;
  nothing in the library changes on it): the library's ``{"network": "experts"}`` against
  the defaults at epsilon 1 on Fertility cut to 2,000 and 5,000 rows (``"rows"``, seeds 0-3)
  and on Affairs and HousePrices (seeds 0-7), each paired seed by seed; reported whatever it
  shows, as the basis a size rule for the experts would need.
  *Runs* (paired TSTR gain of the experts over the defaults +- its standard error; 3-way
  TVD defaults / experts; fit CPU-s): Fertility 2,000 rows -0.026 +- 0.037, 0.108 / 0.104,
  1.5 / 7.0; Fertility 5,000 rows +0.008 +- 0.004, 0.070 / 0.072, 3.1 / 16; Affairs +0.049
  +- 0.043, 0.413 / 0.397, 0.9 / 3.7; HousePrices -0.018 +- 0.057, 0.320 / 0.289, 0.9 /
  3.4 (HMDA above: +0.063 +- 0.018). No size below 5,000 rows where the experts win on
  TSTR throughout: the tuning tables agree with the evaluation tables that the gain is in
  the marginals, not in TSTR.

* ``{"head": s, "head_setting": [b, batch, e, r], ...}``: **a target head**, an experiment
  not in the library (twenty-fifth session, declared with its rule before the runs below;
  code :func:`dpar_experiments.target_head`). A logistic regression for the table's target
  given its other columns (the one-hot of dpar's tokens at ``n_bins`` = ``b``, plus a bias)
  is trained by DP-SGD (per-row clipping to 1, Poisson sampling at expected batch
  ``batch``, ``e`` epochs, rate ``r``), its noise calibrated so that it alone would be
  ``(s epsilon, delta)``-DP; dpar then fits every column with its noise calibrated with the
  regression's steps as prior events (``plan_training(..., prior=...)``, the library's path
  for composites), so the two compose by PLD to ``(epsilon, delta)``. Rows are drawn from
  dpar, and each row's target is redrawn from the regression with its intercept shifted so
  that the share of positives is dpar's own (post-processing). Why it might help:
  ``bench_dp_classifier_bound.py`` (declared and run first this session) found that a
  DP-SGD logistic regression trained directly on the real rows reaches an AUC at or above
  ``aim``'s TSTR on all three small evaluation tables at epsilon 1 (wage 0.706 against
  0.653, CreditCard 0.994 against 0.990, SwissLabor 0.707 against 0.591; settings picked on
  the test rows, an optimistic figure), while inside dpar the target's head gets 0.2-3 % of
  a row's squared gradient (twentieth session): the split of the budget, not DP-SGD,
  starves the target. Under PLD the regression costs dpar little: on HMDA's plan at
  epsilon 1, a regression alone worth 0.3 raises dpar's noise multiplier from 8.51 to 9.00
  (basic composition would need 11.72). The user names the target (``dpsynth release
  --target``); ``aim`` is not told it, and every comparison with aim says so.
  *Development runs before this declaration* (HMDA seed 0, setting 8/256/50/0.5, not
  chosen by the rule): basic composition at ``s`` = 0.25 gave 3-way TVD 0.164 and TSTR
  0.720 (without the intercept shift 1-way TVD 0.062) against the defaults' 0.129 / 0.487;
  the PLD composition at ``s`` = 0.3 gave 0.136 / 0.694.
  Settings, fixed now: ``s`` in {0.15, 0.3}; the regression's setting for a head budget
  ``s epsilon`` is the grid setting of ``bench_dp_classifier_bound.py`` with the highest
  mean AUC pooled over HMDA, Affairs and HousePrices (seeds 0-7) at that budget
  (``--tables hmda affairs houseprices --epsilons 0.15 0.3 0.6 1.2``). Rule, fixed now (the
  sharper gate): HMDA at epsilon 1, seeds 0-19, paired seed by seed with the defaults'
  20-seed line of the twenty-third session; a share passes if its mean paired TSTR gain is
  at least 0.03 and more than twice its standard error and its 3-way TVD is no worse than
  the defaults' 0.128 by more than 0.005. Of those that pass, the higher mean TSTR goes on
  to wage, CreditCard and SwissLabor at epsilon 1 and 4, seeds 0-7 (``dpar-head`` of
  :mod:`bench_table_models`), against the same seeds' ``dpar`` and ``aim`` lines, reported
  whatever it shows.
  *Runs* (``benchmarks/results/dpar_tuning_session25.jsonl``; the setting the rule picked
  at head budgets 0.15 and 0.3 is 8/all/10/0.5, ``results/dp_classifier_bound_tuning.json``):
  ``s`` = 0.15 gives 3-way TVD 0.130 and TSTR 0.521, paired gain +0.014 +- 0.021; ``s`` =
  0.3 gives 0.133 and 0.528, +0.021 +- 0.020. **Neither passes.** Why: AUC ranks and
  ignores the slopes' scale, so the rule picked ten full-batch steps at rate 0.5, whose
  weights are tiny; once the intercept is shifted to dpar's rate every row's probability is
  near that rate, and the drawn target barely depends on the other columns.
  **Amendment 1, declared before its runs:** the same grid, shares and gate, with the
  regression's setting picked by the lowest mean log-loss on the test rows of the tuning
  tables after the same intercept shift (to the training rows' share of positives;
  ``shifted_log_loss``), the quantity the draws depend on.
  *Amendment 1's runs:* the log-loss picks 8/all/10/0.5 at head budget 0.15 (the line
  above again) and 8/256/10/0.5 at 0.3 (8/256/10/0.5 at 0.6, 8/256/10/2.0 at 1.2, for
  epsilon 4). ``s`` = 0.3 gives 3-way TVD 0.1326 (limit 0.1334) and TSTR 0.608, paired gain
  +0.101 +- 0.018 (aim 0.669 on HMDA). **It passes**, and goes on to the evaluation tables:
  head setting 8/256/10/0.5 at epsilon 1 and 8/256/10/2.0 at epsilon 4.
  *Rule for the library, declared while the evaluation ran (only seed 0 at epsilon 1 had
  printed):* dpar gains an opt-in ``target`` parameter (``None`` by default: the head needs
  the user to name the column) with share 0.3 and the settings above, if over the six
  (table, epsilon) cells of the evaluation its mean TSTR is above dpar's by at least 0.02
  and its mean 3-way TVD is not above dpar's by more than 0.01. The default network and the
  README's choice between aim and dpar change only on further measurements.
  *Evaluation* (``results/table_models_head_small.json``, 8 seeds): mean TSTR over the six
  cells 0.752 against dpar's 0.687, 3-way TVD 0.254 against 0.250; gaps to aim 0.006 /
  -0.015 (wage, epsilon 1 / 4), 0.032 / 0.003 (CreditCard), 0.002 / -0.027 (SwissLabor).
  **The rule passes.** The library's ``DPARSynthesizer(target=...)`` (``{"target": true}``
  here, the table's target) trains the regression after dpar's run, so that dpar draws
  what it draws without a target; on the same tables (``dpar-target`` of
  :mod:`bench_table_models`, ``results/table_models_dpar_target_small.json``) it gives mean
  TSTR 0.747 and 3-way TVD 0.254 (CreditCard at epsilon 1: 0.068 behind aim; the cell's
  seeds range from 0.74 to 1.00). On the large evaluation tables (seed 0, the first
  library run) it helps Adult at epsilon 1 (0.893 against 0.869) and hurts CPS1988 (0.760
  against 0.842 at epsilon 1, 0.775 against 0.871 at 4), where dpar already learns the
  target and a linear model on 8-bin features cannot. *A measurement on a large tuning
  table for the README's advice* (declared before its runs): Fertility (30,000 training
  rows) at epsilon 1 and 4, seeds 0-1, ``{}`` against ``{"target": true}``, reported
  whatever it shows.
  *Runs* (``results/dpar_tuning_session25.jsonl``): TSTR 0.593 -> 0.604 at epsilon 1 and
  0.601 -> 0.602 at 4, 3-way TVD 0.042 -> 0.046 and 0.044 -> 0.048. On this large table
  the head gains little, and costs a little of the marginals.
  **The head as a correction of dpar's own conditional** (``{"target": true, "offset":
  true}``, declared with its rule before any run). CPS1988 shows the plain head replacing a
  good conditional with a worse one. Here the regression gets one more input: dpar's own
  log-probabilities of each class given the row's other columns, ``log p_dpar(t | x_-t)``
  (exact: each class scored through dpar's autoregressive factorisation, post-processing
  of dpar's release), added to its logits with weight 1 and not trained. The regression
  then starts from dpar's conditional (zero weights) and DP-SGD learns a correction, as in
  boosting; where dpar already predicts well, the correction has little to learn. The
  clipping, the noise and the accounting are the plain head's (the offset is a function of
  the row and of released weights). Rule, fixed now: HMDA at epsilon 1, seeds 0-19, paired
  with the defaults' 20-seed line: the sharper gate as above; and Fertility at epsilon 1
  and 4, seeds 0-1: mean TSTR not below the defaults'. If both hold and its HMDA mean TSTR
  is at least the plain head's (0.608 in the experiment) minus 0.01, the offset replaces
  the plain head in the library; the small evaluation tables, Adult and CPS1988 are then
  rerun and reported whatever they show.
  *Runs* (``results/dpar_tuning_session25.jsonl``; the library's ``target_offset=True``):
  HMDA 3-way TVD 0.1325, TSTR 0.596, paired gain over the defaults +0.089 +- 0.018 (the gate
  passes) and -0.012 +- 0.015 against the experiment's plain head (0.608); Fertility TSTR
  0.608 and 0.609 at epsilon 1 and 4 (defaults 0.593 and 0.601). **The third condition
  fails by 0.002**, so the offset does not replace the plain head: it stays a parameter,
  ``target_offset``, off by default. Reported for the record (not used to choose anything):
  on the small evaluation tables (8 seeds) mean TSTR 0.750 against the plain head's 0.747,
  gaps to aim 0.005 / -0.014 (wage), 0.049 / 0.000 (CreditCard), -0.002 / -0.026
  (SwissLabor); on CPS1988 0.878 / 0.888 (plain head 0.770 / 0.758, dpar 0.842 / 0.871,
  aim 0.827 / 0.825) and on Adult 0.899 / 0.908 (aim 0.907 / 0.915), seed 0. A later
  session that wants it as the default should declare a fresh paired comparison with the
  plain head on the library's path, on tuning-table seeds not yet run (HMDA 20-39, say).
  **A fresh paired comparison, declared before its runs** (and, to be plain, declared
  after the evaluation above was seen: that is why it is run at all; its outcome rests on
  tuning-table seeds never run before). The first rule compared the offset with the
  experiment's head, another code path with other draws. Here both run through the library
  on HMDA at epsilon 1, seeds 20-39: ``{"target": true}`` against ``{"target": true,
  "offset": true}``, paired seed by seed. Rule, fixed now: the offset becomes the default
  (``target_offset=True``) if its mean paired TSTR difference with the plain head is above
  -0.01 and its mean 3-way TVD is no more than 0.005 above the plain head's; otherwise it
  stays off by default.
  *Runs* (``results/dpar_tuning_session25.jsonl``): plain head TSTR 0.624, offset 0.621,
  paired difference -0.003 +- 0.011; 3-way TVD 0.1347 both. **It passes: the offset is the
  default** (``target_offset=True``).

* ``{"target": true, "debias": k}`` (twenty-sixth session, **declared before any run**): the
  twentieth session's clip correction (``"debias"``) under the target head. That correction
  brought the marginals back (Fertility at epsilon 1: 3-way TVD 0.042 -> 0.023, aim 0.0235)
  but cost TSTR, because the rows it favours carry the target less cleanly. The target head
  now supplies the target separately: after the resampling, each kept row's target is
  redrawn by the library's head (``DPARSynthesizer._redraw_target``, post-processing, with
  its own generator), so the correction's rows keep their other columns and the head decides
  the target. A measurement this session also motivates it: on adult-wide dpar's 3-way TVD
  is 0.041 at epsilon 4, 0.037 at 16, 0.035 at 64 and 0.020 without DP, and its 1-way TVD
  stays at 0.012 from epsilon 4 to 64 (0.005 without DP), so most of the wide gap is not
  the noise (``results/table_models_wide_eps.json``, seed 0; that table is for evaluation,
  so it chooses nothing here). Runs, ``k`` = 5, each against ``{"target": true}`` on the
  same seeds: randhie-wide at epsilon 4 (seeds 0, 1), Fertility at epsilon 1 (seeds 0, 1),
  HMDA at epsilon 1 (seeds 0-2). Rule, fixed now: it goes on to the evaluation tables only
  if the mean 3-way TVD falls by at least 0.003 on randhie-wide and by at least 0.005 on
  Fertility, HMDA's rises by no more than 0.003, and the mean TSTR falls by no more than
  0.01 on each of the three. On the evaluation tables (adult-wide and loans-wide at epsilon
  4, seeds 0-2; wage, CreditCard and SwissLabor at 1 and 4, seeds 0-2) it is reported
  whatever it shows, and becomes a library option only if it lowers the wide tables' 3-way
  TVD without costing more than 0.01 of TSTR on any table.
  *Runs* (``results/dpar_tuning_session26.jsonl``), ``{"target": true}`` -> with
  ``"debias": 5``: Fertility 3-way TVD 0.0459 -> 0.0281, TSTR 0.6077 -> 0.6077; HMDA
  0.1337 -> 0.1332, TSTR 0.600 -> 0.638; randhie-wide 0.1350 -> 0.1329, TSTR 0.677 ->
  0.685. The head keeps TSTR, as intended, but **the rule fails on randhie-wide**: its 3-way
  TVD falls by 0.0021, short of 0.003.
  **Amendment, declared after seeing those runs (named as such) and before any run of it.**
  randhie-wide is run on four more seeds (2-5), and its condition is read on the mean over
  all six seeds (0-5), the failed pair included: a fall of at least 0.003 in the 3-way TVD
  and at most 0.01 in TSTR. HMDA's and Fertility's conditions stand as met. If it passes,
  the evaluation runs as declared, plus Adult and CPS1988 at epsilon 1 and 4 (seed 0),
  where the tables are large and the clip's share of the gap should be largest.
  *Amendment runs* (same file): randhie-wide seeds 2-3 0.1340 -> 0.1295 (TSTR 0.688 ->
  0.698), seeds 4-5 0.1337 -> 0.1330 (0.688 -> 0.686). Over seeds 0-5 the 3-way TVD falls
  from 0.1342 to 0.1318, by 0.0024, and TSTR rises by 0.006. **The amendment fails too**
  (0.0024 < 0.003); the evaluation tables were not run and nothing went into the library.
  What it leaves: under the head, the clip correction no longer costs TSTR on any tuning
  table (+0.000, +0.038, +0.006), and on Fertility, the one large narrow tuning table, it
  takes the 3-way TVD from 0.046 to 0.028 (aim 0.0235). A next step would declare a rule for
  large narrow tables (Adult and CPS1988 are the evaluation's), not for the wide ones.
  **A measurement, declared after all of the above and named as such**: the benchmark's
  ``dpar-target-debias`` on Adult and CPS1988 at epsilon 1 and 4 (seed 0), beside the
  ``dpar-target`` lines of the twenty-fifth session (the same fits). It is reported whatever
  it shows and chooses nothing: no rule, nothing into the library this session.
  Extended, before its runs, to CPS1988 seeds 1 and 2 (``dpar-target``,
  ``dpar-target-debias`` and aim at epsilon 1 and 4), to see whether seed 0's lead holds;
  again a measurement that chooses nothing.

* ``{"target": true, "noise_std": c}`` (twenty-seventh session, **declared before any run**):
  **a clip that grows with epsilon** (``dpar_experiments.noise_scaled_clip``). The clip is
  set to ``C = max(1, c / sigma)`` with ``sigma`` the plan's noise multiplier (computed
  before any row is read, from the row count and the budget, as the plan is), so the
  noise's standard deviation ``sigma C`` is held at ``c`` once ``C`` passes 1. As epsilon
  grows, ``sigma`` falls, the clip rises towards the rows' own norms (median 28-59 on the
  tuning tables) and the fit approaches the unclipped one (at epsilon inf there is no clip).
  The plan's noise multiplier does not depend on ``C``, so the spend is unchanged. Why: the
  clip's reweighting by ``1 / ||g_i||`` is the gap that more budget does not close (adult-wide:
  3-way TVD 0.042 / 0.037 / 0.035 at epsilon 4 / 16 / 64, 1-way 0.012 throughout, 0.020 and
  0.005 without DP; an evaluation table, so it only motivates). The twenty-first session's
  fixed clips show the noise side of the trade: ``C`` = 30 on Fertility at epsilon 1
  (``sigma`` 2.34, noise std 70) brought the 3-way TVD from 0.042 to 0.031 and cost 0.042 of
  TSTR, and ``C`` = 100 on randhie-wide at epsilon 4 (``sigma`` 1.27, noise std 127) made it
  worse; the target head (the library's ``target=``) now supplies the TSTR that the
  reweighting cost, as it did for the clip correction above. Runs, ``c`` in {40, 80}, each
  against ``{"target": true}`` on the same seeds: Fertility at epsilon 1 and 16 (seeds 0, 1),
  randhie-wide at epsilon 4 and 16 (seeds 0, 1), HMDA at epsilon 1 and 16 (seeds 0-2).
  Rule, fixed now: a ``c`` passes if (a) at epsilon 16 the mean 3-way TVD falls by at least
  0.005 on Fertility and on randhie-wide (its 39 columns, ``tvd3_rest``) and rises by no
  more than 0.003 on HMDA; (b) at the issue's epsilon (1 on Fertility and HMDA, 4 on
  randhie-wide) it rises by no more than 0.002 on any of the three; (c) the mean TSTR falls
  by no more than 0.01 in every cell. If both pass, the one with the larger mean fall at
  epsilon 16 is taken. It then goes to the evaluation tables as a measurement reported
  whatever it shows (the benchmark's ``dpar-target`` against the same with the clip rule:
  adult-wide and loans-wide at epsilon 4 and 16, Adult and CPS1988 at epsilon 1, 4 and 16,
  seed 0), and becomes dpar's clip when a target is named only if there it lowers the 3-way
  TVD at epsilon 16 on at least three of the four tables, and at epsilon 1 and 4 raises it
  by no more than 0.002 and lowers TSTR by no more than 0.01 on any. Without a target the
  fixed clip would stay: the twenty-first session found the reweighting costs dpar's own
  TSTR.
  *Runs* (``results/dpar_tuning_session27.jsonl``; 3-way TVD, randhie-wide's on its 39
  columns, and TSTR; ``{"target": true}`` / ``c`` = 40 / ``c`` = 80):

  | table, epsilon | 3-way TVD | TSTR |
  |---|---|---|
  | Fertility, 1 | 0.0459 / 0.0295 / 0.0327 | 0.608 / 0.607 / 0.605 |
  | Fertility, 16 | 0.0493 / 0.0302 / 0.0331 | 0.609 / 0.607 / 0.603 |
  | randhie-wide, 4 | 0.1193 / 0.1193 / 0.1163 | 0.677 / 0.677 / 0.681 |
  | randhie-wide, 16 | 0.1045 / 0.1034 / 0.1157 | 0.682 / 0.683 / 0.683 |
  | HMDA, 1 | 0.1337 / 0.1337 / 0.1337 | 0.600 / 0.594 / 0.592 |
  | HMDA, 16 | 0.0813 / 0.0713 / 0.0812 | 0.689 / 0.713 / 0.695 |

  **The rule fails for both** on its condition (a): at epsilon 16 randhie-wide's 3-way TVD
  falls by 0.0011 at ``c`` = 40 (clip 61) and rises by 0.011 at ``c`` = 80 (clip 122). On
  the wide tuning table a clip near the rows' norms does not help even where the noise is
  held fixed, so this is not the wide tables' lever. Elsewhere ``c`` = 40 helps much:
  Fertility's 3-way TVD falls by a third at epsilon 1 and 16 (aim at epsilon 1: 0.0235), and
  HMDA's by 0.010 at 16. At epsilon 1 HMDA's noise multiplier is 9.0, so the clip is 4.4
  (``c`` = 40) or 8.9 (80): below every row's norm, where Adam undoes a common scale. dpar's
  TVDs agree to four places, and the TSTR moves because the head's offsets read dpar's
  slightly different conditional (checked: the same fit repeated in one process is
  identical to the bit).
  **Amendment 1, declared after these runs (named as such) and before any run of it.** The
  lever is re-scoped from the wide tables to what it did: ``c`` = 40 as dpar's clip rule when
  a target is named. Condition (a)'s wide part is dropped; (b) and (c) hold on every cell
  above (largest 3-way TVD rise 0.000, largest TSTR fall 0.005). Since the amendment is made
  after seeing the runs, it must pass a fresh check first: Fertility at epsilon 4 (seeds 2,
  3; an epsilon and seeds not run above) must show a 3-way TVD fall of at least 0.005 and a
  TSTR fall of at most 0.01. The evaluation tables then decide, as declared (a measurement
  reported whatever it shows), with seeds 0 and 1 on Adult and CPS1988 (seed 0's lead on
  CPS1988 did not hold last session) through the benchmark's experiment generator
  ``dpar-target-clip40``: it goes into the library only if the 3-way TVD at epsilon 16 falls
  on at least three of the four tables, and at epsilon 1 and 4 no table's (mean) 3-way TVD
  rises by more than 0.002 and no table's TSTR falls by more than 0.01.
  *Fresh check* (same file, seeds 2 and 3 at epsilon 4): Fertility's 3-way TVD 0.0496 ->
  0.0323 (each seed: 0.0528 -> 0.0327, 0.0464 -> 0.0319), TSTR 0.606 -> 0.602. **It passes**;
  the evaluation runs as declared.
  *Evaluation* (``results/table_models_clip40_eval.json``; Adult and CPS1988 mean of seeds
  0-1, the wide tables seed 0; 3-way TVD ``target=`` -> with the rule): Adult 0.113 -> 0.113
  / 0.090 -> 0.098 / 0.086 -> 0.098 at epsilon 1 / 4 / 16; CPS1988 0.066 -> 0.065 / 0.059 ->
  0.055 / 0.060 -> 0.054; adult-wide 0.040 -> 0.034 / 0.036 -> 0.033 at 4 / 16; loans-wide
  0.124 -> 0.124 / 0.100 -> 0.100. TSTR moves by at most 0.007. **It fails the decision
  rule**: Adult's 3-way TVD rises by 0.008 at epsilon 4 (0.002 allowed), although its 1-way
  TVD falls from 0.018 to 0.012. Not in the library.

* ``{"target": true, "network": "experts"}`` (twenty-seventh session, **declared before any
  run**): two library options together, **the target head on the product of experts**. No
  line in ``benchmarks/results`` has both. Separately, on the small evaluation tables, the
  experts lowered the 3-way TVD by about 0.025 (and CreditCard's rule breaks at epsilon 1
  from 73 % to 43 %) but left TSTR behind aim's, and the head brought TSTR level with aim's
  but raised the 3-way TVD by about 0.004. The head redraws only the target, and the
  experts change the other columns' model, so the two may add up. Nothing new is built;
  this decides what the README recommends for small tables. Runs, each against
  ``{"target": true}`` on the same seeds: HMDA at epsilon 1 (seeds 0-2), Affairs and
  HousePrices at epsilon 1 (seeds 0-7). Rule, fixed now: it goes on to the evaluation tables
  if the 3-way TVD pooled over the three tables (the mean of the three tables' means) falls
  by at least 0.01 and no table's mean TSTR falls by more than 0.01. On the evaluation
  tables (wage, CreditCard and SwissLabor at epsilon 1 and 4, seeds 0-7, the benchmark's
  ``dpar-target`` with ``--params '{"network": "experts"}'``, against the existing
  ``dpar-target`` lines of ``table_models_dpar_target_offset_small.json``, the same fits)
  it is reported whatever it shows, and the README recommends the pair for small tables
  only if there the mean 3-way TVD falls on all three tables at both epsilons and no
  cell's mean TSTR falls by more than 0.01. No default changes.
  *Runs* (``results/dpar_tuning_session27.jsonl``; ``{"target": true}`` -> with the
  experts): HMDA 3-way TVD 0.1337 -> 0.1118, TSTR 0.600 -> 0.589; Affairs 0.422 -> 0.404,
  TSTR 0.494 -> 0.557; HousePrices 0.324 -> 0.296, TSTR 0.576 -> 0.583. The pooled 3-way
  TVD falls by 0.023 (0.01 asked), but **HMDA's TSTR falls by 0.011 (0.01 allowed): the rule
  fails.** HMDA's three seeds go 0.608 / 0.603 / 0.589 -> 0.543 / 0.676 / 0.547, so the
  pair's TSTR is the noisier one there. Not run on the evaluation tables; the README does
  not recommend the pair. The experts' CPU cost under the head was 10x on HMDA (34 s against
  3.5 s) and 2.3-2.7x on Affairs and HousePrices.

* ``{"target": true, "debias": 5}`` **for large narrow tables** (twenty-seventh session,
  **declared before any of the runs it names**): the twenty-sixth session's clip correction
  under the head, re-scoped as its note proposed. Its gate then failed only on the wide
  tuning table (randhie-wide: 3-way TVD -0.0024 over six seeds, -0.003 asked); it did no
  harm anywhere (HMDA level, TSTR +0.000 / +0.038 / +0.006), and as a measurement it cut
  CPS1988's 3-way TVD gap to aim by about two thirds over three seeds and Adult's by 0.005
  (seed 0). Those evaluation figures are already seen, so they decide nothing here: every
  run below is on an epsilon or seeds the correction has not run on. The norms now come
  from book-keeping (``sampling.row_gradient_norms`` of the library: the vmap norms to 1e-6,
  5x faster on a small model), so a pool of 5 n rows is affordable on Adult's 39,074.
  Gate (tuning tables, fresh): Fertility at epsilon 4, seeds 2 and 3: the mean 3-way TVD
  falls by at least 0.005 and TSTR by at most 0.01; HMDA at epsilon 4, seeds 0-2: the
  3-way TVD rises by at most 0.003 and TSTR falls by at most 0.01. Evaluation (fresh
  seeds; the benchmark's ``dpar-target`` against ``dpar-target-debias``): Adult seeds 1
  and 2 and CPS1988 seeds 3 and 4, at epsilon 1 and 4. It becomes a library option (off by
  default, suggested for tables of tens of thousands of rows) only if there, in every
  (table, epsilon) mean, the 3-way TVD falls, TSTR falls by at most 0.01 and no rule's
  break rate rises above 1 %. Otherwise it is reported and left out.
  *Gate* (``results/dpar_tuning_session27.jsonl``): Fertility at epsilon 4 (seeds 2, 3)
  3-way TVD 0.0496 -> 0.0276, TSTR 0.606 -> 0.605; HMDA at epsilon 4 (seeds 0-2) 0.0856 ->
  0.0805, TSTR 0.656 -> 0.703. **It passes.**
  *Evaluation* (``results/table_models_debias_fresh_seeds.json``; ``dpar-target`` ->
  ``dpar-target-debias``, means of the two seeds):

  | table, epsilon | 3-way TVD | 1-way TVD | TSTR | rules broken (largest mean) |
  |---|---|---|---|---|
  | Adult, 1 | 0.1127 -> 0.1097 | 0.022 -> 0.016 | 0.894 -> 0.895 | 0.3 % -> 0.4 % |
  | Adult, 4 | 0.0900 -> 0.0838 | 0.019 -> 0.011 | 0.909 -> 0.909 | 0.2 % -> 0.2 % |
  | CPS1988, 1 | 0.0680 -> 0.0581 | 0.024 -> 0.015 | 0.869 -> 0.872 | 0.6 % -> 0.7 % |
  | CPS1988, 4 | 0.0586 -> 0.0479 | 0.023 -> 0.014 | 0.884 -> 0.881 | 0.2 % -> 0.3 % |

  **It passes**: the 3-way TVD falls in every cell, TSTR falls by at most 0.004, and no
  rule's mean break rate reaches 1 % (the highest single run: 0.92 %). It goes into the
  library as dpar's ``clip_correction`` (off by default), with the same pool of 5 n rows.

* ``{"target": true, "sampling": [[1, m, g], ...]}``: **gated min-p truncation**
  (twenty-eighth session, **declared before any of its runs**; post-processing, so each
  seed's one fit is drawn once per variant). DP-SGD's noise keeps dpar's next-column
  probabilities off 0 and 1: on wage at epsilon 1 the derived ``married`` flag disagrees
  with ``maritl`` in 2-4 % of rows on most seeds, although the model puts 96-98 % on the
  right value. The ninth session's min-p (tokens below ``m`` times the likeliest dropped)
  was scored on TVD and TSTR only, on tables without rules, and before the cosine schedule
  and the target head. The third element ``g`` (the experiments' ``gate``) applies the cut
  only where the likeliest token has probability at least ``g``: near-determined
  contexts, where a rule lives, lose their stray mass, and flat ones keep their rare values.
  Variants: ``[1, 0]`` (plain draw), ``[1, 0.02]``, ``[1, 0.05]``, ``[1, 0.05, 0.8]``,
  ``[1, 0.1, 0.8]``. Runs: Affairs and HousePrices at epsilon 1 and 4 (seeds 0-7),
  randhie-wide at 4 (seeds 0-1), HMDA at 1 (seeds 0-2), Fertility at 1 (seeds 0-1); every
  line now also carries ``broken``, the mean over seeds of the largest rule's break share
  (the benchmark's rules; Affairs, HousePrices and randhie-wide have them).
  *Rule*: a variant passes if (a) ``broken`` falls by at least half on Affairs and
  HousePrices at both epsilons and on randhie-wide (cells whose plain draw breaks under
  0.5 % excepted); (b) the 3-way TVD rises by at most 5 % in every cell; (c) TSTR falls by at
  most 0.02 on Affairs and HousePrices (under 500 training rows; one draw moves it by
  more) and by at most 0.01 elsewhere. Of the passing variants the one with the lowest mean
  ``broken`` goes on to the evaluation tables on fresh seeds (wage, CreditCard and SwissLabor
  seeds 8-11 at epsilon 1 and 4; Adult seed 3 and CPS1988 seed 5 at epsilon 4), where it
  must lower the largest rule's mean break share on every small table and meet (b) and (c)
  (0.02 on the small tables). Only then does it become the default of dpar's sampling.
  *Result* (``results/dpar_tuning_session28.jsonl``): **it fails (a) and (b); nothing goes
  into the library.** No variant moves the rules of Affairs or HousePrices by more than a
  tenth (largest break 52 % / 30 % on Affairs at epsilon 1 / 4, 76 % / 45 % on HousePrices,
  under every variant within 0.04 of that): dpar has not learned those rules at all, so
  there is no stray mass to cut. randhie-wide breaks none in the plain draw. The cut costs
  the large tables: Fertility's 3-way TVD rises by 41-221 % (0.046 -> 0.065 for the gated
  0.05, 0.147 for plain 0.05) and randhie-wide's by 4-34 %. Plain min-p helps only the
  noisiest tables (HMDA at epsilon 1: 0.134 -> 0.112, TSTR +0.02 to +0.05; Affairs 2-6 %),
  as in the ninth session. A seed outside the declared ones (Affairs seed 20) was drawn
  once to check the plumbing before the runs.

* ``{"target": true, "draws": ["iid", "systematic"]}``: **systematic draws** (twenty-eighth
  session, **declared before any of its runs**; post-processing: each seed's one fit is drawn
  both ways). dpar draws every row's tokens independently, so each sampled marginal carries
  multinomial noise on top of the model's error. On adult-wide a bootstrap of the 12,000
  training rows is itself 0.015 from them in 3-way TVD (randhie-wide 0.032, HMDA 0.034),
  while aim's 0.023 is near that floor: aim draws by rounded ancestral sampling, which
  nearly removes the noise. The systematic draw keeps each row's law, ``p(x_j | x_<j)``,
  but couples the rows: for each column the rows are put in the lexicographic order of
  their drawn prefixes, and token ``v`` goes to a systematic sample (Madow, "On the theory
  of systematic sampling, II", Ann. Math. Stat. 1949) of the rows still without a token, with
  inclusion probability ``p_v / (1 - p_0 - ... - p_{v-1})``. Each row gets ``v`` with
  probability ``p_v`` exactly; the count of ``v`` in any run of neighbouring rows (the rows
  sharing their first columns) is within one of its expectation at each step.
  *Rule (tuning tables)*: HMDA at epsilon 1 and 4 (seeds 0-2), Fertility at 1 (0-1),
  randhie-wide at 4 (0-1), Affairs and HousePrices at 1 and 4 (0-7). It passes if the mean
  3-way TVD falls in every cell, TSTR falls by at most 0.01 (0.02 on Affairs and
  HousePrices) and the largest rule's break share rises by at most 0.5 points.
  *Evaluation* (fresh seeds; ``bench_table_models.py --draws iid systematic``, each
  ``dpar-target`` fit drawn both ways): adult-wide and loans-wide at epsilon 4, seeds 3 and
  4 (with aim on the same seeds); Adult seed 3 and CPS1988 seed 5 at epsilon 1 and 4; wage,
  CreditCard and SwissLabor seeds 8 and 9 at epsilon 1 and 4. It becomes dpar's default
  draw only if there, in every (table, epsilon) mean, the 3-way TVD falls, TSTR falls by at
  most 0.01 (0.02 on the three small tables) and no rule's mean break share rises by more
  than 0.5 points. Whether it then puts dpar ahead of aim on the wide tables is read off the
  same runs.
  *Tuning result* (``results/dpar_tuning_session28.jsonl``, ``"draws"`` lines; independent
  -> systematic): 3-way TVD Affairs 0.422 -> 0.411 and 0.279 -> 0.269, HousePrices 0.324 ->
  0.315 and 0.215 -> 0.208, HMDA 0.134 -> 0.133 and 0.086 -> 0.081, randhie-wide 0.135 ->
  0.134, Fertility 0.0459 -> 0.0453: it falls in every cell. TSTR moves by -0.014 to
  +0.072. The largest rule's break share rises by 0.4 and 0.7 points on Affairs and by 1.5
  and 0.5 on HousePrices: **the rule fails on its third part**, by 0.2, 1.0 and 0.02 points.
  That part cannot tell a real rise from the draw's noise: each row keeps its law exactly
  (module docstring of ``dpsynth.synthesizers.ar.sampling``), so the expected break share
  is unchanged, and one draw of about 100-200 premise rows per seed moves the share by 3-5
  points.
  *Amendment 1* (declared after the result above and named as such; every run on seeds the
  draws have not run on): ``"redraws": 20`` draws each fit 20 times (sampling seeds ``seed``,
  then ``1000 seed + r``) and every figure is the mean over the draws. Affairs and
  HousePrices at epsilon 1 and 4, seeds 8-15; HMDA at epsilon 1, seeds 3-5. It passes if
  the 3-way TVD falls and TSTR falls by at most the rule's bound in every cell, and the
  largest rule's break share, as the mean over seeds of each seed's paired difference,
  rises by at most 0.5 points or by less than two standard errors of that mean. Then the
  evaluation above runs as declared.
  *Amendment 1's result* (the ``"redraws": 20`` lines; means over seeds of 20 draws each):

  | table, epsilon (seeds) | 3-way TVD | TSTR | largest rule broken, paired change (2 SE) |
  |---|---|---|---|
  | Affairs, 1 (8-15) | 0.4288 -> 0.4222 | 0.560 -> 0.568 | -0.21 points (0.58) |
  | Affairs, 4 (8-15) | 0.2792 -> 0.2659 | 0.607 -> 0.605 | -0.34 points (0.54) |
  | HousePrices, 1 (8-15) | 0.3223 -> 0.3163 | 0.604 -> 0.610 | -0.79 points (0.79) |
  | HousePrices, 4 (8-15) | 0.2124 -> 0.2037 | 0.675 -> 0.670 | -1.77 points (1.28) |
  | HMDA, 1 (3-5) | 0.1402 -> 0.1385 | 0.613 -> 0.606 | (no rules) |

  **It passes**: the 3-way TVD falls in every cell, TSTR falls by at most 0.007, and the
  break share falls in every cell with rules.
  *Amendment 2* (declared while the evaluation ran, before any of its small-table results
  existed): the evaluation's third part meets the same draw noise on the three small
  tables (CreditCard breaks its rule in about 70 % of some 200 premise rows at epsilon 1).
  There, each fit is drawn 20 times each way (``bench_table_models.py --redraws 20``,
  seeds 8 and 9), every figure of the rule is the mean over the draws, and a rule's break
  share may rise by at most 0.5 points or by less than two standard errors of the mean
  paired (same fit, same draw number) difference over the 40 draws. The other tables
  keep one draw per fit, as declared.
  *Evaluation result* (``results/table_models_systematic_eval.json``, and
  ``results/table_models_systematic_small_redraws.json`` for the small tables' 20 draws):
  the 3-way TVD fell in every (table, epsilon) mean (adult-wide 0.0384 -> 0.0357,
  loans-wide 0.1299 -> 0.1278, Adult 0.1121 -> 0.1098 and 0.0897 -> 0.0864, CPS1988
  0.0761 -> 0.0729 and 0.0670 -> 0.0652, wage 0.1564 -> 0.1497 and 0.1095 -> 0.1004,
  CreditCard 0.4138 -> 0.4096 and 0.2053 -> 0.1967, SwissLabor 0.3930 -> 0.3879 and
  0.2674 -> 0.2586); TSTR fell by at most 0.009; no rule's break share rose by more than
  0.45 points. **It passes and is dpar's default draw** (``draw="systematic"``). aim on
  the same wide seeds: adult-wide 0.0238 (TSTR 0.887 against dpar's 0.884), loans-wide
  0.0956 (0.679 against 0.711): the wide target stays unmet.

    OMP_NUM_THREADS=1 python benchmarks/tune_dpar.py hmda 4 \\
        '[{"learning_rate": 0.01, "lr_schedule": "constant"}, {"lr_schedule": "cosine"}]' 3

The experiments' code is in :mod:`dpar_experiments` (split out in the nineteenth session; the
defaults, ``"prior"``, ``"smooth"`` and ``"pairwise"`` lines on HMDA reproduce to the last
digit after the split; the review then fixed the pairwise sampling, which changes that line).

Results of the 2026-12-05 runs: ``benchmarks/results/dpar_tuning_schedule.jsonl`` and
``benchmarks/results/dpar_tuning_session6.jsonl`` (the latter's EMA, factorised-embedding and
column-order lines ran on the experimental code in ``dpar_tuning_session6_experiments.patch``,
not in the library).
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import contextlib  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

import bench_table_models as bench  # noqa: E402
import dpar_experiments as exp  # noqa: E402
import numpy as np  # noqa: E402

from dpsynth.evaluate import average_tvd  # noqa: E402

TUNING_TABLES = ("hmda", "fertility", "randhie-wide", "affairs", "houseprices")
DPAR_KEYS = ("learning_rate", "lr_schedule", "epochs", "batch_size", "d_model", "n_heads",
             "n_layers", "n_bins", "max_grad_norm", "network")


def fit(table: bench.Table, train: Any, cfg: dict[str, Any], eps: float, seed: int,
        public: Any = None) -> Any:
    """The fitted synthesizer of one configuration (``public``: the declared public rows of
    the ``"opt_in"`` key, which ``"use"`` hands to dpar)."""
    from dpsynth.synthesizers import create
    from dpsynth.synthesizers.ar import DPARSynthesizer

    kw = {k: v for k, v in cfg.items() if k in DPAR_KEYS}
    kw.setdefault("network", "transformer")  # the network every line before it ran on
    if cfg.get("target"):  # the library's target head on the table's target
        kw["target"] = table.target
    if cfg.get("offset"):  # the head as a correction of dpar's conditional
        kw["target_offset"] = True
    if cfg.get("noise_std"):  # the clip that grows with epsilon
        kw["max_grad_norm"] = exp.noise_scaled_clip(table, len(train), kw, eps,
                                                    float(cfg["noise_std"]))
    if cfg.get("use"):
        return exp.public_fit(table, train, public, kw, cfg, eps, seed)
    if cfg.get("only"):
        return create(cfg["only"], epsilon=eps * cfg.get("share", 1.0), delta=bench.DELTA,
                      random_state=seed).fit(train, table.schema)
    if cfg.get("order"):
        return exp.reordered(table, train, kw, str(cfg["order"]), eps, seed)
    if cfg.get("head"):
        return exp.target_head(table, train, kw, float(cfg["head"]), cfg["head_setting"],
                               eps, seed)
    if cfg.get("poe"):
        with exp.product_of_experts(int(cfg["poe"]), float(cfg.get("mix_share", 0.5)),
                                    float(cfg.get("mix_rate", 0.3)),
                                    noise_scale=float(cfg.get("noise_scale", 1.0))):
            return DPARSynthesizer(epsilon=eps, delta=bench.DELTA, random_state=seed,
                                   **kw).fit(train, table.schema)
    if cfg.get("any_order"):
        return exp.any_order(table, train, kw, eps, seed)
    if cfg.get("hybrid"):
        return exp.reweighted(table, train, kw, cfg, eps, seed)
    if cfg.get("anchor"):
        return exp.anchored(table, train, kw, cfg, eps, seed)
    if cfg.get("project") and cfg.get("prior") == "aim":  # a warm start, a projected tune
        share = float(cfg["share"])
        fake = exp.drawn_rows("aim", table, train, eps * share, seed)
        with exp.projected(int(cfg["project"]), "self", int(cfg.get("every", 10)),
                           int(cfg.get("probes", 512)), seed):
            return exp.warm_fit(fake, table, train, kw, eps * (1 - share), seed,
                                cfg.get("prior_epochs", 20))
    if cfg.get("project"):
        basis, share, delta = str(cfg.get("basis", "self")), 0.0, bench.DELTA
        if basis == "aim":  # probes drawn from aim's release, paid from the budget
            share, delta = float(cfg["share"]), bench.DELTA / 2
            basis = exp.drawn_rows("aim", table, train, eps * share, seed)
        elif basis == "heldout":  # the real test rows: a diagnostic without privacy
            basis = bench.split(table, seed)[1]
        with exp.projected(int(cfg["project"]), basis, int(cfg.get("every", 10)),
                           int(cfg.get("probes", 512)), seed):
            return DPARSynthesizer(epsilon=eps * (1 - share), delta=delta, random_state=seed,
                                   **kw).fit(train, table.schema)
    scale = float(cfg.get("noise_scale", 1.0))  # below 1: a diagnostic without privacy
    patches = {"exact_max": lambda v: exp.exact_integers(int(v)),
               "col_weight": lambda v: exp.column_weights(float(v)),
               "smooth": lambda v: exp.smooth_ordered(int(v)),
               "adam_bc": lambda v: exp.bias_corrected(float(v)),
               "weight_decay": lambda v: exp.optimiser("weight_decay", float(v)),
               "pairwise": lambda v: exp.pairwise(float(v)),
               "group_clip": lambda v: exp.grouped(None if v == "one" else float(v), scale),
               "sgd": lambda v: exp.optimiser("sgd", float(v)),
               "mixture": lambda v: exp.mixture(int(v))}
    chosen = [key for key in patches if cfg.get(key) is not None and cfg[key] is not False]
    if chosen or not cfg.get("prior"):  # dpar itself, or patched for this one fit
        with (patches[chosen[0]](cfg[chosen[0]]) if chosen else contextlib.nullcontext()):
            return DPARSynthesizer(epsilon=eps, delta=bench.DELTA, random_state=seed,
                                   **kw).fit(train, table.schema)
    share = float(cfg["share"])
    if cfg["prior"] == "marginals":
        return exp.marginal_prior(table, train, kw, eps, share, seed)
    fake = exp.drawn_rows(cfg["prior"], table, train, eps * share, seed,
                          int(cfg.get("fake_factor", 1)))
    return exp.warm_fit(fake, table, train, kw, eps * (1 - share), seed,
                        cfg.get("prior_epochs", 20))


def variants(cfg: dict[str, Any]) -> list[tuple[list[float], str]]:
    """The ways one fit is drawn: each ``"sampling"`` pair or triple with each of dpar's
    ``"draws"`` (one plain independent draw when ``cfg`` has neither key)."""
    return [(list(sharp), str(draw)) for sharp in cfg.get("sampling", [[1.0, 0.0]])
            for draw in cfg.get("draws", ["iid"])]


def score(table: bench.Table, cfg: dict[str, Any], eps: float, seed: int
          ) -> list[dict[str, Any]]:
    """One score per variant of :func:`variants` (one unless ``cfg`` has the ``"sampling"``
    or ``"draws"`` key)."""
    if cfg.get("rows"):
        table = bench.cut(table, int(cfg["rows"]), seed)
    train, test = bench.split(table, seed)
    public = None
    if cfg.get("opt_in"):  # the private rows are the rest, and the TVD is against them
        train, public = bench.opt_in_split(train, float(cfg["opt_in"]), seed)
    import torch

    torch.manual_seed(seed)  # the experiments that draw from torch's global generator
    cpu = time.process_time()
    synth = fit(table, train, cfg, eps, seed, public)
    cpu = time.process_time() - cpu
    s = table.schema
    few, rest = bench.few_valued_numeric(s, train)  # "tvd3_rest" leaves the few out
    names = rest.names
    out = []
    for (temperature, min_p, *gate), draw in variants(cfg):
        if hasattr(synth, "draw"):  # the "draws" key (twenty-eighth session)
            synth.draw = draw
        drawn = []
        for r in range(int(cfg.get("redraws", 1))):
            state = bench.draw_seed(seed, r)
            with exp.sharpened(float(temperature), float(min_p),
                               float(gate[0]) if gate else 0.0):
                if cfg.get("debias"):
                    rows = exp.debiased_rows(synth, len(train), int(cfg["debias"]), state)
                else:
                    rows = synth.sample(len(train) * int(cfg.get("oversample", 1)),
                                        random_state=state)
            one = bench.scores(table, train, test, rows)
            rules = one.pop("broken")
            one["cpu"] = cpu
            if rules:  # the largest rule's break share (twenty-eighth session)
                one["broken"] = max(rules.values())
            if few:
                one["tvd3_rest"] = average_tvd(train[names], rows[names], rest, way=3,
                                               max_marginals=200)
            drawn.append(one)
        out.append({k: float(np.mean([sc[k] for sc in drawn])) for k in drawn[0]})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("table", choices=TUNING_TABLES)
    parser.add_argument("epsilon", type=float)
    parser.add_argument("configs", help="JSON list of configurations")
    parser.add_argument("seeds", type=int, nargs="?", default=1)
    parser.add_argument("--start", type=int, default=0,
                        help="first seed (seeds start .. start + seeds - 1), to split the "
                             "seeds of one configuration across processes")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    table = bench.LOADERS[args.table]()
    for cfg in json.loads(args.configs):
        seeds = range(args.start, args.start + args.seeds)
        scored = [score(table, cfg, args.epsilon, seed) for seed in seeds]
        for i, (sharp, draw) in enumerate(variants(cfg)):
            runs = [per_seed[i] for per_seed in scored]
            mean = {k: round(float(np.mean([r[k] for r in runs])), 4) for k in runs[0]}
            shown = dict(cfg)
            if "sampling" in cfg:
                shown["sampling"] = sharp
            if "draws" in cfg:
                shown["draws"] = draw
            line = {"data": args.table, "eps": args.epsilon, "cfg": shown, **mean,
                    "tstr_all": [round(r["tstr"], 4) for r in runs]}
            if "broken" in runs[0]:
                line["broken_all"] = [round(r["broken"], 4) for r in runs]
            if args.start:
                line["seeds"] = [seeds[0], seeds[-1]]
            print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
