"""The page: a report is a list of sections of paragraphs, tables and figures, rendered to HTML
(one self-contained file: inline CSS, figures as base64 PNG ``data:`` URIs, no script) and to
Markdown (figures linked from ``figures/``).

Also the formatting every section shares: :func:`fmt` for a value in a table, and
:func:`verdict_badge` for a check's result.
"""

from __future__ import annotations

import base64
import html
import math
from dataclasses import dataclass, field
from typing import Any

from .data import FIGURES_DIR, RunData

NOT_RUN = "not run"
NOT_MEASURED = "not measured"


@dataclass(frozen=True)
class Badge:
    """A verdict in a table cell: PASS, FAIL or not run."""

    text: str
    kind: str  # "pass", "fail" or "none"


@dataclass(frozen=True)
class Links:
    """A table cell of relative links (a sweep's model, design and trial folders)."""

    paths: tuple[str, ...]


@dataclass
class FigureImage:
    name: str  # file stem under figures/
    alt: str
    png: bytes


@dataclass
class Table:
    headers: list[str]
    rows: list[list[Any]]


@dataclass
class Para:
    text: str
    note: bool = False


@dataclass
class Section:
    id: str
    title: str
    blocks: list[Any] = field(default_factory=list)


def fmt(value: Any, digits: int = 2, unit: str = "") -> str:
    if value is None:
        return NOT_RUN
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        text = f"{value:.{digits}f}"
    else:
        text = str(value)
    return f"{text} {unit}".rstrip()


def verdict_badge(passed: bool | None) -> Badge:
    if passed is None:
        return Badge(NOT_RUN, "none")
    return Badge("PASS", "pass") if passed else Badge("FAIL", "fail")


# --------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------

CSS = """
:root { --fg: #1f2328; --muted: #59636e; --line: #d1d9e0; --bg: #f6f8fa; --accent: #3b6ea5; }
* { box-sizing: border-box; }
body { margin: 0; color: var(--fg); background: #fff;
  font: 15px/1.5 -apple-system, "Segoe UI", "Helvetica Neue", Arial, sans-serif; }
main { max-width: 1040px; margin: 0 auto; padding: 24px 28px 48px; }
header { display: flex; align-items: center; gap: 16px; border-bottom: 2px solid var(--line);
  padding-bottom: 12px; }
h1 { font-size: 26px; margin: 0; flex: 1; }
h2 { font-size: 20px; margin: 32px 0 10px; padding-bottom: 4px;
  border-bottom: 1px solid var(--line); }
nav { margin: 12px 0 4px; font-size: 14px; }
nav a { color: var(--accent); text-decoration: none; margin-right: 14px; white-space: nowrap; }
code { font: 13px ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; background: var(--bg);
  padding: 1px 5px; border-radius: 4px; }
table { border-collapse: collapse; margin: 10px 0 14px; font-size: 14px; }
th, td { border: 1px solid var(--line); padding: 4px 10px; text-align: left; vertical-align: top; }
th { background: var(--bg); font-weight: 600; }
tbody tr:nth-child(even) td { background: #fbfcfd; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
figure { margin: 10px 0 16px; }
figure img { max-width: 100%; height: auto; border: 1px solid var(--line); border-radius: 4px; }
figcaption { color: var(--muted); font-size: 13px; }
p.note { color: var(--muted); font-style: italic; }
.badge { display: inline-block; padding: 1px 9px; border-radius: 10px; font-weight: 700;
  font-size: 13px; letter-spacing: .03em; }
.badge.pass { background: #dafbe1; color: #116329; border: 1px solid #4ac26b; }
.badge.fail { background: #ffebe9; color: #a40e26; border: 1px solid #ff8182; }
.badge.none { background: var(--bg); color: var(--muted); border: 1px solid var(--line); }
header .badge { font-size: 16px; padding: 3px 14px; }
footer { margin-top: 36px; color: var(--muted); font-size: 12px; }
"""


