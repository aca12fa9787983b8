"""How the commands' help reads: valid values listed from the registries, click's usage conventions.

Help texts may name a registry with a marker (``REGISTRY_MARKERS``: ``@@strategies@@``, ``@@signals@@``,
``@@suites@@``, ``@@presets@@``); ``DynacureCommand`` replaces it with every registered name when help is
shown. Resolved then and not when the command is defined, because listing the strategies imports every
selector module (about 1.5 s) and the command line should not pay that for each run.

``DynacureCommand`` also keeps Typer's type labels off flags (``--redact-pii`` takes no ``<bool>`` value)
and writes arguments in the usage line as ``CORPUS`` / ``[CONFIG]`` (Typer 0.29 writes ``{corpus}``).
``use_dynacure_help(app)`` makes it the class of every command of an app and its sub-apps.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import typer
from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption


def _strategies() -> list[str]:
    from dynacure.pipeline.strategies import available_selectors

    return available_selectors()


def _signals() -> list[str]:
    from dynacure.signals.base import available_signals

    return available_signals()


def _suites() -> list[str]:
    from dynacure.evaluation.suites import available_suites

    return available_suites()


def _presets() -> list[str]:
    from dynacure.experiments.config import preset_names

    return preset_names()


REGISTRY_MARKERS: dict[str, Callable[[], list[str]]] = {
    "@@strategies@@": _strategies,
    "@@signals@@": _signals,
    "@@suites@@": _suites,
    "@@presets@@": _presets,
}


def fill_markers(text: str) -> str:
    """``text`` with every registry marker replaced by the registered names, comma-separated."""
    for marker, names in REGISTRY_MARKERS.items():
        if marker in text:
            text = text.replace(marker, ", ".join(names()))
    return text


def _tidy_params(command: Any, ctx: Any) -> None:
    """Fill registry markers and drop the type label of flags, in place, before help is rendered."""
    # Typer 0.29 ships its own copy of click: the parameter classes are Typer's, not ``click``'s.
    for param in command.get_params(ctx):  # with the --help option click adds
        if isinstance(param, TyperOption):
            if param.help:
                param.help = fill_markers(param.help)
            if param.is_flag and param.metavar is None:
                param.metavar = ""  # a flag takes no value: no "<bool>" type label
        elif isinstance(param, TyperArgument) and param.metavar is None:
            param.metavar = (param.name or "").upper()
    if command.help:
        command.help = fill_markers(command.help)


class DynacureGroup(TyperGroup):
    """The top-level app and its sub-apps: flags without a ``<bool>`` label."""

    def format_help(self, ctx: Any, formatter: Any) -> None:
        _tidy_params(self, ctx)
        super().format_help(ctx, formatter)


class DynacureCommand(TyperCommand):
    """A Typer command whose help lists registry values and follows click's usage conventions."""

    def format_help(self, ctx: Any, formatter: Any) -> None:
        _tidy_params(self, ctx)
        super().format_help(ctx, formatter)

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            if isinstance(param, TyperArgument):
                name = param.metavar or (param.name or "").upper()
                piece = name if param.required else f"[{name}]"
                pieces.append(piece + ("..." if param.nargs != 1 else ""))
        return pieces


def use_dynacure_help(app: typer.Typer) -> None:
    """Make ``DynacureCommand`` (``DynacureGroup``) the class of every command (app) of ``app`` and of its
    sub-apps that has no class of its own."""
    if not isinstance(app.info.cls, type) or app.info.cls is TyperGroup:  # Typer's default placeholder
        app.info.cls = DynacureGroup
    for info in app.registered_commands:
        if info.cls is None or info.cls is TyperCommand:  # Typer's default: no class chosen
            info.cls = DynacureCommand
    for group in app.registered_groups:
        if group.typer_instance is not None:
            use_dynacure_help(group.typer_instance)
