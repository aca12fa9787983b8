"""The Rich progress columns every long loop shows (training, fine-tuning, scoring shards): one layout, so
bars read the same in every command, and one place that imports Rich's column classes; ``StageProgress``
for a command of stages, which also speaks when its output is a log (issue 28, item 8: no silence)."""

from __future__ import annotations

import time
from collections.abc import Callable

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


def bar_columns(label: str, *fields: str) -> tuple[ProgressColumn, ...]:
    """``label``, a bar, done/total, one text column per ``fields`` template (e.g.
    ``"loss {task.fields[loss]}"``), elapsed and remaining time."""
    return (TextColumn(f"[bold]{label}"), BarColumn(), MofNCompleteColumn(),
            *(TextColumn(f) for f in fields), TimeElapsedColumn(), TimeRemainingColumn())

# A command quicker than this prints no progress lines in a log (StageProgress): "a few seconds".
QUIET_SECONDS = 3.0


class StageProgress:
    """The progress of a command that runs in stages (curate: read, select, policy steps, write), called as
    ``progress(stage, done, total)``.

    On a terminal: one Rich line (spinner, what is being done, elapsed time) redrawn in place. In a log or
    a captured output, where a redrawn line shows nothing: a plain line when a stage starts and, for a
    stage with a total (the loop's policy steps), at each quarter, so a long step is never silent; but
    none in the first ``QUIET_SECONDS`` of the command, so a quick run (or a quick failure, whose one
    line is its error) prints only its result. ``describe(stage, done, total)`` words a call; the
    default is ``stage: done of total``."""

    def __init__(self, console: Console, describe: Callable[[str, int, int], str] | None = None) -> None:
        self.console = console
        self.describe = describe or (lambda s, d, t: f"{s}: {d:,} of {t:,}" if t else s)
        self.live = console.is_terminal
        self._bar = Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                             console=console, transient=True, disable=not self.live)
        self._task = self._bar.add_task("starting", total=None)
        self._stage: str | None = None
        self._quarter = -1
        self._start = time.monotonic()

    def __enter__(self) -> StageProgress:
        self._bar.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._bar.__exit__(None, None, None)

    def __call__(self, stage: str, done: int, total: int) -> None:
        text = self.describe(stage, done, total)
        if self.live:
            self._bar.update(self._task, description=text)
            return
        quarter = 4 * done // total if total > 0 else 0
        if time.monotonic() - self._start < QUIET_SECONDS:
            return
        if stage != self._stage or quarter > self._quarter:
            self._stage, self._quarter = stage, quarter
            self.console.print(text, soft_wrap=True, highlight=False, markup=False)
