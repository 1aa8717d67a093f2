"""Two small DP mechanisms used to discover column domains (pure functions, no state).

Both take their randomness from a :class:`~dpsynth.accounting.NoiseSource`, so a seeded run is
reproducible and a release run draws from the operating system's CSPRNG. Neighbouring datasets
differ by adding or removing one row.
"""

from __future__ import annotations

import math

import numpy as np

from dpsynth.accounting import NoiseSource


def exponential_quantile(
    values: np.ndarray,
    *,
    target_rank: float,
    epsilon: float,
    lower: float,
    upper: float,
    noise: NoiseSource,
) -> float:
    """One epsilon-DP quantile by the exponential mechanism over the intervals of the data.

    The values are clipped to the public range ``[lower, upper]`` and sorted; together with the
    two ends they cut the range into ``n + 1`` intervals. Interval ``i`` (which has ``i`` values
    below it) is drawn with probability proportional to
    ``length_i * exp(-epsilon * |i - target_rank| / 2)`` and the output is uniform inside it.
    This is the exponential mechanism of McSherry and Talwar (FOCS 2007) with the Lebesgue base
    measure on ``[lower, upper]``, as used for quantiles by Smith ("Privacy-preserving
    statistical estimation with optimal convergence rates", STOC 2011) and, sampled per
    interval, by Gillenwater, Joseph and Kulesza ("Differentially private quantiles",
    ICML 2021). The draw uses the Gumbel-max trick.

    Privacy: the score of an output ``y`` is ``-|#{x < y} - target_rank|``. Adding one row
    raises the count by at most 1; when ``target_rank`` is ``q * n`` (for the row count ``n``
    of this column) it rises by ``q`` at the same time, in the same direction, so the score
    moves by at most ``max(q, 1 - q) <= 1``: sensitivity 1, hence epsilon-DP with the factor
    ``epsilon / 2``. ``lower`` and ``upper`` must not depend on the data.
    """
    if not lower < upper:
        raise ValueError(f"the search range needs lower < upper; got [{lower}, {upper}]")
    clipped = np.sort(np.clip(np.asarray(values, dtype=float), lower, upper))
    edges = np.concatenate([[lower], clipped, [upper]])
    lengths = np.diff(edges)
    with np.errstate(divide="ignore"):
        log_len = np.log(lengths)  # empty intervals (ties) get -inf: never drawn
    ranks = np.arange(lengths.size, dtype=float)
    scores = log_len - 0.5 * epsilon * np.abs(ranks - target_rank)
    i = int(np.argmax(scores + noise.gumbel(lengths.size)))
    return float(edges[i] + lengths[i] * noise.uniform(1)[0])


def grid_quantile(
    cell_counts: np.ndarray,
    *,
    target_rank: float,
    epsilon: float,
    lower: float,
    upper: float,
    noise: NoiseSource,
) -> float:
    """One epsilon-DP quantile from the counts of the values in equal cells of ``[lower, upper]``.

    ``cell_counts[j]`` counts the values (clipped to the public range) in cell ``j`` of a
    public grid of equal cells (:func:`grid_cells`), which sums over batches, so the table can
    be read in pieces. The mechanism is :func:`exponential_quantile` (McSherry and Talwar,
    FOCS 2007; Smith, STOC 2011; Gillenwater, Joseph and Kulesza, ICML 2021) run on the values
    rounded down to the lower edge of their cell: that rounding is row-local and uses only the
    public grid, so the guarantee is unchanged (epsilon-DP, score sensitivity 1). On rounded
    values every interval between neighbouring values is a union of whole cells, and all the
    points inside cell ``j`` have ``cell_counts[:j + 1].sum()`` values at or below them; so
    cell ``j`` is drawn with probability proportional to
    ``exp(-epsilon * |cumsum_j - target_rank| / 2)`` (equal widths) and the output is uniform
    inside it, exactly the distribution of :func:`exponential_quantile` on the rounded values.
    The rounding costs at most one cell width of accuracy.
    """
    if not lower < upper:
        raise ValueError(f"the search range needs lower < upper; got [{lower}, {upper}]")
    counts = np.asarray(cell_counts, dtype=float)
    ranks = np.cumsum(counts)
    scores = -0.5 * epsilon * np.abs(ranks - target_rank)
    i = int(np.argmax(scores + noise.gumbel(counts.size)))
    width = (upper - lower) / counts.size
    return float(min(lower + (i + noise.uniform(1)[0]) * width, upper))


def grid_cells(values: np.ndarray, *, lower: float, upper: float, cells: int) -> np.ndarray:
    """How many of ``values`` (clipped to ``[lower, upper]``) fall in each of ``cells`` equal
    cells: the input of :func:`grid_quantile`, summable over batches (int64, ``cells`` long)."""
    x = np.clip(np.asarray(values, dtype=float), lower, upper)
    idx = np.minimum(((x - lower) * (cells / (upper - lower))).astype(np.int64), cells - 1)
    return np.bincount(idx, minlength=cells).astype(np.int64, copy=False)


def histogram_threshold(epsilon: float, delta: float) -> float:
    """Threshold ``1 + ln(1 / (2 delta)) / epsilon`` of the thresholded Laplace histogram."""
    return 1.0 + math.log(1.0 / (2.0 * delta)) / epsilon


def thresholded_histogram(
    counts: np.ndarray, *, epsilon: float, delta: float, noise: NoiseSource
) -> np.ndarray:
    """Which observed values to release: a boolean mask over ``counts``.

    Laplace noise of scale ``1 / epsilon`` is added to each observed value's count and the
    values whose noisy count exceeds :func:`histogram_threshold` are kept (Korolova,
    Kenthapadi, Mishra and Ntoulas, "Releasing search queries and clicks privately",
    WWW 2009; Wilson et al., "Differentially private SQL with bounded user contribution",
    PETS 2020). With one row per person, adding a row changes one count by one, which the
    Laplace noise covers with epsilon; a value seen only in that row passes the threshold with
    probability exactly ``delta``. The release is (epsilon, delta)-DP.
    """
    counts = np.asarray(counts, dtype=float)
    noisy = counts + noise.laplace(counts.size, 1.0 / epsilon)
    return np.asarray(noisy > histogram_threshold(epsilon, delta))
