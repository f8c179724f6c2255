"""Markdown pages as standalone HTML, for hand-over: the drill record (then printed to PDF) and the plan.

An auditor receives a folder, not a server: every page here is one file with its styles inline, tables whose
cells wrap (no column is cut off on screen or on paper), and headings with GitHub-style anchors, so links such
as ``plan.html#recovery-drills`` from the Allure report land on the section they name.
"""

from __future__ import annotations

import base64
import html
import itertools
import re

from markdown_it import MarkdownIt
from markdown_it.token import Token

from harness.records.markdown import render_markdown
from harness.records.record import DrillRecord
from harness.redact import redact

__all__ = ["heading_anchor", "markdown_page", "record_page"]

_STYLE = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Arial, sans-serif; color: #1f2328; margin: 2em auto;
       max-width: 60em; padding: 0 1.5em; }
h1, h2, h3 { line-height: 1.25; } h2 { border-bottom: 1px solid #d0d7de; padding-bottom: .2em; margin-top: 1.6em; }
table { border-collapse: collapse; width: 100%; margin: .6em 0 1.2em; table-layout: auto; }
th, td { border: 1px solid #d0d7de; padding: 4px 8px; text-align: left; vertical-align: top;
         white-space: normal; overflow-wrap: break-word; }
th { background: #f6f8fa; }
code { font: 12px ui-monospace, SFMono-Regular, Menlo, monospace; overflow-wrap: break-word; }
img { max-width: 100%; }
@media print { body { margin: 0; max-width: none; } h2 { break-after: avoid; } tr { break-inside: avoid; } }
"""


# Text from the bucket reaches these pages (object keys, manifest fields, errors quoting them): an image or
# script it smuggles in as Markdown must not make a browser, or the Chromium printing the record on the drill's
# host, fetch anything. The page's own images are inlined as data URIs, its styles inline.
_POLICY = (
    '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; img-src data:; '
    "style-src 'unsafe-inline'; form-action 'none'\">"
)


def heading_anchor(text: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces as hyphens."""
    return "".join(c for c in text.lower() if c.isalnum() or c in " -_").replace(" ", "-")


def _anchor_headings(tokens: list[Token]) -> None:
    seen: dict[str, int] = {}
    for opening, inline in itertools.pairwise(tokens):
        if opening.type != "heading_open":
            continue
        anchor = heading_anchor(inline.content)
        count = seen.get(anchor, 0)
        seen[anchor] = count + 1
        opening.attrSet("id", anchor if count == 0 else f"{anchor}-{count}")


def markdown_page(markdown: str, title: str, *, images: dict[str, tuple[bytes, str]] | None = None) -> str:
    """One standalone HTML document for ``markdown``; raw HTML in it is shown as text, never run.

    ``images`` maps an image path the Markdown links to (``drill-trend.svg``) to its bytes and MIME type,
    inlined as data URIs so the page needs no file beside it.
    """
    parser = MarkdownIt("commonmark", {"html": False}).enable("table")
    tokens = parser.parse(markdown)
    _anchor_headings(tokens)
    for token in tokens:
        for child in token.children or ():
            source = str(child.attrGet("src") or "")
            if child.type == "image" and images and source in images:
                body, mime = images[source]
                child.attrSet("src", f"data:{mime};base64,{base64.b64encode(body).decode()}")
    body = parser.renderer.render(tokens, parser.options, {})
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">{_POLICY}'
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head>\n<body>\n{body}</body></html>\n"
    )


def record_page(record: DrillRecord, trend: bytes | None = None) -> str:
    """The drill record as a standalone page: the Markdown record, the trend chart inlined when given."""
    images = {record.trend_image: (trend, "image/svg+xml")} if trend is not None and record.trend_image else None
    markdown = render_markdown(record, trend_link=images is not None)
    title = re.sub(r"\s+", " ", f"Drill {record.run_id}: {record.verdict.decision} ({record.target})")
    return redact(markdown_page(markdown, title, images=images))
