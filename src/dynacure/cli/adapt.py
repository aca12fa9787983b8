"""`dynacure adapt --out DIR`: switch the reward in the middle of a loop run and measure how many steps the
learned policy needs to re-adapt (a static filter cannot), then transfer a policy to a larger learner."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from dynacure.cli.console import make_console
from dynacure.cli.errors import cli_errors
from dynacure.cli.paths import OVERWRITE_HELP, check_out_path, claim_out_dir, make_request


def _fmt(x: object) -> str:
    if x is None:
        return "n/a"
    if isinstance(x, float):
        return f"{x:.4g}"
    return str(x)


def register(app: typer.Typer) -> None:
    @app.command("adapt")
    @cli_errors
    def adapt_cmd(
        out: Path = typer.Option(..., "--out", "-o", help="Output folder (adapt.json, adaptivity.png)."),
        steps: int = typer.Option(120, "--steps", help="Loop steps after the switch."),
        switch_at: int = typer.Option(120, "--switch-at", help="Loop steps before the switch."),
        switch: str = typer.Option("weights", "--switch", help="weights | safety (add a safety category)."),
        weights_before: str = typer.Option(
            "0,0,1", "--weights-before", help="Reward A: safety,alignment,utility."
        ),
        weights_after: str = typer.Option(
            "0.7,0,0.3", "--weights-after", help="Reward B: safety,alignment,utility."
        ),
        algorithms: str = typer.Option(
            "ppo,bandit", "--algorithms", help="Comma-separated: ppo, reinforce, bandit."
        ),
        n_docs: int = typer.Option(1500, "--n-docs", help="Demo corpus size."),
        budget: float = typer.Option(0.75, "--budget", help="Share of candidate tokens selected."),
        window: int = typer.Option(
            10, "--window", help="Moving-average window of the re-adaptation measure."
        ),
        learner: bool = typer.Option(
            True, "--learner/--no-learner", help="Train a small GPT inside the loop."
        ),
        transfer: bool = typer.Option(
            True, "--transfer/--no-transfer", help="Transfer nano -> larger learner."
        ),
        transfer_to: str = typer.Option(
            "tiny", "--transfer-to", help="Larger learner: tiny, or base (the pre-trained base of `dynacure "
            "pretrain`, fine-tuned in the loop)."),
        transfer_steps: int = typer.Option(120, "--transfer-steps", help="Loop steps per transfer run."),
        seed: int = typer.Option(0, "--seed"),
        overwrite: bool = typer.Option(False, "--overwrite", help=OVERWRITE_HELP),
    ) -> None:
        """Reward switch mid-run: re-adaptation steps of learned policies vs a static filter, plus policy
        transfer from a nano to a larger learner. Writes OUT/adapt.json and OUT/adaptivity.png."""
        check_out_path(out, "dir")
        import torch

        from dynacure.config import validate_config
        from dynacure.experiments.adaptivity import AdaptConfig, run_adaptivity
        from dynacure.selectors.reward import RewardWeights

        torch.set_num_threads(1)  # small models: one thread each is fastest on a shared CPU
        cfg = validate_config(
            {
                "steps_before": switch_at,
                "steps_after": steps,
                "switch": switch,
                "weights_before": RewardWeights.parse(weights_before).model_dump(),
                "weights_after": RewardWeights.parse(weights_after).model_dump(),
                "algorithms": [a.strip() for a in algorithms.split(",") if a.strip()],
                "n_docs": n_docs,
                "budget": budget,
                "window": window,
                "use_learner": learner,
                "transfer": transfer,
                "transfer_to": transfer_to,
                "transfer_steps": transfer_steps,
                "seed": seed,
            },
            AdaptConfig,
            origin="dynacure adapt",
        )
        # another run's output in OUT is refused before any work (the same config re-runs)
        claim = claim_out_dir(out, "adapt", make_request(**cfg.model_dump()), overwrite=overwrite)
        console = make_console(stderr=True)
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        ) as prog:
            task = prog.add_task("scoring the demo corpus", total=None)

            def progress(what: str, done: int, total: int) -> None:
                prog.update(task, description=what, completed=done, total=total)

            result = run_adaptivity(cfg, out, progress)
        claim.finish()
        t = Table(
            title=f"re-adaptation after the switch at step {switch_at} "
            f"({result['switch']['reward_a']} -> {result['switch']['reward_b']})"
        )
        for col in ("policy", "toxic share before", "after (final)", "re-adaptation steps", "s/step"):
            t.add_column(col, justify="right" if col != "policy" else "left")
        for algo, run in result["policies"].items():
            m = run["readaptation"]
            t.add_row(algo, _fmt(m["pre"]), _fmt(m["final"]), _fmt(m["steps"]), _fmt(run["seconds_per_step"]))
        sm = result["static_filter"]["readaptation"]
        t.add_row("static filter", _fmt(sm["pre"]), _fmt(sm["final"]), "never (fixed selection)", "-")
        make_console().print(t)
        if result["transfer"]:
            tt = Table(title="transfer of a policy learned on nano")
            cols = (
                "learner",
                "policy",
                "toxic share selected",
                "train loss",
                "held-out clean loss",
                "held-out toxic loss",
            )
            for col in cols:
                tt.add_column(col)
            for r in result["transfer"]["learners"]:
                tt.add_row(
                    r["learner"],
                    r["policy"],
                    _fmt(r["toxic_share_selected"]),
                    _fmt(r["train_loss_last_fifth"]),
                    _fmt(r["heldout_clean_loss"]),
                    _fmt(r["heldout_toxic_loss"]),
                )
            make_console().print(tt)
        make_console().print(f"adapt.json and adaptivity.png in {out}")
