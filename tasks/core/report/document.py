"""The report as a list of blocks, rendered twice: Markdown (``report.md``) and HTML (``report.html``).

Every path a block names is relative to the report folder and lies inside it. The Markdown links
to those files; the HTML embeds every image (base64) and turns links to images into links to
the embedded copies, so the HTML alone is a complete, shareable page.
"""

from __future__ import annotations

import base64
import html
import re
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Link:
    """A link to a file inside the report folder."""

    text: str
    target: str  # relative to the report folder, POSIX separators


Cell = str | Link | list[Link]


@dataclass
class Heading:
    level: int
    text: str


@dataclass
class Para:
    text: str


@dataclass
class Bullets:
    items: list[str]


@dataclass
class Table:
    header: list[str]
    rows: list[list[Cell]]


@dataclass
class Image:
    target: str  # relative to the report folder
    alt: str


Block = Heading | Para | Bullets | Table | Image


def _md_cell(cell: Cell) -> str:
    if isinstance(cell, Link):
        return f"[{cell.text}]({cell.target})"
    if isinstance(cell, list):
        return " ".join(_md_cell(c) for c in cell) or "-"
    return cell.replace("|", "\\|").replace("\n", " ")


def markdown(blocks: list[Block]) -> str:
    out: list[str] = []
    for block in blocks:
        if isinstance(block, Heading):
            out += ["#" * block.level + " " + block.text, ""]
        elif isinstance(block, Para):
            out += [block.text, ""]
        elif isinstance(block, Bullets):
            out += [f"- {item}" for item in block.items] + [""]
        elif isinstance(block, Table):
            out.append("| " + " | ".join(block.header) + " |")
            out.append("|" + "---|" * len(block.header))
            out += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in block.rows]
            out.append("")
        elif isinstance(block, Image):
            out += [f"![{block.alt}]({block.target})", ""]
    return "\n".join(out)


def _inline(text: str) -> str:
    """Escaped text with Markdown's `code` and **bold** spans as HTML."""
    text = html.escape(text)
    text = re.sub(r"`([^`]+)`", r"<code>\1</code>", text)
    return re.sub(r"\*\*([^*]+)\*\*", r"<b>\1</b>", text)


def anchor(target: str) -> str:
    return "img-" + re.sub(r"[^A-Za-z0-9]+", "-", target).strip("-")


def _html_cell(cell: Cell, embedded: set[str]) -> str:
    if isinstance(cell, Link):
        href = f"#{anchor(cell.target)}" if cell.target in embedded else html.escape(cell.target)
        return f"<a href='{href}'>{html.escape(cell.text)}</a>"
    if isinstance(cell, list):
        return " ".join(_html_cell(c, embedded) for c in cell) or "-"
    return _inline(cell)


def _data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()


def _links(blocks: list[Block]) -> list[str]:
    found: list[str] = []
    for block in blocks:
        if isinstance(block, Table):
            for row in block.rows:
                for cell in row:
                    for c in cell if isinstance(cell, list) else [cell]:
                        if isinstance(c, Link) and c.target not in found:
                            found.append(c.target)
    return found


def to_html(blocks: list[Block], folder: Path, title: str) -> str:
    """One HTML page with no external resources: figures inline, linked images appended inline."""
    shown = {b.target for b in blocks if isinstance(b, Image)}
    linked = [t for t in _links(blocks) if t.endswith(".png") and (folder / t).is_file()]
    embedded = shown | set(linked)
    body = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
            "<style>body{font-family:sans-serif;max-width:1400px;margin:auto;padding:0 1em}"
            "td,th{padding:2px 8px;border-bottom:1px solid #ddd;vertical-align:top;font-size:90%}"
            "table{border-collapse:collapse}code{background:#f3f3f3}img{max-width:100%}</style></head><body>"]
    for block in blocks:
        if isinstance(block, Heading):
            body.append(f"<h{block.level}>{_inline(block.text)}</h{block.level}>")
        elif isinstance(block, Para):
            body.append(f"<p>{_inline(block.text)}</p>")
        elif isinstance(block, Bullets):
            body.append("<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in block.items) + "</ul>")
        elif isinstance(block, Table):
            body.append("<table><tr>" + "".join(f"<th>{_inline(h)}</th>" for h in block.header) + "</tr>")
            body += ["<tr>" + "".join(f"<td>{_html_cell(c, embedded)}</td>" for c in row) + "</tr>"
                     for row in block.rows]
            body.append("</table>")
        elif isinstance(block, Image):
            body.append(f"<figure id='{anchor(block.target)}'><img alt='{html.escape(block.alt)}' "
                        f"src='{_data_uri(folder / block.target)}'></figure>")
    extra = [t for t in linked if t not in shown]
    if extra:
        body.append("<h2>Linked images</h2>")
        for target in extra:
            body.append(f"<details id='{anchor(target)}'><summary>{html.escape(target)}</summary>"
                        f"<img alt='{html.escape(target)}' src='{_data_uri(folder / target)}'></details>")
    return "\n".join(body) + "\n</body></html>\n"
