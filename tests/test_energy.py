import numpy as np
import pytest
from helpers_eie import random_layer, roomy

from hw.timing import rtl_timing
from sw.eie.cycles import simulate_layer
from sw.eie.energy import TABLE_45NM, layer_energy
from sw.eie.pack import pack_network


def test_operand_width_scaling_quadratic_for_multiplies_linear_otherwise():
    e = TABLE_45NM.op
    assert e("int_mult", 32) == 3.1 and e("int_mult", 16) == pytest.approx(3.1 / 4)
    assert e("int_mult", 8) == pytest.approx(3.1 / 16)
    assert e("sram", 64) == pytest.approx(10.0) and e("regfile", 16) == pytest.approx(0.5)
    assert e("dram", 8) == pytest.approx(160.0) and e("int_add", 16) == pytest.approx(0.05)


def test_layer_energy_counts_and_the_dram_comparison():
    rng = np.random.default_rng(0)
    q = random_layer(rng, 256, 300, 0.1)
    image = pack_network([q], roomy(8))
    a = (rng.random(300) < 0.4).astype(np.int64)
    report = simulate_layer(image, 0, a, rtl_timing(image.config))
    en = layer_energy(image, 0, report)
    entries = int(report.entries.sum())
    assert en.parts["multiply"] == pytest.approx(entries * 3.1 / 4)
    assert en.parts["spmat SRAM"] == pytest.approx(report.spmat_word_reads.sum() * 10.0)
    assert en.parts["pointer SRAM"] == pytest.approx(8 * report.broadcasts * 2 * 5 * 18 / 32)
    # every column read touches ceil(entries / 8) words at least
    assert report.spmat_word_reads.sum() >= np.ceil(report.entries.sum() / 8)
    assert en.dense_dram == pytest.approx(256 * 300 * (640 + 3.7 + 0.9))
    assert en.total < en.sparse_dram < en.dense_dram
    assert en.ratio_dense > 100
