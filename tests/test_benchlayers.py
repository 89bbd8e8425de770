import numpy as np
import pytest

from sw.eie.benchlayers import TABLE3, alexnet_chain, bench_input, bench_layer, synthetic_fc
from sw.errors import DataError


def test_table3_holds_the_nine_layers_and_the_papers_cycles():
    assert list(TABLE3) == ["Alex-6", "Alex-7", "Alex-8", "VGG-6", "VGG-7", "VGG-8",
                            "NT-We", "NT-Wd", "NT-LSTM"]
    assert [b.paper_cycles for b in TABLE3.values()] == [
        24240, 9760, 7920, 27520, 6960, 6720, 6400, 11120, 6000]
    assert (TABLE3["NT-Wd"].n_in, TABLE3["NT-Wd"].n_out) == (600, 8791)


def test_bench_layer_is_pruned_to_its_density_with_a_4bit_codebook():
    q = bench_layer("NT-We")
    b = TABLE3["NT-We"]
    assert q.shape == (b.n_out, b.n_in) and q.kind == "linear"
    assert q.nnz / q.indices.size == pytest.approx(b.weight_density, rel=0.02)
    assert q.codebook.size == 16 and q.codebook[0] == 0 and q.indices.max() <= 15
    assert np.all(np.diff(q.codebook[1:]) > 0)  # 15 distinct k-means centroids
    again = bench_layer("NT-We")
    assert np.array_equal(again.indices, q.indices)  # fixed seeds


def test_bench_input_has_the_activation_density_and_is_non_negative():
    x = bench_input("Alex-8")
    assert np.count_nonzero(x) == round(0.375 * 4096)
    assert x.min() == 0 and x[x > 0].min() >= 1 / 16
    assert np.count_nonzero(bench_input("NT-LSTM")) == 1201
    with pytest.raises(DataError, match="unknown benchmark layer"):
        bench_input("Alex-9")


def test_synthetic_layers_keep_the_largest_magnitudes():
    q = synthetic_fc("t", 200, 100, 0.2, spread=0.0)
    w = q.dense()
    kept = np.abs(w[w != 0])
    assert kept.min() > 0 and q.nnz / w.size == pytest.approx(0.2, rel=0.05)


@pytest.mark.slow
def test_alexnet_chain_reaches_the_tables_activation_densities():
    from sw.eie import fixedpoint, golden
    from sw.eie.config import PRESETS
    from sw.eie.pack import pack_network

    layers, x = alexnet_chain()
    assert [q.shape for q in layers] == [(4096, 9216), (4096, 4096), (1000, 4096)]
    image = pack_network(layers, PRESETS["eie64"])
    outs = golden.run_network(image, fixedpoint.quantize_input(x, image.config))
    assert np.count_nonzero(outs[0]) / 4096 == pytest.approx(0.353, abs=0.05)
    assert np.count_nonzero(outs[1]) / 4096 == pytest.approx(0.375, abs=0.05)
