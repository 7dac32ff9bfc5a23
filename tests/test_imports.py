"""Dependency direction: the IR and the generator import without torch."""

import subprocess
import sys

import pytest


@pytest.mark.parametrize(
    "module",
    [
        "hgq_rtl.ir",
        "hgq_rtl.ir.random",
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
