"""The report's HTML in a real browser (headless Chromium): it renders, every image decodes."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from report_runs import PNG_MAGIC

from hgq_rtl import report as rep

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
