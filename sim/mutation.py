"""Mutation analysis of the EIE RTL: plant one bug at a time in the Amaranth source of a block,
run the tests that should notice, count how many do (issue 15, item 4).

A *mutant* is one small edit of one ``hw/*.py`` block, made on the Python syntax tree of its
logic-building functions (``elaborate`` and the module's private helpers, never the
constructor or the timing constants the cycle model shares): a comparison flipped
(``==``/``!=``, ``<``/``<=``, ``>``/``>=``), an arithmetic or bitwise operator swapped
(``+``/``-``, ``&``/``|``, ``^`` -> ``|``), an inversion removed (``~x`` -> ``x``), an integer
constant moved by one, the arms of a ``Mux`` swapped, or an assignment deleted (one element of
an ``m.d.<domain> += [...]`` list, or a whole ``+=`` statement). The edit replaces the node's
text in the file, so the rest of the file is untouched.

Mutants are drawn deterministically: every site of a block in source order, then
``random.Random(f"{seed}:{block}").sample`` of ``per_block`` of them; the same commit and seed
give the same list (:func:`draw`).

Each mutant runs in a temporary copy of the tree (``git archive`` of a commit, so the working
tree -- other people's half-finished edits included -- is never touched and never used), with
``PYTHONPATH`` pointing there:

1. the block's fast tests (:data:`BLOCK_TESTS`: Amaranth-simulator tests of the block and of
   the whole EIE, cheapest first, ``pytest -x``), under a timeout (a hang counts as killed);
2. if they all pass, the regression on a small configuration (:func:`regress`: fuzz cases of
   the 8-PE ``n8d3z`` build through Verilator and cocotb, bit-exact against the golden model
   and cycle-exact against the cycle model), under a timeout.

A mutant is *killed* when a stage fails (test failure, elaboration error, timeout), *survives*
when both pass. ``benchmarks/bench_mutation.py`` runs the campaign and reports the score with
every survivor and the reason it survives.
"""

from __future__ import annotations

import ast
import os
import random
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

# block -> (files, fast tests run against its mutants, cheapest and most specific first)
_EIE_SMALL = [
    "tests/test_hw_eie.py::test_random_sparse_layer_is_bit_exact_with_golden_and_cycle_exact_with_model",
    "tests/test_hw_eie.py::test_cycles_equal_cycle_model_for_any_pe_count_and_queue_depth",
]
BLOCKS: dict[str, tuple[str, ...]] = {
    "activation_queue": ("hw/activation_queue.py",),
    "lnzd": ("hw/lnzd.py", "hw/skid.py"),
    "pointer_read": ("hw/pointer_read.py",),
    "spmat_read": ("hw/spmat_read.py",),
    "arithmetic_unit": ("hw/arithmetic_unit.py",),
    "activation_rw": ("hw/activation_rw.py",),
    "central_control": ("hw/central_control.py",),
    "pe": ("hw/pe.py",),
    "top": ("hw/top.py",),
}
BLOCK_TESTS: dict[str, list[str]] = {
    "activation_queue": ["tests/test_hw_blocks.py::test_queue_pushed_pair_is_at_the_head_from_the_next_cycle",
                         "tests/test_hw_blocks.py::test_queue_full_drops_room_and_a_start_does_not_make_room_in_the_same_cycle",
                         "tests/test_hw_blocks.py::test_queue_matches_a_fifo_model_under_random_push_pop_and_start",
                         "tests/test_formal.py", *_EIE_SMALL],
    "lnzd": ["tests/test_hw_blocks.py::test_lnzd_tree_emits_every_nonzero_in_ascending_physical_index",
             "tests/test_hw_blocks.py::test_lnzd_tree_picks_the_lower_pe_on_equal_local_index_and_streams_one_per_cycle",
             "tests/test_hw_blocks.py::test_lnzd_tree_with_all_zero_inputs_shows_the_sentinel_at_once",
             *_EIE_SMALL],
    "pointer_read": ["tests/test_hw_blocks.py::test_pointer_read_gives_each_columns_bounds_in_order_under_backpressure",
                     *_EIE_SMALL],
    "spmat_read": ["tests/test_hw_blocks.py::test_spmat_read_walks_across_word_boundaries_one_entry_per_cycle_without_bubbles",
                   "tests/test_hw_eie.py::test_padding_entries_and_long_gaps_are_walked_and_count_as_entries",
                   *_EIE_SMALL],
    "arithmetic_unit": ["tests/test_hw_blocks.py::test_arithmetic_unit_bypass_on_back_to_back_hits_of_the_same_accumulator",
                        "tests/test_hw_eie.py::test_saturation_and_rounding_at_write_back_match_golden",
                        *_EIE_SMALL],
    "activation_rw": ["tests/test_hw_blocks.py::test_input_writes_build_the_list_and_act_clear_empties_it",
                      "tests/test_hw_blocks.py::test_write_back_matches_golden_requantize_and_builds_the_nonzero_list",
                      "tests/test_hw_eie.py::test_saturation_and_rounding_at_write_back_match_golden",
                      "tests/test_hw_eie.py::test_two_layers_back_to_back_with_relu_on_then_off",
                      *_EIE_SMALL],
    "central_control": ["tests/test_hw_eie.py", "tests/test_timing.py::test_random_configurations_run_in_the_cycles_their_timing_predicts"],
    "pe": ["tests/test_hw_eie.py"],
    "top": ["tests/test_hw_eie.py"],
}

