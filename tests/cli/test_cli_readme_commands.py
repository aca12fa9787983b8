"""The README's command list is the CLI's: every command, with its arguments as `--help` prints them."""

from __future__ import annotations

import re
from pathlib import Path

import click
import typer

from dynacure.cli.main import app

README = Path(__file__).resolve().parents[2] / "README.md"


def _cli_usages() -> dict[str, str]:
    """``{"curate": "CORPUS", "pool build": "", ...}``: each leaf command's usage, options left out."""
    out: dict[str, str] = {}

    def walk(cmd: click.Command, ctx: click.Context, prefix: str) -> None:
        for name in cmd.list_commands(ctx):  # type: ignore[attr-defined]
            sub = cmd.get_command(ctx, name)  # type: ignore[attr-defined]
            sub_ctx = click.Context(sub, info_name=name, parent=ctx)
            if hasattr(sub, "list_commands"):
                walk(sub, sub_ctx, f"{prefix}{name} ")
            else:
                pieces = [p for p in sub.collect_usage_pieces(sub_ctx) if p != "[OPTIONS]"]
                out[f"{prefix}{name}"] = " ".join(pieces)

    root = typer.main.get_command(app)
    walk(root, click.Context(root, info_name="dynacure"), "")
    return out


def _readme_usages() -> dict[str, str]:
    text = README.read_text(encoding="utf-8")
    block = text.split("## Commands", 1)[1].split("```", 2)[1]
    out: dict[str, str] = {}
    for line in block.splitlines():
        m = re.match(r"dynacure ([a-z-]+(?: [a-z-]+)?)((?: +[A-Z\[][A-Z_.\]\[]*)*)\s+#", line)
        if m:
            out[m.group(1)] = " ".join(m.group(2).split())
    return out


def test_readme_lists_every_command_with_its_arguments():
    cli, readme = _cli_usages(), _readme_usages()
    assert len(cli) >= 12
    assert sorted(readme) == sorted(cli), f"README lists {sorted(readme)}, the CLI has {sorted(cli)}"
    for name, usage in cli.items():
        assert readme[name] == usage, f"README: `dynacure {name} {readme[name]}`, --help: `{usage}`"


def test_readme_promises_no_exit_code_the_cli_never_raises():
    # an exit code promised for "a command not built" must be raised somewhere
    text = README.read_text(encoding="utf-8")
    assert "exits with code 3" not in text
