"""Memory accesses counted in the RTL (sim/access.py: a build whose PEs count their
sparse-matrix word reads, pointer-pair reads, source-list reads and activation writes) equal
the cycle model's counts (sw/eie/cycles.py), which the energy model prices."""

from __future__ import annotations

import numpy as np
import pytest

from hw.pe import ACCESS_COUNTERS
from sim.access import compare, counting_design, table
from sim.fuzz import random_case
from sw.eie.config import PRESETS


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
def test_the_shipped_pe_has_no_access_counters():
    from hw.params import HWParams
    from hw.pe import PE

    assert not hasattr(PE(HWParams(PRESETS["tiny"])), "n_access")
    assert PE(HWParams(PRESETS["tiny"]), access_counters=True).n_access.shape().width == \
        32 * len(ACCESS_COUNTERS)


@pytest.mark.slow
def test_rtl_access_counts_equal_the_cycle_model_on_random_cases():
    cfg = PRESETS["tiny"]
    cases = [random_case(s, cfg, "tiny") for s in range(6)]  # resets, chains, empty inputs
    rows = compare(counting_design(cfg), cases)
    assert len(rows) >= 12 and all(r.equal for r in rows), table(rows)
    total = {k: sum(int(r.rtl[k].sum()) for r in rows) for k in ACCESS_COUNTERS}
    assert all(v > 0 for v in total.values()), total
    # keeping the last word saves reads against the distinct words of each column
    assert total["n_spmat_reads"] < sum(r.per_column_words for r in rows)
    assert all(np.array_equal(r.rtl["n_ptr_reads"], r.model["n_ptr_reads"]) for r in rows)
