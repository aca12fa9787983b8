"""The Rich consoles of the command line: wide enough for the comparison tables when output goes to a file."""

from __future__ import annotations

from rich.console import Console

LOG_WIDTH = 200  # a log file has no width; Rich's default of 80 columns squeezes the wide tables to "…"


def make_console(stderr: bool = False) -> Console:
    console = Console(stderr=stderr)
    if not console.is_terminal:
        console.width = max(console.width, LOG_WIDTH)
    return console