def _cell_html(value: Any) -> str:
    if isinstance(value, Badge):
        return f'<td><span class="badge {value.kind}">{html.escape(value.text)}</span></td>'
    if isinstance(value, Links):
        links = (f'<a href="{html.escape(p)}">{html.escape(p)}</a>' for p in value.paths)
        return f"<td>{' · '.join(links)}</td>"
    if isinstance(value, int | float) and not isinstance(value, bool):
        return f'<td class="num">{html.escape(str(value))}</td>'
    return f"<td>{html.escape(fmt(value) if value is None else str(value))}</td>"


def _cell_md(value: Any) -> str:
    if isinstance(value, Badge):
        return f"**{value.text}**" if value.kind != "none" else value.text
    if isinstance(value, Links):
        return " · ".join(f"[{p}]({p})" for p in value.paths)
    text = fmt(value) if value is None else str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def sections_html(sections: list[Section]) -> list[str]:
    """The HTML of ``sections`` (figures embedded as data URIs), one string per element."""
    parts = []
    for section in sections:
        parts.append(f'<section id="{section.id}">')
        parts.append(f"<h2>{html.escape(section.title)}</h2>")
        for block in section.blocks:
            if isinstance(block, Para):
                cls = ' class="note"' if block.note else ""
                parts.append(f"<p{cls}>{html.escape(block.text)}</p>")
            elif isinstance(block, Table):
                head = "".join(f"<th>{html.escape(h)}</th>" for h in block.headers)
                body = "".join(
                    "<tr>" + "".join(_cell_html(v) for v in row) + "</tr>" for row in block.rows
                )
                parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
            elif isinstance(block, FigureImage):
                uri = "data:image/png;base64," + base64.b64encode(block.png).decode("ascii")
                parts.append(
                    f'<figure><img alt="{html.escape(block.alt)}" src="{uri}">'
                    f"<figcaption>{html.escape(block.alt)}</figcaption></figure>"
                )
        parts.append("</section>")
    return parts


def sections_markdown(sections: list[Section], figure_dir: str = FIGURES_DIR) -> list[str]:
    """The Markdown of ``sections`` (figures linked under ``figure_dir``), one line each."""
    lines = []
    for section in sections:
        lines += [f"## {section.title}", ""]
        for block in section.blocks:
            if isinstance(block, Para):
                lines += [f"*{block.text}*" if block.note else block.text, ""]
            elif isinstance(block, Table):
                lines.append("| " + " | ".join(_cell_md(h) for h in block.headers) + " |")
                lines.append("|" + "---|" * len(block.headers))
                lines += ["| " + " | ".join(_cell_md(v) for v in row) + " |" for row in block.rows]
                lines.append("")
            elif isinstance(block, FigureImage):
                lines += [f"![{block.alt}]({figure_dir}/{block.name}.png)", ""]
    return lines


def render_html(data: RunData, sections: list[Section]) -> str:
    r = data.report
    verdict = verdict_badge(data.check3_passed)
    title = f"hgq-rtl run on {r['dataset']}"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{html.escape(title)}</title>",
        f"<style>{CSS}</style>",
        "</head>",
        "<body>",
        "<main>",
        "<header>",
        f"<h1>hgq-rtl run on <code>{html.escape(str(r['dataset']))}</code>"
        + (f" · <code>{html.escape(data.model_name)}</code>" if data.model_name else "")
        + "</h1>",
        f'<span class="badge {verdict.kind}" title="bit-exact sign-off">'
        f"sign-off: {html.escape(verdict.text)}</span>",
        "</header>",
        "<nav>"
        + "".join(f'<a href="#{s.id}">{html.escape(s.title)}</a>' for s in sections)
        + "</nav>",
    ]
    parts += sections_html(sections)
    parts += [
        "<footer>Written by <code>hgq-rtl report</code> from report.json, model/ and "
        "synth/synth_report.json of this run folder. Self-contained: no external "
        "resources.</footer>",
        "</main>",
        "</body>",
        "</html>",
    ]
    return "\n".join(parts) + "\n"


def render_markdown(data: RunData, sections: list[Section], figure_dir: str = FIGURES_DIR) -> str:
    lines = [f"# hgq-rtl run on `{data.report['dataset']}`", ""]
    lines += sections_markdown(sections, figure_dir)
    return "\n".join(lines).rstrip("\n") + "\n"
