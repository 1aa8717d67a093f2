"""Where the marginal synthesizers get their exact counts: the one seam to the private rows.

AIM and MST read the private table only to count marginals (McKenna, Mullins, Sheldon and
Miklau, VLDB 2022, Section 4: every measurement is a marginal query). A :class:`CountSource`
answers "the exact counts of these marginals" on the current (possibly compressed) domain,
and nothing else. Two sources:

* :class:`ArrayCounts`, the table's integer codes in memory (today's path);
* :class:`ChunkedCounts`, codes read chunk by chunk (an on-disk memory map written by one
  streaming pass over the input, :mod:`dpsynth.data.stream`), with bounded memory: every
  requested marginal is counted in one pass over the chunks and summed.

Counts are integers summed exactly, so both give identical numbers, hence identical fits for
the same seed. Counted marginals are cached (AIM measures marginals it already counted for
its candidate scores). The noise is never added here (:mod:`.measure`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

from dpsynth.synthesizers.marginal.compress import ColumnMerge, compress_codes
from dpsynth.synthesizers.marginal.junction import Clique

#: Rows per chunk read by :class:`ChunkedCounts` (codes of 15 one-byte columns: 30 MB).
CHUNK_ROWS = 2_000_000


@runtime_checkable
class CountSource(Protocol):
    """Exact marginal counts of the private table (private: never released without noise)."""

    @property
    def n_rows(self) -> int: ...

    def counts(self, cliques: Sequence[Clique], domain: Sequence[int]) -> list[np.ndarray]:
        """Float arrays of counts, shaped ``[domain[a] for a in clique]``, one per clique."""
        ...

    def compressed(self, merges: Sequence[ColumnMerge], old_domain: Sequence[int]
                   ) -> CountSource:
        """The same table on the compressed codes (:mod:`.compress`)."""
        ...


def _flat_index(codes: np.ndarray, attrs: Clique, shape: Sequence[int],
                lookups: Sequence[np.ndarray | None] | None = None) -> np.ndarray:
    """Row-major cell index of each row in the marginal over ``attrs`` (``intp``)."""
    flat: np.ndarray | None = None
    for a, size in zip(attrs, shape, strict=True):
        col = codes[:, a]
        table = None if lookups is None else lookups[a]
        col = table[col] if table is not None else col.astype(np.intp)
        flat = col if flat is None else flat * int(size) + col
    assert flat is not None
    return flat


def count_chunk(codes: np.ndarray, attrs: Clique, domain: Sequence[int],
                lookups: Sequence[np.ndarray | None] | None = None) -> np.ndarray:
    """Integer counts of the marginal over ``attrs`` in one chunk of codes (``int64``)."""
    shape = [int(domain[a]) for a in attrs]
    if not attrs:
        return np.array(len(codes), dtype=np.int64)
    flat = _flat_index(codes, attrs, shape, lookups)
    return np.bincount(flat, minlength=int(np.prod(shape))).reshape(shape).astype(np.int64)


class _Cached:
    """Shared cache of counted marginals, keyed by clique (the domain is fixed per source)."""

    def __init__(self) -> None:
        self._cache: dict[Clique, np.ndarray] = {}

    @property
    def n_rows(self) -> int:
        raise NotImplementedError

    def counts(self, cliques: Sequence[Clique], domain: Sequence[int]) -> list[np.ndarray]:
        cliques = [tuple(c) for c in cliques]
        missing = list(dict.fromkeys(c for c in cliques if c not in self._cache))
        if missing:
            self._cache.update(zip(missing, self._count(missing, domain), strict=True))
        return [self._cache[c].copy() for c in cliques]

    def _count(self, cliques: Sequence[Clique], domain: Sequence[int]) -> list[np.ndarray]:
        raise NotImplementedError


class ArrayCounts(_Cached):
    """Counts from the rows × columns integer codes held in memory."""

    def __init__(self, codes: np.ndarray):
        super().__init__()
        self.codes = codes

    @property
    def n_rows(self) -> int:
        return len(self.codes)

    def _count(self, cliques: Sequence[Clique], domain: Sequence[int]) -> list[np.ndarray]:
        return [count_chunk(self.codes, c, domain).astype(float) for c in cliques]

    def compressed(self, merges: Sequence[ColumnMerge], old_domain: Sequence[int]
                   ) -> ArrayCounts:
        return ArrayCounts(compress_codes(self.codes, merges, old_domain))


class ChunkedCounts(_Cached):
    """Counts summed over chunks of raw codes, with per-column lookups for compression.

    ``chunks`` yields rows × columns arrays of the raw codes (any unsigned dtype); one call
    of :meth:`counts` makes one pass over them whatever the number of marginals asked.
    """

    def __init__(self, chunks: ChunkReader, lookups: Sequence[np.ndarray | None] | None = None):
        super().__init__()
        self.chunks = chunks
        self.lookups = lookups

    @property
    def n_rows(self) -> int:
        return self.chunks.n_rows

    def _count(self, cliques: Sequence[Clique], domain: Sequence[int]) -> list[np.ndarray]:
        totals = [np.zeros([int(domain[a]) for a in c], dtype=np.int64) for c in cliques]
        for chunk in self.chunks:
            for total, c in zip(totals, cliques, strict=True):
                total += count_chunk(chunk, c, domain, self.lookups)
        return [t.astype(float) for t in totals]

    def compressed(self, merges: Sequence[ColumnMerge], old_domain: Sequence[int]
                   ) -> ChunkedCounts:
        lookups = []
        for i, (m, size) in enumerate(zip(merges, old_domain, strict=True)):
            table = m.lookup(size).astype(np.intp)
            old = None if self.lookups is None else self.lookups[i]
            lookups.append(table if old is None else table[old])
        return ChunkedCounts(self.chunks, lookups)


class ChunkReader(Protocol):
    """Re-iterable chunks of raw codes with a known row count."""

    @property
    def n_rows(self) -> int: ...

    def __iter__(self) -> Iterator[np.ndarray]: ...


class MemmapChunks:
    """Chunks of a rows × columns code matrix (a memory map), ``chunk_rows`` at a time."""

    def __init__(self, codes: np.ndarray, chunk_rows: int = CHUNK_ROWS):
        self.codes = codes
        self.chunk_rows = int(chunk_rows)

    @property
    def n_rows(self) -> int:
        return len(self.codes)

    def __iter__(self) -> Iterator[np.ndarray]:
        for start in range(0, len(self.codes), self.chunk_rows):
            yield np.asarray(self.codes[start:start + self.chunk_rows])


class FileChunks:
    """Chunks of a rows × columns code matrix stored raw in a file, read ``chunk_rows`` at a
    time with plain reads (unlike a memory map, the pages read do not stay in this process'
    resident memory)."""

    def __init__(self, path: str, n_rows: int, n_columns: int, dtype: np.dtype[Any],
                 chunk_rows: int = CHUNK_ROWS):
        self.path = path
        self._n = int(n_rows)
        self.n_columns = int(n_columns)
        self.dtype = np.dtype(dtype)
        self.chunk_rows = int(chunk_rows)

    @property
    def n_rows(self) -> int:
        return self._n

    def __iter__(self) -> Iterator[np.ndarray]:
        with open(self.path, "rb") as fh:
            for start in range(0, self._n, self.chunk_rows):
                rows = min(self.chunk_rows, self._n - start)
                flat = np.fromfile(fh, dtype=self.dtype, count=rows * self.n_columns)
                yield flat.reshape(rows, self.n_columns)


def as_count_source(data: np.ndarray | CountSource) -> CountSource:
    """A raw code matrix becomes an :class:`ArrayCounts`; a source is returned as it is."""
    if isinstance(data, np.ndarray):
        return ArrayCounts(data)
    return data
