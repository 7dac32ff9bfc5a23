"""One report of a run folder: ``report.html`` (self-contained) and ``report.md`` (+ ``figures/``).

:func:`write_report` reads what ``hgq-rtl run`` leaves in a folder — ``report.json``, the frozen
model (``model/``), ``synth/synth_report.json`` — and writes

* ``report.md``: Markdown tables, with the figures saved as ``figures/*.png`` beside it;
* ``report.html``: the same content in one file that opens offline: inline CSS, every figure a
  base64 PNG ``data:`` URI, no script and no external request.

Sections: summary, model (layers, shapes, parameters), accuracy against EBOPs over training (the
Pareto front), exact EBOPs per layer, bit widths (a heat map of every weight's bit span per
layer, every output element's width, the input widths), resources per layer, latency and Fmax,
verification (check 1 and check 3) and time per stage. Anything a run skipped reads "not run".

Figures are drawn with matplotlib's Agg canvas (no display, no pyplot state); the whole report
of the digits run takes about a second.

Layout, from the data to the files:

* :mod:`.data`: reading a run folder into :class:`RunData` (+ derived numbers), :func:`pareto_mask`;
* :mod:`.figures`: the matplotlib figures, as PNG bytes;
* :mod:`.page`: the page model (Badge, FigureImage, Table, Para, Section), HTML and Markdown;
* :mod:`.sections`: what each section of the page says, built from :class:`RunData`;
* :mod:`.write`: :func:`write_report` (atomic writing) and :func:`report_markdown`.

Importing this package imports neither matplotlib nor the IR (nor torch): they load when used.
"""

from .data import (
    FIGURES_DIR,
    REPORT_HTML,
    REPORT_JSON,
    REPORT_MD,
    LayerBits,
    RunData,
    history_points,
    load_run,
    pareto_mask,
)
from .figures import (
    figure_ebops,
    figure_input_widths,
    figure_layer_bits,
    figure_pareto,
    figure_resources,
    figure_stages,
)
from .page import (
    NOT_MEASURED,
    NOT_RUN,
    Badge,
    FigureImage,
    Para,
    Section,
    Table,
    render_html,
    render_markdown,
)
from .sections import SECTIONS, build_sections
from .write import ReportFiles, report_markdown, write_report

__all__ = [
    "FIGURES_DIR",
    "NOT_MEASURED",
    "NOT_RUN",
    "REPORT_HTML",
    "REPORT_JSON",
    "REPORT_MD",
    "SECTIONS",
    "Badge",
    "FigureImage",
    "LayerBits",
    "Para",
    "ReportFiles",
    "RunData",
    "Section",
    "Table",
    "build_sections",
    "figure_ebops",
    "figure_input_widths",
    "figure_layer_bits",
    "figure_pareto",
    "figure_resources",
    "figure_stages",
    "history_points",
    "load_run",
    "pareto_mask",
    "render_html",
    "render_markdown",
    "report_markdown",
    "write_report",
]
