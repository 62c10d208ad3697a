"""The strict YAML loader used for every governed file."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, ConfigDict

from portal.errors import ConfigError
from portal.yamlstrict import load_strict


class _Column(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")
    type: str
    zip: str | None = None
    active: bool = True


class _Card(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")
    id: str
    size: int
    columns: dict[str, _Column]


GOOD = "id: demo\nsize: 3\ncolumns:\n  zip: {type: text, zip: '01234'}\n  flag: {type: bool, active: false}\n"


def _problems(text, name="card.yaml"):
    with pytest.raises(ConfigError) as info:
        load_strict(text, _Card, name=name)
    return info.value.problems


def test_a_good_file_loads_with_types_intact():
    card, reader = load_strict(GOOD, _Card, name="card.yaml")
    assert card.columns["zip"].zip == "01234"
    assert card.columns["flag"].active is False
    assert reader.line_for(("columns", "flag")) == 5


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # structure
        ("id: a\nid: b\nsize: 1\ncolumns: {}\n", "card.yaml:2: duplicate key 'id'"),
        ("id: a\nsize: 1\ncolumns:\n\tx: {type: t}\n", "card.yaml:4: invalid YAML"),
        ("id: a\nsize: 1\ncolumns:\n  x: {type: ", "card.yaml:4: invalid YAML"),
        ("\ufeffid: a\n", "byte-order mark"),
        ("", "empty"),
        ("id: a\n---\nid: b\n", "exactly one YAML document"),
        # dangerous features
        ("base: &b {type: t}\nid: a\nsize: 1\ncolumns: {x: *b}\n", "anchors (&name) are not allowed"),
        ("id: a\nsize: 1\ncolumns: {x: *b}\n", "aliases"),
        ("id: !!python/object/apply:os.system [ls]\nsize: 1\ncolumns: {}\n", "YAML tags"),
        ("id: !custom a\nsize: 1\ncolumns: {}\n", "YAML tags"),
        ("id: a\nsize: 1\ncolumns:\n  x:\n    <<: {type: t}\n", "merge keys"),
        # YAML 1.1 surprises
        ("id: a\nsize: 1\ncolumns:\n  x: {type: t, zip: 01234}\n", "card.yaml:4: number with a leading zero '01234'"),
        ("id: a\nsize: 1\ncolumns:\n  x: {type: t, active: no}\n", "ambiguous value 'no'"),
        ("id: a\nsize: 1:30\ncolumns: {}\n", "ambiguous number"),
        ("id: a\nsize: 0x1F\ncolumns: {}\n", "ambiguous number"),
        # schema
        ("id: a\nsize: 1\ncolumns:\n  x: {type: t, colour: red}\n", "card.yaml:4: columns.x.colour: unknown key"),
        ("id: 1.10\nsize: 1\ncolumns: {}\n", "card.yaml:1: id: Input should be a valid string"),
        ("id: a\nsize: '3'\ncolumns: {}\n", "card.yaml:2: size: Input should be a valid integer"),
        ("id: a\ncolumns: {}\n", "size: Field required"),
    ],
)
def test_bad_files_are_refused_naming_file_and_line(text, expected):
    problems = _problems(text)
    assert any(expected in p for p in problems), problems


def test_every_problem_is_reported_not_only_the_first():
    problems = _problems("id: a\nid: b\nsize: 1\ncolumns:\n  x: {type: t, zip: 01234}\n")
    assert len(problems) == 2


def test_oversized_files_are_refused_before_parsing(tmp_path):
    path = tmp_path / "huge.yaml"
    path.write_bytes(b"id: a\n" + b"# padding\n" * 1_100_000)
    with pytest.raises(ConfigError, match="limit"):
        load_strict(path, _Card)


def test_an_alias_bomb_is_refused_without_expanding(tmp_path):
    bomb = "a: &a [x,x,x,x,x,x,x,x,x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{','.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(8))
    problems = _problems(bomb)
    assert any("anchors" in p for p in problems)


def test_invalid_utf8_is_refused():
    problems = _problems(b"id: \xff\xfe\n")
    assert any("UTF-8" in p for p in problems)