# functions whose body builds logic (and may be mutated); constructors and the timing
# constants shared with the cycle model (e.g. central_control.start_latency) are left alone
_SKIP_FUNCTIONS = {"__init__", "start_latency", "n_nodes", "pe_signature", "eie_signature",
                   "pe_instance"}

_CMP = {ast.Eq: ast.NotEq, ast.NotEq: ast.Eq, ast.Lt: ast.LtE, ast.LtE: ast.Lt,
        ast.Gt: ast.GtE, ast.GtE: ast.Gt}
_BIN = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.BitAnd: ast.BitOr, ast.BitOr: ast.BitAnd,
        ast.BitXor: ast.BitOr}


@dataclass(frozen=True)
class Mutant:
    """One edit: bytes ``[start, end)`` of ``path`` replaced by ``new``."""

    block: str
    path: str  # relative to the tree
    line: int
    start: int
    end: int
    old: str
    new: str
    operator: str
    context: str = ""  # the source line the edit starts on, stripped

    @property
    def key(self) -> str:
        """Identifies the mutant independently of line numbers (for the explanations)."""
        return f"{self.path}|{self.operator}|{self.context}|{self.old}|{self.new}"

    def describe(self) -> str:
        old = " ".join(self.old.split())
        new = " ".join(self.new.split())
        return f"{self.path}:{self.line} {self.operator}: {old!s} -> {new!s}"

    def apply(self, text: bytes) -> bytes:
        return text[: self.start] + self.new.encode() + text[self.end:]


def _offsets(src: bytes) -> list[int]:
    starts = [0]
    for i, b in enumerate(src):
        if b == 0x0A:
            starts.append(i + 1)
    return starts


def _mutable_functions(tree: ast.Module):
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and \
                node.name not in _SKIP_FUNCTIONS:
            if any(isinstance(d, ast.Name) and d.id == "property" for d in node.decorator_list):
                continue
            yield node


def _docstring_nodes(fn) -> set[int]:
    body = fn.body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        return {id(body[0].value)}
    return set()


