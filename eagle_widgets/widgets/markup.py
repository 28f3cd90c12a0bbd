"""The one rule for text from outside (prompts, answers, sample ids, paths, error messages) in HTML the
widgets and exports write: escaped, and isolated in <bdi> so that direction controls inside it (a
right-to-left override) cannot reorder the text around it. Markup is only ever the toolkit's own literals."""

from __future__ import annotations

import html


def text(value) -> str:
    """`value` as inert HTML text."""
    return f"<bdi>{html.escape(str(value), quote=True)}</bdi>"


BIDI_CONTROLS = dict.fromkeys(map(ord, "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f"))


def plain(value) -> str:
    """`value` as inert HTML where no tag may go (a <title>, an attribute): escaped, direction controls dropped."""
    return html.escape(str(value).translate(BIDI_CONTROLS), quote=True)


def markup(template: str, **values) -> str:
    """`template` (the toolkit's own HTML, with {name} fields) filled with `values` as inert text."""
    return template.format(**{name: text(value) for name, value in values.items()})
