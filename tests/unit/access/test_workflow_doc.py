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
