"""The RTL's timing contract: the one place its fixed latencies are stated in the cycle
model's terms (:class:`sw.eie.cycles.Timing`, docs/format.md "Timing").

Each number is read off the block that causes it, so a pipeline register added to a block
changes the timing here and nowhere else; the cycle model is handed :func:`rtl_timing` and
predicts the RTL's ``cycles`` counter exactly (tests/test_timing.py checks that on every
preset and on random configurations).
"""

from __future__ import annotations

from sw.eie.config import EIEConfig
from sw.eie.cycles import Timing

from .central_control import BROADCAST_STAGES, DRAIN, STATUS_STAGES, WB_TAIL, start_latency
from .pointer_read import COLUMN_LATENCY, HELD_PAIRS

WRITEBACK_PER_ROW = 1  # the write-back pass handles one local row per cycle in every PE


def rtl_timing(config: EIEConfig) -> Timing:
    """The fixed latencies of this RTL for ``config`` (only ``n_pe`` matters: the LNZD tree's
    depth sets the start latency)."""
    return Timing(start=start_latency(config.n_pe), drain=DRAIN,
                  writeback_per_row=WRITEBACK_PER_ROW, writeback_latency=WB_TAIL,
                  column_latency=BROADCAST_STAGES + COLUMN_LATENCY, held_pairs=HELD_PAIRS,
                  room_latency=STATUS_STAGES)
