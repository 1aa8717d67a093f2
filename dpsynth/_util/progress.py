"""Progress callbacks: the two shapes every long-running function accepts, and a rich bar."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

#: ``progress(done, total)``: called as work advances.
ProgressFn = Callable[[int, int], None]
#: ``progress(stage, done, total)``: the same for work in named stages.
StageProgressFn = Callable[[str, int, int], None]


def stage(progress: StageProgressFn | None, label: str, *,
          announce: bool = False) -> ProgressFn | None:
    """A stage callback bound to ``label``, as a ``progress(done, total)`` callback.

    With ``announce``, ``progress(label, 0, 1)`` is called at once, so that a bar shows the
    stage before its first step finishes.
    """
    if progress is None:
        return None
    if announce:
        progress(label, 0, 1)

    def tick(done: int, total: int) -> None:
        progress(label, done, total)

    return tick


@contextmanager
def progress_bar(enabled: bool, description: str, total: int) -> Iterator[ProgressFn | None]:
    """A rich progress bar on stderr with an ETA, as a ``progress(done, total)`` callback.

    Yields None when ``enabled`` is false, so callers can pass the result straight on.
    """
    if not enabled:
        yield None
        return
    bar = _new_bar()
    task = bar.add_task(description, total=total)

    def update(done: int, total_now: int) -> None:
        bar.update(task, completed=done, total=total_now)

    bar.start()
    try:
        yield update
    finally:
        bar.stop()


def _new_bar() -> Any:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    return Progress("[progress.description]{task.description}", BarColumn(),
                    MofNCompleteColumn(), TimeRemainingColumn(),
                    console=Console(stderr=True), transient=False)


__all__ = ["ProgressFn", "StageProgressFn", "progress_bar", "stage"]
