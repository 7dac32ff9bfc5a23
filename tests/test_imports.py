"""Dependency direction (docs/architecture.md): which package may import which, no import circle,
no oversized module; and the IR and the generator import without torch at run time.

The static checks read every module's source with :mod:`ast`, function-level (lazy) imports
included, so a forbidden import cannot hide inside a function.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
#: Import name → folder. ``sim/`` installs as ``hgq_rtl_sim`` (pyproject's package-dir).
PACKAGES = {"hgq_rtl": ROOT / "hgq_rtl", "rtl_gen": ROOT / "rtl_gen", "hgq_rtl_sim": ROOT / "sim"}
MAX_LINES = 600

#: The orchestration: the only modules that tie the trainer and the hardware side together (they
#: meet only in the IR otherwise).
ORCHESTRATION = {
    "hgq_rtl.flow",
    "hgq_rtl.verification",
    "hgq_rtl.cli",
    "hgq_rtl.commands",
    "hgq_rtl.sweep",
}
#: Layer → the first-party layers and the third-party top-level names it must never import.
RULES = {
    "hgq_rtl.ir": (
        {"hgq_rtl.train", "hgq_rtl.data", "hgq_rtl.report", "rtl_gen", "hgq_rtl_sim"}
        | ORCHESTRATION,
        {"torch", "amaranth", "cocotb", "matplotlib", "sklearn", "tqdm"},
    ),
    "hgq_rtl.data": (
        {"hgq_rtl.train", "hgq_rtl.report", "rtl_gen", "hgq_rtl_sim"} | ORCHESTRATION,
        {"torch", "amaranth", "cocotb"},
    ),
    "hgq_rtl.train": (
        {"hgq_rtl.report", "rtl_gen", "hgq_rtl_sim"} | ORCHESTRATION,
        {"amaranth", "cocotb"},
    ),
    "hgq_rtl.report": (
        {"hgq_rtl.train", "rtl_gen", "hgq_rtl_sim"} | ORCHESTRATION,
        {"torch", "amaranth", "cocotb"},
    ),
    "rtl_gen": (
        {"hgq_rtl.train", "hgq_rtl.data", "hgq_rtl.report", "hgq_rtl_sim"} | ORCHESTRATION,
        {"torch", "cocotb"},
    ),
    "hgq_rtl_sim": (
        {"hgq_rtl.train", "hgq_rtl.data", "hgq_rtl.report", "rtl_gen"} | ORCHESTRATION,
        {"torch", "amaranth"},
    ),
    # the write guard, the manifest's digests and the command's child processes: standard
    # library only, importable by every layer
    **{
        leaf: (
            {"hgq_rtl.ir", "hgq_rtl.train", "hgq_rtl.data", "hgq_rtl.report", "hgq_rtl.interop"}
            | {"rtl_gen", "hgq_rtl_sim"}
            | ORCHESTRATION,
            {"torch", "amaranth", "cocotb", "numpy", "matplotlib"},
        )
        for leaf in ("hgq_rtl.guard", "hgq_rtl.binding", "hgq_rtl.processes")
    },
    # HGQ2/QONNX import and export: the IR only; Keras, HGQ2, onnx and qonnx imported lazily
    "hgq_rtl.interop": (
        {"hgq_rtl.train", "hgq_rtl.data", "hgq_rtl.report", "rtl_gen", "hgq_rtl_sim"}
        | ORCHESTRATION,
        {"torch", "amaranth", "cocotb"},
    ),
}


def _module_name(package: str, folder: Path, file: Path) -> str:
    parts = list(file.relative_to(folder).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join([package, *parts])


def _modules() -> dict[str, Path]:
    return {
        _module_name(package, folder, file): file
        for package, folder in PACKAGES.items()
        for file in sorted(folder.rglob("*.py"))
    }


MODULES = _modules()


def _imports(module: str, file: Path) -> set[str]:
    """Every module name ``module`` imports, absolute, lazy imports included."""
    is_package = file.name == "__init__.py"
    names = set()
    for node in ast.walk(ast.parse(file.read_text(), str(file))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module
            names.add(prefix)
            # ``from package import module`` imports the module too
            submodules = (f"{prefix}.{alias.name}" for alias in node.names)
            names.update(name for name in submodules if name in MODULES)
    return names


GRAPH = {module: _imports(module, file) for module, file in MODULES.items()}


def _within(name: str, layer: str) -> bool:
    return name == layer or name.startswith(layer + ".")


@pytest.mark.parametrize("layer", sorted(RULES))
def test_import_direction(layer):
    forbidden_first, forbidden_third = RULES[layer]
    wrong = sorted(
        f"{module} imports {name}"
        for module, names in GRAPH.items()
        if _within(module, layer)
        for name in names
        if any(_within(name, other) for other in forbidden_first)
        or name.split(".")[0] in forbidden_third
    )
    assert not wrong, "\n".join(wrong)


def test_no_import_circle():
    first_party = {m: {n for n in names if n in MODULES and n != m} for m, names in GRAPH.items()}
    # a package's __init__ re-exporting its submodules is not a circle with them
    edges = {
        m: {n for n in names if not (m.startswith(n + ".") and MODULES[n].name == "__init__.py")}
        for m, names in first_party.items()
    }
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(module: str) -> list[str] | None:
        state[module] = 1
        path.append(module)
        for name in sorted(edges[module]):
            if state.get(name) == 1:
                return path[path.index(name) :] + [name]
            if name not in state and (circle := visit(name)):
                return circle
        state[module] = 2
        path.pop()
        return None

    for module in sorted(edges):
        if module not in state and (circle := visit(module)):
            pytest.fail("import circle: " + " → ".join(circle))


def test_the_scan_sees_lazy_and_relative_imports():
    # the checks above are only as good as the scan: a lazy relative import must be seen
    assert "hgq_rtl.train.loop" in GRAPH["hgq_rtl.flow"]
    assert "rtl_gen.emit" in GRAPH["hgq_rtl.commands"]
    assert "hgq_rtl.ir.fixed" in GRAPH["hgq_rtl.train.quantizers"]


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_oversized_module(module):
    lines = len(MODULES[module].read_text().splitlines())
    assert lines <= MAX_LINES, f"{MODULES[module].relative_to(ROOT)} has {lines} lines"


@pytest.mark.parametrize(
    "module",
    [
        "hgq_rtl.ir",
        "hgq_rtl.ir.random",
        "hgq_rtl.data",
        "hgq_rtl.report",
        "hgq_rtl.train",
        "hgq_rtl.train.config",
        "hgq_rtl.train.metrics",
        "hgq_rtl.cli",
        "rtl_gen.emit",
        "rtl_gen.synth",
        "hgq_rtl_sim.runner",
        "hgq_rtl_sim.fast",
    ],
)
def test_imports_without_torch(module):
    code = f"import sys; sys.modules['torch'] = None; import {module}; print('ok')"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_ir_imports_only_numpy_and_the_standard_library():
    code = (
        "import sys; before = set(sys.modules); import hgq_rtl.ir; "
        "new = {m.split('.')[0] for m in set(sys.modules) - before}; "
        "print(sorted(new - set(sys.stdlib_module_names) - {'numpy', 'hgq_rtl'}))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