def sites(block: str, path: str, src: bytes) -> list[Mutant]:
    """Every mutant of one file, in source order."""
    tree = ast.parse(src)
    lines = _offsets(src)
    text = src.decode().splitlines()
    out: dict[tuple[int, int, str, str], Mutant] = {}

    def span(node) -> tuple[int, int]:
        return (lines[node.lineno - 1] + node.col_offset,
                lines[node.end_lineno - 1] + node.end_col_offset)

    def add(node, new: str, op: str) -> None:
        s, e = span(node)
        old = src[s:e].decode()
        if old == new:
            return
        out.setdefault((s, e, op, new), Mutant(block, path, node.lineno, s, e, old, new, op,
                                               text[node.lineno - 1].strip()))

    nested_fns = set()
    for fn in _mutable_functions(tree):
        for inner in ast.walk(fn):
            if inner is not fn and isinstance(inner, ast.FunctionDef | ast.AsyncFunctionDef):
                nested_fns.add(id(inner))
    for fn in _mutable_functions(tree):
        skip = _docstring_nodes(fn)
        for node in ast.walk(fn):
            if id(node) in skip:
                continue
            if isinstance(node, ast.Compare) and len(node.ops) == 1 and type(node.ops[0]) in _CMP:
                m = ast.Compare(node.left, [_CMP[type(node.ops[0])]()], node.comparators)
                add(node, f"({ast.unparse(m)})", "compare")
            elif isinstance(node, ast.BinOp) and type(node.op) in _BIN:
                m = ast.BinOp(node.left, _BIN[type(node.op)](), node.right)
                add(node, f"({ast.unparse(m)})", "operator")
            elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Invert | ast.Not):
                add(node, f"({ast.unparse(node.operand)})", "drop-inversion")
            elif isinstance(node, ast.Constant) and type(node.value) is int:
                v = node.value
                add(node, str(v + 1 if v == 0 else v - 1), "constant")
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and \
                    node.func.id == "Mux" and len(node.args) == 3:
                c, a, b = node.args
                add(node, f"Mux({ast.unparse(c)}, {ast.unparse(b)}, {ast.unparse(a)})", "mux-swap")
            elif isinstance(node, ast.AugAssign) and isinstance(node.op, ast.Add) and \
                    isinstance(node.target, ast.Attribute) and \
                    isinstance(node.target.value, ast.Attribute) and node.target.value.attr == "d":
                if isinstance(node.value, ast.List) and len(node.value.elts) > 1:
                    for i in range(len(node.value.elts)):
                        rest = node.value.elts[:i] + node.value.elts[i + 1:]
                        s, e = span(node.value)
                        new = "[" + ", ".join(ast.unparse(x) for x in rest) + "]"
                        key = (s, e, "delete-assignment", new)
                        line = node.value.elts[i].lineno
                        out.setdefault(key, Mutant(block, path, line, s, e, src[s:e].decode(),
                                                   new, "delete-assignment",
                                                   text[line - 1].strip()))
                else:
                    add(node, "pass", "delete-assignment")
    return sorted(out.values(), key=lambda m: (m.start, m.end, m.operator, m.new))


