"""Tests of the run report (hgq_rtl/report.py): report.html, report.md and figures/."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from hgq_rtl import report as rep
from hgq_rtl.ir import io as ir_io
from hgq_rtl.ir import reference
from hgq_rtl.ir.random import random_model

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _run_folder(
    folder: Path,
    *,
    epochs: int = 12,
    model: bool = True,
    synth: bool = True,
    passed: bool | None = True,
) -> dict:
    """Write a run folder as ``hgq-rtl run`` leaves it (model/, synth/, report.json)."""
    ir = random_model(np.random.default_rng(3), (6, 5, 3), name="tiny_mlp")
    folder.mkdir(parents=True)
    if model:
        ir_io.save(ir, folder / "model")
    layers = [
        {
            "name": layer.name,
            "in_features": layer.in_features,
            "out_features": layer.out_features,
            "activation": layer.activation.value,
            "ebops": reference.layer_ebops(layer, fmt),
            "output_bits": int(layer.output.width.sum()),
            "latency_cycles": 2,
            "adder_depth": 3,
            "adders": 10 + k,
            "adder_bits": 80 + k,
        }
        for k, (layer, fmt) in enumerate(zip(ir.layers, ir.input_formats(), strict=True))
    ]
    synthesis = {}
    if synth:
        per_layer = {
            "dense_0": {"lut": 41, "ff": 30, "carry": 6, "dsp": 0},
            "dense_1": {"lut": 23, "ff": 12, "carry": 3, "dsp": 0},
            "(top level)": {"lut": 0, "ff": 19, "carry": 0, "dsp": 0},
        }
        synthesis = {
            "lut": 64,
            "ff": 61,
            "carry": 9,
            "dsp": 0,
            "ecp5_lut4": 120,
            "ecp5_ff": 61,
            "fmax_mhz": 250.0,
            "yosys_seconds": 1.0,
            "nextpnr_seconds": 2.0,
            "per_layer": per_layer,
        }
        (folder / "synth").mkdir()
        (folder / "synth" / "synth_report.json").write_text(json.dumps(synthesis))
    rng = np.random.default_rng(0)
    history = [
        {
            "epoch": e,
            "beta": 1e-5,
            "loss": 1.0 / (e + 1),
            "ebops": float(5000 - 300 * e + rng.integers(-400, 400)),
            "val_accuracy": float(0.5 + 0.03 * e - rng.random() * 0.1),
        }
        for e in range(epochs)
    ]
    document = {
        "dataset": "digits",
        "test_accuracy": 0.9321,
        "ebops": reference.ebops(ir),
        "params": 53,
        "latency_cycles": 5,
        "fmax_mhz": synthesis.get("fmax_mhz"),
        "vectors": None if passed is None else 2000,
        "mismatches": None if passed is None else (0 if passed else 7),
        "check1": {"samples": 450, "mismatches": 0},
        "layers": layers,
        "input_bits": int(ir.input.width.sum()),
        "synthesis": synthesis,
        "verification": None
        if passed is None
        else {
            "passed": passed,
            "simulator": "verilator",
            "latency_errors": 0,
            "missing": 0,
            "extra": 0,
            "first_failure": None if passed else {"kind": "mismatch", "index": 17},
        },
        "stage_seconds": {"data": 0.1, "train": 12.0, "rtl": 3.0, "verify": 9.0},
        "history": history,
    }
    (folder / "report.json").write_text(json.dumps(document))
    return document


def _images(html_text: str) -> list[bytes]:
    sources = re.findall(r'<img [^>]*src="([^"]+)"', html_text)
    prefix = "data:image/png;base64,"
    assert all(src.startswith(prefix) for src in sources), "every image must be embedded"
    return [base64.b64decode(src[len(prefix) :], validate=True) for src in sources]


def _table_rows(html_text: str, section: str) -> list[list[str]]:
    body = html_text.split(f'<section id="{section}">', 1)[1].split("</section>", 1)[0]
    rows = re.findall(r"<tr>(.*?)</tr>", body)
    return [re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", row) for row in rows]


# ---------------------------------------------------------------------------------------------
# content
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def full_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, rep.ReportFiles]:
    """A complete run folder and its report (written once: the figures take seconds)."""
    run = tmp_path_factory.mktemp("report") / "run"
    document = _run_folder(run)
    return run, document, rep.write_report(run)


def test_full_report(full_run: tuple[Path, dict, rep.ReportFiles]) -> None:
    run, document, files = full_run
    assert files.html == run / "report.html" and files.markdown == run / "report.md"
    html_text = files.html.read_text()

    # self-contained: no script, no external reference, every image inline and a real PNG
    assert "<script" not in html_text.lower()
    assert not re.search(r'(src|href)="(https?:|//|file:)', html_text)
    images = _images(html_text)
    # Pareto, EBOPs, input widths, one heat map per layer, resources, stages
    assert len(images) == 7
    assert all(png.startswith(PNG_MAGIC) for png in images)
    assert sorted(p.name for p in files.figures) == sorted(
        f"{n}.png"
        for n in ("pareto", "ebops", "bits_input", "bits_dense_0", "bits_dense_1")
        + ("resources", "stages")
    )
    assert [p.read_bytes() for p in files.figures] == images

    for section in ("summary", "model", "pareto", "ebops", "bit-widths", "resources"):
        assert f'<section id="{section}">' in html_text
    for section in ("timing", "verification", "stages"):
        assert f'<a href="#{section}">' in html_text

    # exact EBOPs per layer, from the model, with the total
    ebops_rows = _table_rows(html_text, "ebops")
    for entry in document["layers"]:
        row = next(r for r in ebops_rows if r[0] == entry["name"])
        assert row[1] == str(entry["ebops"])
    assert next(r for r in ebops_rows if r[0] == "total")[1] == str(document["ebops"])

    # per-layer resources from synth/synth_report.json
    resources = _table_rows(html_text, "resources")
    assert resources[0] == ["layer", "LUT", "FF", "CARRY", "DSP"]
    assert ["dense_0", "41", "30", "6", "0"] in resources
    assert ["(top level)", "0", "19", "0", "0"] in resources

    # latency at Fmax: 5 cycles at 250 MHz = 20 ns; sign-off badge PASS
    summary = dict((r[0], r[1]) for r in _table_rows(html_text, "summary")[1:])
    assert summary["latency at Fmax"] == "20.0 ns"
    assert summary["Fmax (nextpnr-ecp5)"] == "250.0 MHz"
    assert '<span class="badge pass" title="bit-exact sign-off">sign-off: PASS</span>' in html_text

    # the Pareto table lists exactly the non-dominated epochs
    e = np.array([h["ebops"] for h in document["history"]])
    a = np.array([h["val_accuracy"] for h in document["history"]])
    front = rep.pareto_mask(e, a)
    pareto_rows = _table_rows(html_text, "pareto")[1:]
    assert sorted(int(r[0]) for r in pareto_rows) == sorted(np.flatnonzero(front).tolist())

    markdown = files.markdown.read_text()
    for name in re.findall(r"!\[[^]]*\]\((figures/[^)]+)\)", markdown):
        assert (run / name).is_file()
    assert "| dense_0 | 41 | 30 | 6 | 0 |" in markdown
    assert markdown.startswith("# hgq-rtl run on `digits`")


def test_report_of_a_partial_run(tmp_path: Path) -> None:
    """No model/, no synthesis, no simulation, one epoch: the report says what was not run."""
    run = tmp_path / "run"
    _run_folder(run, epochs=1, model=False, synth=False, passed=None)
    files = rep.write_report(run, out_dir=tmp_path / "out")
    assert files.html.parent == tmp_path / "out"
    html_text = files.html.read_text()
    assert "Training kept 1 point: no front to draw." in html_text
    assert "has no model/ folder: the bit widths are not shown" in html_text
    assert "Synthesis: not run." in html_text
    assert "Per-layer resources: not measured (synthesis not run)." in html_text
    assert "Check 3 (simulation): not run." in html_text
    assert "sign-off: not run</span>" in html_text
    assert len(_images(html_text)) == 2  # EBOPs per layer and stage times
    assert not (run / "report.html").exists()


def test_later_synthesis_is_picked_up(tmp_path: Path) -> None:
    """hgq-rtl run --no-synth, then hgq-rtl synth RUN/rtl --out RUN/synth: the report shows it."""
    run = tmp_path / "run"
    _run_folder(run, epochs=1, model=False, synth=False)
    (run / "synth").mkdir()
    synth = {"lut": 7, "ff": 8, "carry": 9, "dsp": 0, "fmax_mhz": None, "per_layer": None}
    (run / "synth" / "synth_report.json").write_text(json.dumps(synth))
    html_text = rep.write_report(run).html.read_text()
    summary = dict((r[0], r[1]) for r in _table_rows(html_text, "summary")[1:])
    assert summary["LUT / FF / CARRY / DSP (Yosys xcup)"] == "7 / 8 / 9 / 0"
    assert summary["Fmax (nextpnr-ecp5)"] == "not measured"
    assert "Synthesis: not run." not in html_text


def test_failed_verification_is_shown(tmp_path: Path) -> None:
    run = tmp_path / "run"
    _run_folder(run, epochs=1, model=False, passed=False)
    html_text = rep.write_report(run).html.read_text()
    assert '<span class="badge fail" title="bit-exact sign-off">sign-off: FAIL</span>' in html_text
    assert "First failure: {&quot;kind&quot;: &quot;mismatch&quot;, &quot;index&quot;: 17" in (
        html_text
    )


def test_rewrite_replaces_figures(tmp_path: Path) -> None:
    run = tmp_path / "run"
    _run_folder(run, epochs=1, model=False, synth=False)
    rep.write_report(run)
    (run / "figures" / "stale.png").write_bytes(b"old")
    rep.write_report(run)
    assert not (run / "figures" / "stale.png").exists()
    assert not [p for p in run.iterdir() if p.name.startswith(".")]  # no temporary files


def test_pareto_mask() -> None:
    cost = [10, 20, 30, 15, 20]
    score = [0.5, 0.8, 0.9, 0.4, 0.8]
    # (15, 0.4) is dominated by (10, 0.5); the two equal points (20, 0.8) keep each other
    assert rep.pareto_mask(cost, score).tolist() == [True, True, True, False, True]
    with pytest.raises(ValueError, match="must be 1-D of one length"):
        rep.pareto_mask([1, 2], [1])


def test_bad_run_folders(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        rep.write_report(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="has no report.json"):
        rep.write_report(tmp_path / "empty")
    (tmp_path / "empty" / "report.json").write_text("{broken")
    with pytest.raises(ValueError, match="is not valid JSON"):
        rep.write_report(tmp_path / "empty")
    (tmp_path / "empty" / "report.json").write_text('{"dataset": "x"}')
    with pytest.raises(ValueError, match="is not an hgq-rtl run report"):
        rep.write_report(tmp_path / "empty")
    assert sorted(p.name for p in (tmp_path / "empty").iterdir()) == ["report.json"]


def test_cli_report(tmp_path: Path) -> None:
    run = tmp_path / "run"
    _run_folder(run, epochs=1, model=False, synth=False)
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


# ---------------------------------------------------------------------------------------------
# the HTML in a real browser (headless Chromium)
# ---------------------------------------------------------------------------------------------

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--enable-logging=stderr",
    "--v=0",
)

#: Appended to a test-only copy of the report: after the load event, list every image that
#: failed to decode, then signal that the check ran.
IMAGE_CHECK = """<script>
window.addEventListener("load", () => {
  const images = Array.from(document.images);
  const broken = images.filter((img) => !(img.complete && img.naturalWidth > 0));
  const out = document.createElement("pre");
  out.id = "image-check";
  out.textContent = `images=${images.length} broken=${broken.length}`;
  document.body.appendChild(out);
});
</script>"""


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    reason = "chromium is not installed (apt-get install -y chromium)"
    print(f"skipping: {reason}")
    pytest.skip(reason)


def _browse(chromium: str, page: Path, profile: Path, *extra: str) -> subprocess.CompletedProcess:
    profile.mkdir()
    return subprocess.run(
        [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *extra, page.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _console_problems(stderr: str) -> list[str]:
    return [
        line
        for line in stderr.splitlines()
        if "CONSOLE" in line or "Uncaught" in line or "Failed to load" in line
    ]


@pytest.mark.slow
def test_html_renders_in_chromium(
    tmp_path: Path, full_run: tuple[Path, dict, rep.ReportFiles]
) -> None:
    chromium = _chromium()
    page = full_run[2].html

    # 1. the report itself: renders to a non-blank screenshot with no console message
    shot = tmp_path / "shot.png"
    done = _browse(
        chromium, page, tmp_path / "p1", f"--screenshot={shot}", "--window-size=1200,1600"
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert _console_problems(done.stderr) == []
    assert shot.read_bytes().startswith(PNG_MAGIC)
    from matplotlib.image import imread

    pixels = imread(shot)
    assert pixels.shape[:2] == (1600, 1200)
    assert pixels.std() > 0.05  # not a blank page

    # 2. a copy with a check script: every image decodes in the browser
    probe = tmp_path / "probe.html"
    probe.write_text(page.read_text().replace("</body>", IMAGE_CHECK + "\n</body>"))
    done = _browse(chromium, probe, tmp_path / "p2", "--dump-dom", "--virtual-time-budget=5000")
    assert done.returncode == 0, done.stderr[-2000:]
    assert _console_problems(done.stderr) == []
    assert '<pre id="image-check">images=7 broken=0</pre>' in done.stdout

    # 3. the probe sees broken images (the check can fail)
    broken = tmp_path / "broken.html"
    broken.write_text(probe.read_text().replace("base64,iVBOR", "base64,AAAA", 1))
    done = _browse(chromium, broken, tmp_path / "p3", "--dump-dom", "--virtual-time-budget=5000")
    assert '<pre id="image-check">images=7 broken=1</pre>' in done.stdout
