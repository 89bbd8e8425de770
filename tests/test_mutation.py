"""The mutation machinery (sim/mutation.py) on a few mutants, not the campaign
(benchmarks/bench_mutation.py): sites and deterministic draws, a mutant killed by a failing
test, one that survives, one that hangs (killed by the timeout), and a real RTL mutant of the
activation queue killed by its block test."""

from __future__ import annotations

import textwrap

from sim.mutation import BLOCK_TESTS, BLOCKS, draw, run_mutant, sites, tree_snapshot

TOY = textwrap.dedent('''\
    """A toy block."""


    def elaborate(x):
        """Docstrings and constructors are not mutated."""
        y = x + 1
        if y >= 0:
            return y
        return 0


    def _spin(n):
        i = 0
        while i != n:
            i = i + 1
        return i


    class Thing:
        def __init__(self):
            self.k = 3
    ''')
TOY_TEST = textwrap.dedent('''\
    from hw.toy import _spin, elaborate


    def test_toy():
        assert elaborate(1) == 2
        assert _spin(3) == 3
    ''')


def _toy_tree(root):
    (root / "hw").mkdir(parents=True)
    (root / "tests").mkdir()
    (root / "hw" / "__init__.py").write_text("")
    (root / "hw" / "toy.py").write_text(TOY)
    (root / "tests" / "test_toy.py").write_text(TOY_TEST)
    return root


def test_sites_cover_the_operators_in_logic_functions_only(tmp_path):
    src = TOY.encode()
    ms = sites("toy", "hw/toy.py", src)
    got = {(m.operator, m.old, m.new) for m in ms}
    assert ("operator", "x + 1", "(x - 1)") in got
    assert ("compare", "y >= 0", "(y > 0)") in got
    assert ("compare", "i != n", "(i == n)") in got
    assert ("constant", "1", "0") in got
    assert all("self.k" not in m.old and m.old != "3" for m in ms)  # __init__ left alone
    for m in ms:  # every mutant is valid Python and differs from the original
        text = m.apply(src)
        compile(text, "toy.py", "exec")
        assert text != src


def test_a_killed_a_surviving_and_a_hanging_mutant_are_reported_as_such(tmp_path):
    base = _toy_tree(tmp_path / "base")
    ms = {(m.operator, m.old, m.new): m for m in sites("toy", "hw/toy.py", TOY.encode())}
    tests = ["tests/test_toy.py"]
    killed = run_mutant(ms[("operator", "x + 1", "(x - 1)")], base, tmp_path / "w1",
                        regression=False, tests=tests)
    assert killed.killed and killed.stage == "tests"
    assert killed.reason.startswith("FAILED tests/test_toy.py::test_toy")
    survivor = run_mutant(ms[("compare", "y >= 0", "(y > 0)")], base, tmp_path / "w2",
                          regression=False, tests=tests)  # the test never tries y = 0
    assert not survivor.killed and survivor.reason == "tests pass"
    hang = run_mutant(ms[("operator", "i + 1", "(i - 1)")], base, tmp_path / "w3",
                      test_timeout=5, regression=False, tests=tests)
    assert hang.killed and hang.reason.startswith("timeout")
    assert not (tmp_path / "w1").exists() and (base / "hw" / "toy.py").read_text() == TOY


def test_a_real_queue_mutant_is_killed_by_the_queue_tests_and_draws_are_reproducible(tmp_path):
    base = tree_snapshot(tmp_path / "base")
    a = draw(base, seed=0, per_block=3)
    assert a == draw(base, seed=0, per_block=3) and a != draw(base, seed=1, per_block=3)
    assert {m.block for m in a} == set(BLOCKS) and all(m.block in BLOCK_TESTS for m in a)
    # the occupancy update of the queue loses its pop: the FIFO test notices at once
    queue = [m for m in sites("activation_queue", "hw/activation_queue.py",
                              (base / "hw/activation_queue.py").read_bytes())
             if m.operator == "operator" and "do_pop" in m.old and "level" in m.old]
    assert queue, "hw/activation_queue.py no longer updates level from do_pop: update this test"
    out = run_mutant(queue[0], base, tmp_path / "w", regression=False,
                     tests=["tests/test_hw_blocks.py::test_queue_matches_a_fifo_model_under_random_push_pop_and_start"])
    assert out.killed and out.reason.startswith("FAILED tests/test_hw_blocks.py::test_queue")
