"""Writing a report: :func:`write_report` (``report.html``, ``report.md``, ``figures/``, each
renamed into place whole) and :func:`report_markdown` (the Markdown of a ``report.json`` alone).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .data import FIGURES_DIR, REPORT_HTML, REPORT_MD, RunData, load_run
from .page import FigureImage, render_html, render_markdown
from .sections import build_sections


def report_markdown(report: dict) -> str:
    """Return the Markdown report of a ``report.json`` document alone (tables, no figures).

    Parameters
    ----------
    report : dict
        The ``report.json`` document.

    Returns
    -------
    str
        Markdown text.
    """
    data = RunData(Path("."), report, model_note="the model is not part of report.json")
    return render_markdown(data, build_sections(data, figures=False))


@dataclass(frozen=True)
class ReportFiles:
    """Paths written by :func:`write_report`: ``report.html``, ``report.md``, the figures."""

    html: Path
    markdown: Path
    figures: list[Path]


def _write_text(path: Path, text: str) -> None:
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as stream:
            stream.write(text)
        os.chmod(name, 0o644)
        os.replace(name, path)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise


def write_report(
    run_dir: str | Path, report: dict[str, Any] | None = None, *, out_dir: str | Path | None = None
) -> ReportFiles:
    """Write ``report.html``, ``report.md`` and ``figures/`` for the run in ``run_dir``.

    In place (``out_dir`` None or ``run_dir``), under the run folder's write lock, each file is
    written beside its destination and renamed into place (``figures/`` is replaced whole), so
    readers never see half a report. Elsewhere, ``out_dir`` is written whole through the write
    guard (:func:`hgq_rtl.guard.replacing`: a non-empty folder that is not a ``report`` output
    is refused).

    Parameters
    ----------
    run_dir : str or Path
        A folder written by ``hgq-rtl run``.
    report : dict, optional
        The ``report.json`` document; read from ``run_dir`` when not given.
    out_dir : str or Path, optional
        Where to write; defaults to ``run_dir``.

    Returns
    -------
    ReportFiles
        Paths of the HTML, the Markdown and the figures.

    Raises
    ------
    FileNotFoundError, ValueError
        As :func:`load_run`; :class:`hgq_rtl.guard.DestinationError` (a ``ValueError``) for an
        ``out_dir`` the guard refuses.
    """
    from .. import guard

    data = load_run(run_dir, report)
    if out_dir is None or guard.same_path(out_dir, data.run_dir):
        with guard.locked(data.run_dir):  # in place: no other command writes the run meanwhile
            names = _write_files(data.run_dir, data)
        out = data.run_dir
    else:
        out = Path(out_dir)
        with guard.replacing(out, "report", hosts=[data.run_dir]) as staging:
            names = _write_files(staging, data)
    figures = [out / FIGURES_DIR / f"{name}.png" for name in names]
    return ReportFiles(out / REPORT_HTML, out / REPORT_MD, figures)


def _write_files(out: Path, data: RunData) -> list[str]:
    """``report.html``, ``report.md`` and ``figures/`` of ``data`` into the folder ``out``;
    returns the figures' names."""
    from .. import guard

    sections = build_sections(data, figures=True)
    images = [b for s in sections for b in s.blocks if isinstance(b, FigureImage)]
    tmp = Path(tempfile.mkdtemp(prefix=f".{FIGURES_DIR}.", dir=out))
    try:
        for image in images:
            (tmp / f"{image.name}.png").write_bytes(image.png)
        tmp.chmod(0o755)
        guard.replace_folder(tmp, out / FIGURES_DIR)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _write_text(out / REPORT_MD, render_markdown(data, sections))
    _write_text(out / REPORT_HTML, render_html(data, sections))
    return [image.name for image in images]