def tree_snapshot(dest: Path, commit: str = "HEAD") -> Path:
    """The repository's tracked files at ``commit`` (``git archive``) under ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    tar = dest.with_suffix(".tar")
    subprocess.run(["git", "-C", str(REPO), "archive", "--format=tar", "-o", str(tar), commit,
                    "hw", "sw", "sim", "tests", "eie", "pyproject.toml"], check=True)
    with tarfile.open(tar) as t:
        t.extractall(dest, filter="data")
    tar.unlink()
    return dest


def resolve_commit(commit: str = "HEAD") -> str:
    return subprocess.run(["git", "-C", str(REPO), "rev-parse", commit], check=True,
                          capture_output=True, text=True).stdout.strip()


def draw(tree: Path, seed: int = 0, per_block: int = 7,
         blocks: list[str] | None = None) -> list[Mutant]:
    """``per_block`` mutants of every block of ``tree``, drawn with ``seed``."""
    chosen = []
    for block in blocks or list(BLOCKS):
        cands = []
        for path in BLOCKS[block]:
            cands += sites(block, path, (tree / path).read_bytes())
        rng = random.Random(f"{seed}:{block}")
        pick = rng.sample(range(len(cands)), min(per_block, len(cands)))
        chosen += [cands[i] for i in sorted(pick)]
    return chosen


@dataclass
class Outcome:
    mutant: Mutant
    killed: bool
    stage: str  # "tests", "regression" or "" (survived)
    reason: str  # the first failing test, "timeout", ...
    seconds: float
    log_tail: str = field(default="", repr=False)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["mutant"] = asdict(self.mutant) | {"key": self.mutant.key}
        return d


def _run(cmd: list[str], cwd: Path, env: dict[str, str], timeout: float) -> tuple[int | None, str]:
    """Run ``cmd``; (exit status or None on timeout, output tail). Kills its process group."""
    p = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True, start_new_session=True)
    try:
        out, _ = p.communicate(timeout=timeout)
        return p.returncode, out[-4000:]
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        out, _ = p.communicate()
        return None, (out or "")[-4000:]


def _first_failure(log: str) -> str:
    for line in log.splitlines():
        if line.startswith(("FAILED ", "ERROR ")):
            return line.split(" - ")[0]
    tail = [x for x in log.splitlines() if x.strip()]
    return tail[-1][:200] if tail else "no output"


def mutant_env(tree: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(tree)
    env["EIE_SIM_BUILD"] = str(tree / "build" / "sim")
    env.pop("PYTEST_XDIST_WORKER", None)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def run_mutant(mutant: Mutant, base: Path, work: Path, test_timeout: float = 240,
               regress_timeout: float = 600, regression: bool = True,
               tests: list[str] | None = None) -> Outcome:
    """Copy ``base`` to ``work``, apply ``mutant``, run its tests and (if they pass) the
    regression. ``work`` is removed afterwards."""
    t = time.perf_counter()
    if work.exists():
        shutil.rmtree(work)
    shutil.copytree(base, work, ignore=shutil.ignore_patterns("build", "__pycache__"))
    try:
        f = work / mutant.path
        f.write_bytes(mutant.apply(f.read_bytes()))
        env = mutant_env(work)
        cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider",
               "-p", "no:randomly", "-o", "addopts=", "-m", "not slow",
               *(tests or BLOCK_TESTS[mutant.block])]
        rc, log = _run(cmd, work, env, test_timeout)
        if rc is None:
            return Outcome(mutant, True, "tests", f"timeout after {test_timeout:.0f} s",
                           time.perf_counter() - t, log)
        if rc != 0:
            return Outcome(mutant, True, "tests", _first_failure(log), time.perf_counter() - t, log)
        if not regression:
            return Outcome(mutant, False, "", "tests pass", time.perf_counter() - t, log)
        rc, log2 = _run([sys.executable, str(Path(__file__).resolve()), "regress"], work, env,
                        regress_timeout)
        if rc is None:
            return Outcome(mutant, True, "regression", f"timeout after {regress_timeout:.0f} s",
                           time.perf_counter() - t, log2)
        if rc != 0:
            lines = [x for x in log2.splitlines() if x.startswith("FAIL") or "error" in x.lower()]
            return Outcome(mutant, True, "regression", (lines[0] if lines else log2[-300:])[:300],
                           time.perf_counter() - t, log2)
        return Outcome(mutant, False, "", "tests and regression pass",
                       time.perf_counter() - t, log + log2)
    finally:
        shutil.rmtree(work, ignore_errors=True)


# -- the regression on a small configuration (run inside the mutant's tree) --------------------

REGRESS_BUILD = "n8d3z"  # 8 PEs (two LNZD levels), queue depth 3, 2-bit z: many padding entries
REGRESS_CASES = 12


def regress(n_cases: int = REGRESS_CASES) -> int:
    """Fuzz cases of :data:`REGRESS_BUILD` (seeds in order) through Verilator: 0 if every
    output and counter matches, 1 otherwise (the first mismatch printed)."""
    from sim.design import eie_design
    from sim.fuzz import FUZZ_CONFIGS, fuzz_case
    from sim.job import Job
    from sim.session import run_job

    names = list(FUZZ_CONFIGS)
    k = names.index(REGRESS_BUILD)
    seeds = [k + len(names) * i for i in range(n_cases)]
    design = eie_design(FUZZ_CONFIGS[REGRESS_BUILD], log=lambda m: None)
    result = run_job(design, Job([fuzz_case(s) for s in seeds], stop_on_fail=True))
    if not result.ok:
        print("FAIL", result.first_failure.message)
        return 1
    print(f"ok: {len(seeds)} cases of {REGRESS_BUILD}")
    return 0


def main(argv: list[str]) -> int:
    if argv[:1] == ["regress"]:
        return regress()
    if argv[:1] == ["list"]:
        with tempfile.TemporaryDirectory() as d:
            tree = tree_snapshot(Path(d) / "tree")
            for m in draw(tree, int(argv[1]) if len(argv) > 1 else 0):
                print(m.block, m.describe())
        return 0
    print("usage: python -m sim.mutation regress | list [seed]", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
