"""Text helpers: escaping user- and dataset-supplied strings before Streamlit renders markdown."""

from __future__ import annotations

import re

_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:])")


def md_escape(text: object) -> str:
    """Escape every markdown-significant character so the text renders literally (no links,
    no emphasis, no HTML, no LaTeX). Use for anything a user or a dataset supplied that is
    shown through a markdown-rendering element (st.markdown, st.error, st.caption, labels)."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", "" if text is None else str(text))
