"""The Rich progress columns every long loop shows (training, fine-tuning, scoring shards): one layout, so
bars read the same in every command, and one place that imports Rich's column classes."""

from __future__ import annotations

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


def bar_columns(label: str, *fields: str) -> tuple[ProgressColumn, ...]:
    """``label``, a bar, done/total, one text column per ``fields`` template (e.g.
    ``"loss {task.fields[loss]}"``), elapsed and remaining time."""
    return (TextColumn(f"[bold]{label}"), BarColumn(), MofNCompleteColumn(),
            *(TextColumn(f) for f in fields), TimeElapsedColumn(), TimeRemainingColumn())
