"""The config loader refuses bad files with a message naming the file and the field, never a traceback."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import Field

from dynacure.config import ConfigError, StrictModel, load_toml


class Inner(StrictModel):
    budget: float = Field(gt=0, le=1)


class Cfg(StrictModel):
    name: str
    seeds: list[int] = [0]
    inner: Inner


def test_valid(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text('name = "x"\nseeds = [1, 2]\n[inner]\nbudget = 0.5\n')
    cfg = load_toml(p, Cfg)
    assert cfg.seeds == [1, 2] and cfg.inner.budget == 0.5


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ('name = "x"\n[inner]\nbudget = 1.5\n', "inner.budget"),
        ('name = "x"\n[inner]\nbudget = "half"\n', "inner.budget"),
        ('name = "x"\ntypo = 1\n[inner]\nbudget = 0.5\n', "typo"),
        ("[inner]\nbudget = 0.5\n", "name"),
        ('name = "x"\n[inner\n', "invalid TOML"),
    ],
)
def test_errors_name_file_and_field(tmp_path, text, needle):
    p = tmp_path / "bad.toml"
    p.write_text(text)
    with pytest.raises(ConfigError) as exc:
        load_toml(p, Cfg)
    assert str(p) in str(exc.value) and needle in str(exc.value)


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_toml(tmp_path / "nope.toml", Cfg)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_only_raise_config_error(tmp_path_factory, blob):
    p = tmp_path_factory.mktemp("fuzz") / "c.toml"
    p.write_bytes(blob)
    try:
        load_toml(p, Cfg)
    except ConfigError as exc:
        assert str(p) in str(exc)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.text(max_size=8), st.one_of(st.none(), st.integers(), st.text(max_size=5),
                                                       st.lists(st.integers(), max_size=3)), max_size=4))
def test_random_structures_only_raise_config_error(data):
    from dynacure.config import validate_config

    try:
        validate_config(data, Cfg, origin="fuzz.toml")
    except ConfigError as exc:
        assert "fuzz.toml" in str(exc)
