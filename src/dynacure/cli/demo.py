"""`dynacure demo`: the whole loop on the built-in generated corpus, ending with an HTML report."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from dynacure.cli.console import make_console
from dynacure.cli.errors import cli_errors
from dynacure.cli.paths import OVERWRITE_HELP


def register(app: typer.Typer) -> None:
    @app.command("demo")
    @cli_errors
    def demo_cmd(
        out: Path = typer.Option(Path("demo-out"), "--out", "-o", help="Folder for the runs and the report."),
        policy: str = typer.Option("ppo", "--policy", help="The learned policy: ppo or bandit."),
        docs: int = typer.Option(2000, "--docs", help="Documents in the generated corpus."),
        tokens: int = typer.Option(150_000, "--tokens", help="Training tokens of each strategy's learner."),
        seed: int = typer.Option(0, "--seed"),
        # Hidden: smaller runs for tests and quick checks (the defaults are the measured demo sizes).
        policy_steps: int | None = typer.Option(None, "--policy-steps", hidden=True, min=1),
        prompts: int = typer.Option(50, "--prompts", hidden=True, min=1),
        samples: int = typer.Option(8, "--samples", hidden=True, min=1),
        overwrite: bool = typer.Option(False, "--overwrite", help=OVERWRITE_HELP),
    ) -> None:
        """Generate a corpus, score it, curate with B0/B1/B2 and an RL policy, train, evaluate, report."""
        from dynacure.cli.paths import check_out_path

        check_out_path(out, "dir")
        import torch

        from dynacure.cli.experiment import RichEvents, open_runs, progress_bar, summary_table
        from dynacure.experiments.demo import demo_config
        from dynacure.experiments.runner import describe_reuse, run_experiment
        from dynacure.report.html import build_report

        # One thread: the demo's models are so small that a second thread only adds synchronisation
        # (measured: 20 training steps took 3.6 s with one thread and 37 s with two on a busy 2-core box).
        torch.set_num_threads(1)
        cfg = demo_config(n_docs=docs, policy=policy, seed=seed, max_tokens=tokens, prompts=prompts,
                          samples=samples, policy_steps=policy_steps)
        console = make_console(stderr=True)
        console.print("[bold]dynacure demo[/]: generated corpus -> scores -> B0 random, B1 heuristic, "
                      f"B2 classifier, RL {policy} -> a small GPT per strategy at equal tokens -> "
                      "toxicity + perplexity -> report")
        # Checked before any work: a folder made with another config or environment (or holding another
        # command's run) is refused here unless --overwrite, and a resume says plainly what it reuses.
        replaced = open_runs(cfg, out, "demo", overwrite)
        if replaced:
            console.print(replaced, soft_wrap=True, highlight=False, markup=False)
        if (out / "experiment.json").exists():
            reuse = describe_reuse(cfg, out)
            if reuse:
                console.print(reuse)
        t0 = time.perf_counter()
        with progress_bar(console) as progress:
            ev = RichEvents(progress, console)
            results = run_experiment(cfg, out, events=ev.events(in_process=True), workers=1)
            task = progress.add_task("writing the report", total=None)
            report = build_report(out, out / "report.html")
            progress.update(task, total=1, completed=1)
        console.print(summary_table(results))
        console.print(f"finished in {time.perf_counter() - t0:.0f}s")
        console.print(f"report: [bold]{report.resolve()}[/]")
        typer.echo(str(report.resolve()))
