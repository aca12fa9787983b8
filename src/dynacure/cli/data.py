"""`dynacure data check DIR`: which public dataset files are present and readable, and what needs them.

The list of files comes from ``dynacure.io.public_data.DATASETS`` (the files the loaders read), so this
command, the loaders and the README's "Public data" section name the same layout. Exit codes: 0 every file
present and readable, 1 some missing or unreadable (the commands that then cannot run are named), 2 DIR
does not exist or is not a directory.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from dynacure.cli.console import make_console
from dynacure.cli.errors import cli_errors, err_console
from dynacure.io import public_data as pdata

app = typer.Typer(no_args_is_help=True)
console = make_console()

# Signals whose model `dynacure train-scorer` trains from the public data (unless the demo models are used).
TRAINED_SIGNALS = ("toxicity_transformer", "toxicity_ngram", "toxicity_minilm", "alignment")
NO_DATA_NEEDED = ("demo",)  # commands that run on the built-in generated corpus alone


def preset_needs(cfg: Any) -> list[str]:
    """What an experiment config needs from the public data, in the names ``DATASETS.used_by`` uses."""
    needs: list[str] = []
    demo = cfg.corpus.kind == "demo"
    if cfg.corpus.kind == "pool":
        needs.append(pdata.NEED_POOL)
    scorers = not cfg.scoring.demo_models and (
        any(s in TRAINED_SIGNALS for s in cfg.scoring.signals)
        # the trained judge, unless a Hugging Face classifier folder judges (evaluation.judge)
        or (cfg.learner.train and "toxicity" in cfg.evaluation.suites and cfg.evaluation.judge is None)
    )
    if scorers:
        needs.append(pdata.NEED_SCORERS)
    if getattr(cfg.learner, "base", "scratch") == "pretrained":  # the base built by `dynacure pretrain`
        needs.append(pdata.NEED_PRETRAIN)
    if "quality" in cfg.scoring.signals and not demo:
        needs.append(pdata.NEED_QUALITY)
    if cfg.learner.train:
        for suite in cfg.evaluation.suites:
            # the generated corpus brings its own prompts and held-out text for these two
            if demo and suite in ("toxicity", "perplexity"):
                continue
            if suite in pdata.SUITE_NEEDS:
                needs.append(pdata.SUITE_NEEDS[suite])
    return needs


def preset_requirements() -> dict[str, list[str]]:
    """``experiment --preset NAME`` -> its needs, for every shipped preset."""
    from dynacure.experiments.config import load_preset, preset_names

    return {f"experiment --preset {name}": preset_needs(load_preset(name)) for name in preset_names()}


def _condense(paths: list[str]) -> list[str]:
    """``folder/`` in place of every entry of a dataset folder when all of them are listed."""
    entries: dict[str, set[str]] = {}
    for ds in pdata.DATASETS:
        entries.setdefault(ds.folder, set()).update(f"{ds.folder}/{f.pattern}" for f in ds.files)
    out: list[str] = []
    for p in paths:
        folder = p.split("/", 1)[0]
        if entries.get(folder, set()) <= set(paths):
            if f"{folder}/" not in out:
                out.append(f"{folder}/")
        else:
            out.append(p)
    return out


def _status_cell(status: str) -> str:
    return {"present": "[green]present[/]", "missing": "[bold red]missing[/]",
            "unreadable": "[bold red]unreadable[/]"}[status]


def report(data_dir: Path) -> tuple[dict[str, Any], int]:
    """The check as a JSON-ready dict and its exit code (0 all present, 1 something missing/unreadable)."""
    checks = pdata.check_data_dir(data_dir)
    blocked = pdata.blocked_needs(checks)
    presets = preset_requirements()
    commands: dict[str, dict[str, Any]] = {}
    for need in dict.fromkeys(n for c in checks for n in c.used_by):
        commands[need] = {"ok": need not in blocked, "missing": blocked.get(need, [])}
    for name, needs in presets.items():
        missing = sorted({p for n in needs for p in blocked.get(n, [])})
        commands[name] = {"ok": not missing, "needs": needs, "blocked": [n for n in needs if n in blocked],
                          "missing": missing}
    for name in NO_DATA_NEEDED:
        commands[name] = {"ok": True, "needs": [], "missing": []}
    sources = {ds.folder: {"name": ds.name, "source": ds.source, "licence": ds.licence}
               for ds in pdata.DATASETS}
    out = {
        "data_dir": str(data_dir.resolve()),
        "ok": not blocked,
        "files": [{"dataset": c.dataset, "path": c.path, "status": c.status, "detail": c.detail,
                   "found": c.found, "used_by": list(c.used_by)} for c in checks],
        "datasets": sources,
        "commands": commands,
    }
    return out, 0 if not blocked else 1


def print_report(rep: dict[str, Any]) -> None:
    table = Table(title=f"public data in {rep['data_dir']}", show_lines=False)
    for col in ("dataset", "file", "status", "detail", "needed by"):
        table.add_column(col, overflow="fold")
    for f in rep["files"]:
        table.add_row(f["dataset"], f["path"], _status_cell(f["status"]), f["detail"],
                      ", ".join(f["used_by"]))
    console.print(table)
    cannot = {k: v for k, v in rep["commands"].items() if not v["ok"]}
    if not cannot:
        console.print("[green]every dataset file is present and readable[/]: "
                      "every command and preset can run.")
        return
    n_bad = sum(f["status"] != "present" for f in rep["files"])
    console.print(f"[bold red]{n_bad} of {len(rep['files'])} dataset files missing or unreadable.[/] "
                  "These cannot run until they are there:")
    for name, v in cannot.items():
        if v.get("blocked"):  # a preset: name the steps it cannot do, the files are listed above
            console.print(f"  {name}: cannot do {', '.join(v['blocked'])}")
        else:
            console.print(f"  {name}: needs {', '.join(_condense(v['missing']))}")
    can = [k for k, v in rep["commands"].items() if v["ok"]]
    console.print(f"Can run: {', '.join(can)}.")


@app.command("check")
@cli_errors
def check(
    data_dir: Path = typer.Argument(None, metavar="DIR", show_default=False,
                                    help="public datasets folder (default: $DYNACURE_DATA or "
                                         "../shared/data)"),
    as_json: bool = typer.Option(False, "--json", help="print the check as JSON instead of a table"),
) -> None:
    """Report, for each public dataset file the project reads, whether it is present and readable, and
    which commands, evaluation suites and experiment presets need it.

    Exit code 0: every file present and readable. 1: some missing or unreadable (listed with what then
    cannot run). 2: DIR does not exist or is not a directory.
    """
    root = data_dir if data_dir is not None else pdata.default_data_dir()
    if not root.exists():
        err_console.print(f"[bold red]error:[/] {root}: data directory does not exist (give the folder "
                          f"that holds the dataset folders, or set ${pdata.DEFAULT_DATA_ENV})")
        raise typer.Exit(2)
    if not root.is_dir():
        err_console.print(f"[bold red]error:[/] {root}: not a directory (give the folder that holds the "
                          "dataset folders)")
        raise typer.Exit(2)
    rep, code = report(root)
    if as_json:
        typer.echo(json.dumps(rep, indent=2))
    else:
        print_report(rep)
    raise typer.Exit(code)
