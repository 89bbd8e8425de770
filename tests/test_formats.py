"""Per-layer activation formats (docs/format.md "Activation formats"): chosen from calibration
data, carried by the images, the golden model and the RTL (the layer table's shift)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers_eie import chain, random_layer, roomy

from sim.amaranth_host import simulate
from sw.eie import golden
from sw.eie.config import PRESETS, EIEConfig
from sw.eie.formats import choose_formats, frac_for
from sw.eie.images import read_images, write_images
from sw.eie.pack import pack_network
from sw.errors import FitError


def _big_output_layer(rng, n_out=24, n_in=32):
    """A layer whose outputs reach a few hundred: beyond 16-bit activations with 8 fraction
    bits (largest 127.996)."""
    q = random_layer(rng, n_out, n_in, 0.8, "big", scale=8.0)
    q.bias = (rng.normal(0, 20.0, n_out)).astype(np.float32)
    return q


def test_a_layer_beyond_the_default_range_saturates_and_its_own_format_does_not():
    rng = np.random.default_rng(0)
    q = _big_output_layer(rng)
    x = rng.uniform(-4, 4, (64, q.n_in))
    want = golden.float_network([q], x)[0]
    assert np.abs(want).max() > 250

    fixed = pack_network([q], roomy(4))
    sat: list[int] = []
    y = fixed.dequantize_output(golden.run_network_batch(fixed, fixed.quantize_input(x), sat)[0])
    assert sat[0] > 0 and np.abs(y - want).max() > 50  # clipped at 127.996

    fmts = choose_formats([q], x, roomy(4))
    assert fmts[0] == frac_for(4.0, roomy(4)) and fmts[1] < 8
    tuned = pack_network([q], roomy(4), formats=fmts)
    sat = []
    y = tuned.dequantize_output(golden.run_network_batch(tuned, tuned.quantize_input(x), sat)[0])
    assert sat == [0]
    assert np.abs(y - want).max() < 0.1


def test_shift_is_codebook_plus_input_minus_output_fraction_bits_and_capped_by_the_field():
    rng = np.random.default_rng(1)
    q = random_layer(rng, 8, 8, 1.0, scale=0.001)  # tiny centroids: w_frac 15 would fit
    cfg = roomy(2)
    img = pack_network([q], cfg, formats=[14, 2])
    d = img.layers[0]
    assert d.shift == d.w_frac + 14 - 2 <= cfg.max_shift == 15  # w_frac lowered to 3
    assert d.w_frac == 3
    with pytest.raises(FitError, match="finer than its products"):
        pack_network([random_layer(rng, 4, 4, 1.0, scale=40.0)], cfg, formats=[0, 15])
    with pytest.raises(FitError, match="2 activation formats given for 2 layers"):
        pack_network(chain(rng, [4, 4, 4], 0.5), cfg, formats=[8, 8])
    with pytest.raises(FitError, match="outside 0..15"):
        pack_network([q], cfg, formats=[16, 8])


def test_formats_survive_the_images_on_disk_and_old_manifests_mean_act_frac(tmp_path):
    rng = np.random.default_rng(2)
    layers = chain(rng, [12, 10, 6], 0.6, scale=0.5)
    img = pack_network(layers, roomy(2), formats=[10, 6, 4])
    write_images(img, tmp_path / "img")
    back = read_images(tmp_path / "img")
    assert [(d.in_frac, d.out_frac, d.shift) for d in back.layers] == \
        [(d.in_frac, d.out_frac, d.shift) for d in img.layers]
    m = json.loads((tmp_path / "img" / "manifest.json").read_text())
    for d in m["layers"]:
        del d["in_frac"], d["out_frac"], d["shift"]
    (tmp_path / "img" / "manifest.json").write_text(json.dumps(m))
    old = read_images(tmp_path / "img")
    assert all(d.in_frac == d.out_frac == old.config.act_frac for d in old.layers)


@pytest.mark.parametrize("n_pe,act_bits", [(4, 16), (3, 12)])
def test_rtl_is_bit_exact_with_golden_under_per_layer_formats(n_pe, act_bits):
    rng = np.random.default_rng(n_pe)
    base = PRESETS["tiny"] if act_bits == 16 else EIEConfig(name="fmt12", n_pe=n_pe, act_bits=12,
                                                            act_frac=5, acc_bits=30)
    cfg = base.replace(n_pe=n_pe, act_depth=64, bias_depth=128, spmat_words=512, ptr_depth=512)
    layers = [_big_output_layer(rng, 20, 24), random_layer(rng, 10, 20, 0.5, "fc1", scale=0.02)]
    layers[0].relu = True
    x = rng.uniform(-2, 2, (3, 24))
    fmts = choose_formats(layers, x, cfg)
    assert fmts[1] != fmts[0]
    img = pack_network(layers, cfg, formats=fmts)
    xs = img.quantize_input(x)
    results = simulate(img, [img.input_to_physical(v) for v in xs], n_layers=2)
    want = golden.run_network_batch(img, xs)[1]
    for r, w in zip(results, want, strict=True):
        assert np.array_equal(img.to_logical(1, r.output), w)
