"""dynacure.io.jsonfile: the one reader of versioned JSON files names the file, the line of bad JSON, the
version found and the versions read, for every way a file can be wrong."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dynacure.io.jsonfile import FormatError, InvalidJSONError, check_version, read_versioned


def _write(path: Path, obj: object) -> Path:
    path.write_text(json.dumps(obj), encoding="utf-8")
    return path


def test_a_supported_file_is_returned_as_read(tmp_path: Path) -> None:
    data = {"format_version": 2, "kind": "k", "rows": [1, 2, 3]}
    p = _write(tmp_path / "a.json", data)
    assert read_versioned(p, 2) == data
    assert read_versioned(p, {1, 2}, kind="k") == data


def test_bad_json_names_the_file_line_and_column(tmp_path: Path) -> None:
    p = tmp_path / "bad.json"
    p.write_text('{\n  "format_version": 1,\n  "x": [1, 2,,]\n}\n', encoding="utf-8")
    with pytest.raises(InvalidJSONError) as exc:
        read_versioned(p, 1, hint="delete it")
    msg = str(exc.value)
    assert msg.startswith(f"{p}: not valid JSON (line 3, column 14)"), msg
    assert msg.endswith("; delete it"), msg
    assert isinstance(exc.value, FormatError) and isinstance(exc.value, ValueError)
    assert exc.value.path == str(p)


def test_bytes_that_are_not_utf8_are_bad_json_naming_the_file(tmp_path: Path) -> None:
    p = tmp_path / "latin1.json"
    p.write_bytes(b'{"format_version": 1, "name": "caf\xe9"}')
    with pytest.raises(InvalidJSONError, match=rf"^{p}: not valid JSON \(not UTF-8 at byte 34\)$"):
        read_versioned(p, 1)


@pytest.mark.parametrize(("found", "shown"), [(2, "2"), ("1", "'1'"), (True, "True"), (None, "None"),
                                              (1.0, "1.0")])
def test_another_version_names_file_found_and_supported(tmp_path: Path, found: object, shown: str) -> None:
    p = _write(tmp_path / "v.json", {"format_version": found})
    with pytest.raises(FormatError) as exc:
        read_versioned(p, 1, what="policy", hint="retrain it")
    assert str(exc.value) == (f"{p}: policy format_version {shown} is not supported "
                              "(this dynacure reads version 1); retrain it")
    assert exc.value.found == found and exc.value.supported == frozenset({1})
    assert not isinstance(exc.value, InvalidJSONError)


def test_several_supported_versions_are_listed_in_order(tmp_path: Path) -> None:
    p = _write(tmp_path / "v.json", {"format_version": 7})
    with pytest.raises(FormatError, match=r"format_version 7 is not supported \(this dynacure reads "
                                          r"versions 1, 3, 4\)$"):
        read_versioned(p, [4, 1, 3])


def test_a_missing_version_is_its_own_message(tmp_path: Path) -> None:
    p = _write(tmp_path / "m.json", {"rows": []})
    with pytest.raises(FormatError) as exc:
        read_versioned(p, 1)
    assert str(exc.value) == f"{p}: format_version missing (this dynacure reads version 1)"
    assert exc.value.found is None


def test_a_json_value_that_is_not_an_object_is_refused(tmp_path: Path) -> None:
    p = _write(tmp_path / "list.json", [{"format_version": 1}])
    with pytest.raises(FormatError, match=rf"^{p}: expected a JSON object, found list$"):
        read_versioned(p, 1)


def test_kind_is_checked_before_the_version(tmp_path: Path) -> None:
    p = _write(tmp_path / "k.json", {"format_version": 9, "kind": "hf"})
    with pytest.raises(FormatError, match=rf"^{p}: field kind is 'hf', expected 'tiny_gpt'$"):
        read_versioned(p, 1, kind="tiny_gpt")


def test_another_field_name_and_a_label_instead_of_a_path() -> None:
    meta = {"format_version": 1, "lm_format_version": 3}
    assert check_version(meta, "m/meta.json", 3, field="lm_format_version") is meta
    with pytest.raises(FormatError, match=r"^m/meta\.json: lm_format_version 3 is not supported"):
        check_version(meta, "m/meta.json", 2, field="lm_format_version")
    with pytest.raises(FormatError, match=r"^feature encoder: format_version missing"):
        check_version({}, "feature encoder", 1)


def test_a_missing_file_is_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_versioned(tmp_path / "absent.json", 1)
