"""Pydantic configuration models loaded from TOML, with errors that name the file and the field."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

M = TypeVar("M", bound=BaseModel)


HOME_ENV = "DYNACURE_HOME"


def dynacure_home() -> Path:
    """Where dynacure caches what it builds (scorers, the pre-trained base): ``$DYNACURE_HOME``, else
    ``~/.cache/dynacure``."""
    home = os.environ.get(HOME_ENV)
    return Path(home) if home else Path.home() / ".cache" / "dynacure"


class ConfigError(ValueError):
    """A configuration file that cannot be used; the message says which file and which field."""


class StrictModel(BaseModel):
    """Base for every config: unknown keys are refused (a typo must not be silently ignored)."""

    model_config = ConfigDict(extra="forbid", frozen=False)


def load_toml(path: str | Path, model: type[M]) -> M:
    """Read ``path`` as TOML and validate it against ``model``; refuse bad files before any work starts."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read config file: {exc.strerror or exc}") from exc
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{p}: not UTF-8 text (byte {exc.start})") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{p}: invalid TOML: {exc}") from exc
    return validate_config(data, model, origin=str(p))


def validate_config(data: object, model: type[M], origin: str = "<config>") -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            where = ".".join(str(x) for x in err["loc"]) or "(top level)"
            problems.append(f"  field {where}: {err['msg']}")
        raise ConfigError(f"{origin}: invalid configuration\n" + "\n".join(problems)) from None
