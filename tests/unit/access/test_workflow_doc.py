from pathlib import Path

from portal.access.states import mermaid_all

DOC = Path(__file__).resolve().parents[3] / "docs" / "access-workflow.md"
BEGIN = "<!-- BEGIN GENERATED: portal access diagram -->"
END = "<!-- END GENERATED -->"


def test_docs_state_diagrams_match_the_transition_tables():
    text = DOC.read_text(encoding="utf-8")
    generated = text.split(BEGIN, 1)[1].split(END, 1)[0].strip()
    assert generated == mermaid_all().strip(), (
        "docs/access-workflow.md is out of date: replace the generated block with the output "
        "of `portal access diagram`")


def _subcommands(parser, name):
    import argparse

    top = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    area = top.choices[name]
    sub = next(a for a in area._actions if isinstance(a, argparse._SubParsersAction))
    return sorted(sub.choices)


def test_every_access_and_teams_command_is_documented():
    from portal.cli import build_parser

    parser = build_parser()
    text = DOC.read_text(encoding="utf-8")
    missing = [f"portal {area} {cmd}" for area in ("access", "teams")
               for cmd in _subcommands(parser, area) if f"`portal {area} {cmd}" not in text]
    assert missing == []
