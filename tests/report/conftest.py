"""The complete run folder and its report that several report tests read."""

from __future__ import annotations

from pathlib import Path

import pytest
from report_runs import run_folder

from hgq_rtl import report as rep


@pytest.fixture(scope="session")
def full_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, rep.ReportFiles]:
    """A complete run folder and its report (written once: the figures take seconds)."""
    run = tmp_path_factory.mktemp("report") / "run"
    document = run_folder(run)
    return run, document, rep.write_report(run)
