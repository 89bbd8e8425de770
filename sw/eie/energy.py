"""Energy per layer from the cycle model's access counts, against the same layer dense from DRAM.

Per-operation energies are the 45 nm figures both papers quote (Horowitz, ISSCC 2014; Deep
Compression Section 1, EIE Table I), for 32-bit operands: int add 0.1 pJ, float add 0.9 pJ,
register-file access 1 pJ, int multiply 3.1 pJ, float multiply 3.7 pJ, SRAM access 5 pJ,
DRAM access 640 pJ. Scaling to other widths ``b`` (stated, first-order):

- multipliers scale with the partial-product array, ``(b / 32) ** 2``: a 16 x 16-bit multiply
  is 3.1 / 4 = 0.78 pJ, an 8 x 8-bit one 3.1 / 16 = 0.19 pJ;
- adders, register files, SRAM and DRAM accesses scale with the bits moved, ``b / 32``: a
  16-bit register-file read is 0.5 pJ, an 8-bit one 0.25 pJ; a 64-bit SRAM word 10 pJ.

EIE's side counts, per layer and input (from :class:`sw.eie.cycles.CycleReport`):

- pointer SRAM: two ``ptr_bits`` reads (even and odd bank) per PE per broadcast column;
- sparse-matrix SRAM: one ``spmat_word_bits`` read per word the reader does not hold already
  (it keeps the last word it read, across columns: ``sw.eie.cycles.word_reads``);
- codebook lookup (register file, ``act_bits``), multiply (``act_bits`` x ``act_bits``) and
  accumulate (``acc_bits`` add, accumulator register-file read + write) per entry, padding
  included (the hardware does not skip them);
- activations: the owner's source read and every PE's queue write + read (``act_bits`` plus
  the column index) per broadcast; per output row a bias SRAM read, an ``acc_bits`` add, the
  accumulator read and the destination write (``act_bits``).

The dense baseline reads every one of the layer's ``n_in x n_out`` 32-bit float weights from
DRAM and does a float multiply and add for it (activations for free: a lower bound on the
baseline's energy). "Sparse, DRAM" is EIE's own work with the sparse-matrix words and pointers
fetched from DRAM instead of SRAM, which isolates the SRAM-vs-DRAM factor (640 / 5 = 128, the
"120x" of the paper's abstract).
"""

from __future__ import annotations

from dataclasses import dataclass

from sw.eie.cycles import CycleReport
from sw.eie.pack import NetworkImage


@dataclass(frozen=True)
class EnergyTable:
    """pJ per operation on 32-bit operands, 45 nm."""

    int_add: float = 0.1
    float_add: float = 0.9
    regfile: float = 1.0
    int_mult: float = 3.1
    float_mult: float = 3.7
    sram: float = 5.0
    dram: float = 640.0

    def op(self, kind: str, bits: int) -> float:
        """Energy (pJ) of one ``kind`` operation on ``bits``-bit operands (module docstring)."""
        base = getattr(self, kind)
        scale = bits / 32.0
        return base * scale * scale if kind in ("int_mult", "float_mult") else base * scale


TABLE_45NM = EnergyTable()


@dataclass
class LayerEnergy:
    layer: str
    parts: dict[str, float]  # pJ per component on EIE
    dense_dram: float  # pJ: dense 32-bit float weights from DRAM + float multiply-add
    sparse_dram: float  # pJ: EIE's work with weights and pointers fetched from DRAM

    @property
    def total(self) -> float:
        return sum(self.parts.values())

    @property
    def ratio_dense(self) -> float:
        """How many times less energy than the dense layer from DRAM."""
        return self.dense_dram / self.total if self.total else float("inf")


def layer_energy(image: NetworkImage, layer_index: int, report: CycleReport,
                 table: EnergyTable = TABLE_45NM) -> LayerEnergy:
    """Energy of one layer run (the counts of ``report``) on EIE and on the two baselines."""
    c = image.config
    d = image.layers[layer_index]
    e = table.op
    entries = int(report.entries.sum())
    ptr_pairs = int(report.pointer_reads.sum())
    words = int(report.spmat_word_reads.sum())
    m = report.broadcasts
    col_bits = max(1, (d.n_in - 1).bit_length())
    parts = {
        "pointer SRAM": ptr_pairs * 2 * e("sram", c.ptr_bits),
        "spmat SRAM": words * e("sram", c.spmat_word_bits),
        "codebook RF": entries * e("regfile", c.act_bits),
        "multiply": entries * e("int_mult", c.act_bits),
        "accumulate": (entries + d.n_out) * e("int_add", c.acc_bits),
        "accumulator RF": (2 * entries + d.n_out) * e("regfile", c.acc_bits),
        "activations": (m * e("regfile", c.act_bits)
                        + c.n_pe * m * 2 * e("regfile", c.act_bits + col_bits)
                        + d.n_out * (e("sram", c.act_bits) + e("regfile", c.act_bits))),
    }
    dense = d.n_in * d.n_out * (e("dram", 32) + e("float_mult", 32) + e("float_add", 32))
    sparse_dram = (sum(parts.values()) - parts["pointer SRAM"] - parts["spmat SRAM"]
                   + ptr_pairs * 2 * e("dram", c.ptr_bits) + words * e("dram", c.spmat_word_bits))
    return LayerEnergy(d.name, parts, dense, sparse_dram)
