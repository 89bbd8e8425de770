"""Formal proofs of the broadcast network (sim/formal): the queue's k-induction proof and a
deliberately broken queue caught by it run in `make test`; the full set is slow."""

from __future__ import annotations

from pathlib import Path

import pytest

from sim.formal import CHECKS, Check, sby
from sim.formal.queue import QueueProperties, RoomOffByOne, small_config


def test_activation_queue_properties_hold_by_k_induction(tmp_path):
    r = sby.run("queue", QueueProperties(small_config(2)), "prove", 4, tmp_path)
    assert r.status == "PASS", r.detail


def test_queue_with_room_off_by_one_fails_with_a_counterexample(tmp_path):
    r = sby.run("mutant", QueueProperties(small_config(2), queue_cls=RoomOffByOne), "bmc", 12,
                tmp_path)
    assert r.status == "FAIL"
    assert "Assert failed" in r.detail and "room" in r.detail  # the room property caught it
    vcd = next(line.split(": ", 1)[1] for line in r.detail.splitlines()
               if line.startswith("counterexample"))
    assert Path(vcd).exists()


def test_the_mutant_is_only_a_test_subclass():
    from hw.activation_queue import ActivationQueue
    from hw.params import HWParams
    from hw.pointer_read import HELD_PAIRS
    p = HWParams(small_config(2))
    real, mutant = ActivationQueue(p, extra=HELD_PAIRS), RoomOffByOne(p, extra=HELD_PAIRS)
    real._MustUse__silence = mutant._MustUse__silence = True  # built, not elaborated
    assert (real.depth, mutant.depth) == (2 + HELD_PAIRS, 2 + HELD_PAIRS + 1)


@pytest.mark.slow
@pytest.mark.parametrize("check", [c for c in CHECKS if not c.fast],
                         ids=lambda c: f"{c.name}-{c.mode}")
def test_formal_check(check: Check, tmp_path):
    r = sby.run(check.name, check.build(), check.mode, check.depth, tmp_path,
                engine=check.engine)
    assert r.status == check.expect, r.detail
