"""Tests of the report's page (hgq_rtl/report/): report.html, report.md and figures/."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
from report_runs import PNG_MAGIC, images, run_folder, table_rows

from hgq_rtl import report as rep


def test_full_report(full_run: tuple[Path, dict, rep.ReportFiles]) -> None:
    run, document, files = full_run
    assert files.html == run / "report.html" and files.markdown == run / "report.md"
    html_text = files.html.read_text()

    # self-contained: no script, no external reference, every image inline and a real PNG
    assert "<script" not in html_text.lower()
    assert not re.search(r'(src|href)="(https?:|//|file:)', html_text)
    pngs = images(html_text)
    # Pareto, EBOPs, input widths, one heat map per layer, resources, stages
    assert len(pngs) == 7
    assert all(png.startswith(PNG_MAGIC) for png in pngs)
    assert sorted(p.name for p in files.figures) == sorted(
        f"{n}.png"
        for n in ("pareto", "ebops", "bits_input", "bits_dense_0", "bits_dense_1")
        + ("resources", "stages")
    )
    assert [p.read_bytes() for p in files.figures] == pngs

    for section in ("summary", "model", "pareto", "ebops", "bit-widths", "resources"):
        assert f'<section id="{section}">' in html_text
    for section in ("timing", "verification", "stages"):
        assert f'<a href="#{section}">' in html_text

    # exact EBOPs per layer, from the model, with the total
    ebops_rows = table_rows(html_text, "ebops")
    for entry in document["layers"]:
        row = next(r for r in ebops_rows if r[0] == entry["name"])
        assert row[1] == str(entry["ebops"])
    assert next(r for r in ebops_rows if r[0] == "total")[1] == str(document["ebops"])

    # per-layer resources from synth/synth_report.json
    resources = table_rows(html_text, "resources")
    assert resources[0] == ["layer", "LUT", "FF", "CARRY", "DSP"]
    assert ["dense_0", "41", "30", "6", "0"] in resources
    assert ["(top level)", "0", "19", "0", "0"] in resources

    # latency at Fmax: 5 cycles at 250 MHz = 20 ns; sign-off badge PASS
    summary = dict((r[0], r[1]) for r in table_rows(html_text, "summary")[1:])
    assert summary["latency at Fmax"] == "20.0 ns"
    assert summary["Fmax (nextpnr-ecp5)"] == "250.0 MHz"
    assert '<span class="badge pass" title="bit-exact sign-off">sign-off: PASS</span>' in html_text

    # the Pareto table lists exactly the non-dominated epochs
    e = np.array([h["ebops"] for h in document["history"]])
    a = np.array([h["val_accuracy"] for h in document["history"]])
    front = rep.pareto_mask(e, a)
    pareto_rows = table_rows(html_text, "pareto")[1:]
    assert sorted(int(r[0]) for r in pareto_rows) == sorted(np.flatnonzero(front).tolist())

    markdown = files.markdown.read_text()
    for name in re.findall(r"!\[[^]]*\]\((figures/[^)]+)\)", markdown):
        assert (run / name).is_file()
    assert "| bit-exact sign-off (check 3) | **PASS** |" in markdown
    assert "| dense_0 | 6 → 5 |" in markdown
    assert markdown.startswith("# hgq-rtl run on `digits`")


def test_report_of_a_partial_run(tmp_path: Path) -> None:
    """No model/, no synthesis, no simulation, one epoch: the report says what was not run."""
    run = tmp_path / "run"
    run_folder(run, epochs=1, model=False, synth=False, passed=None)
    files = rep.write_report(run, out_dir=tmp_path / "out")
    assert files.html.parent == tmp_path / "out"
    html_text = files.html.read_text()
    assert "Training kept 1 point: no front to draw." in html_text
    assert "has no model/ folder: the bit widths are not shown" in html_text
    assert "Synthesis: not run." in html_text
    assert "Per-layer resources: not measured (synthesis not run)." in html_text
    assert "Check 3 (simulation): not run." in html_text
    assert "sign-off: not run</span>" in html_text
    assert len(images(html_text)) == 2  # EBOPs per layer and stage times
    assert not (run / "report.html").exists()


def test_later_synthesis_is_picked_up(tmp_path: Path) -> None:
    """hgq-rtl run --no-synth, then hgq-rtl synth RUN/rtl --out RUN/synth: the report shows it."""
    run = tmp_path / "run"
    run_folder(run, epochs=1, model=False, synth=False)
    (run / "synth").mkdir()
    synth = {"lut": 7, "ff": 8, "carry": 9, "dsp": 0, "fmax_mhz": None, "per_layer": None}
    (run / "synth" / "synth_report.json").write_text(json.dumps(synth))
    html_text = rep.write_report(run).html.read_text()
    summary = dict((r[0], r[1]) for r in table_rows(html_text, "summary")[1:])
    assert summary["LUT / FF / CARRY / DSP (Yosys xcup)"] == "7 / 8 / 9 / 0"
    assert summary["Fmax (nextpnr-ecp5)"] == "not measured"
    assert "Synthesis: not run." not in html_text


def test_failed_verification_is_shown(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run_folder(run, epochs=1, model=False, passed=False)
    html_text = rep.write_report(run).html.read_text()
    assert '<span class="badge fail" title="bit-exact sign-off">sign-off: FAIL</span>' in html_text
    assert "First failure: {&quot;kind&quot;: &quot;mismatch&quot;, &quot;index&quot;: 17" in (
        html_text
    )


def test_rewrite_replaces_figures(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run_folder(run, epochs=1, model=False, synth=False)
    rep.write_report(run)
    (run / "figures" / "stale.png").write_bytes(b"old")
    rep.write_report(run)
    assert not (run / "figures" / "stale.png").exists()
    assert not [p for p in run.iterdir() if p.name.startswith(".")]  # no temporary files


def test_cli_report(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run_folder(run, epochs=1, model=False, synth=False)
    exe = [sys.executable, "-m", "hgq_rtl.cli", "report"]
    done = subprocess.run([*exe, str(run)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {
        "html": str(run / "report.html"),
        "markdown": str(run / "report.md"),
    }
    bad = subprocess.run([*exe, str(tmp_path / "nope")], capture_output=True, text=True)
    assert bad.returncode == 2
    assert bad.stderr == f"hgq-rtl: error: run folder {tmp_path / 'nope'} does not exist\n"


def test_report_markdown_of_report_json_alone(full_run: tuple[Path, dict, rep.ReportFiles]) -> None:
    """report.json alone: the same tables, no figures, and the bit widths say why."""
    markdown = rep.report_markdown(full_run[1])
    assert markdown.startswith("# hgq-rtl run on `digits`")
    assert "![" not in markdown
    assert "*the model is not part of report.json*" in markdown
    assert "| bit-exact sign-off (check 3) | **PASS** |" in markdown
    assert "| dense_0 | 6 → 5 |" in markdown


def test_sections_render_links_and_missing_values_in_both_formats() -> None:
    """The renderers shared by the run and sweep reports: a Links cell becomes links, None the
    not-run mark, a '|' in Markdown is escaped."""
    from hgq_rtl.report.page import NOT_RUN, Links, Section, Table, sections_html, sections_markdown

    table = Table(["folders", "LUT", "note"], [[Links(("m/a", "p/rtl")), None, "a|b"]])
    html_text = "\n".join(sections_html([Section("s", "S", [table])]))
    assert '<a href="m/a">m/a</a> · <a href="p/rtl">p/rtl</a>' in html_text
    assert f"<td>{NOT_RUN}</td>" in html_text
    markdown = "\n".join(sections_markdown([Section("s", "S", [table])]))
    assert f"| [m/a](m/a) · [p/rtl](p/rtl) | {NOT_RUN} | a\\|b |" in markdown
