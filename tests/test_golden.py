import os
import time

import numpy as np
import pytest
from helpers_eie import chain, random_layer, reference_matvec, roomy
from hypothesis import given, settings
from hypothesis import strategies as st

from sw.eie import fixedpoint, golden
from sw.eie.benchlayers import synthetic_fc, synthetic_input
from sw.eie.config import EIEConfig
from sw.eie.pack import pack_network
from sw.errors import DataError
from sw.qlayer import QuantizedLayer

CFG = EIEConfig(name="t", n_pe=2, act_bits=16, act_frac=8, acc_bits=40, spmat_words=4096,
                ptr_depth=4096, act_depth=1024, bias_depth=1024)


def test_round_half_up_at_exactly_one_half():
    acc = np.array([8, -8, 24, -24, 7, -9, 9, 0])  # w_frac = 4: +-0.5, +-1.5, ...
    assert fixedpoint.requantize(acc, 4, False, CFG).tolist() == [1, 0, 2, -1, 0, -1, 1, 0]


def test_w_frac_zero_passes_the_accumulator_through():
    assert fixedpoint.requantize(np.array([5, -5, 0]), 0, False, CFG).tolist() == [5, -5, 0]


def test_saturation_at_both_ends_and_relu():
    acc = np.array([(40000 << 3), -(40000 << 3), (32767 << 3), -(32768 << 3)])
    assert fixedpoint.requantize(acc, 3, False, CFG).tolist() == [32767, -32768, 32767, -32768]
    assert fixedpoint.requantize(acc, 3, True, CFG).tolist() == [32767, 0, 32767, 0]


def test_accumulator_wraps_at_acc_bits():
    cfg = CFG.replace(acc_bits=32)
    acc = np.array([(1 << 31) + 5, -(1 << 31) - 1, (1 << 32) + 3])
    assert fixedpoint.wrap(acc, 32).tolist() == [-(1 << 31) + 5, (1 << 31) - 1, 3]
    assert fixedpoint.requantize(acc, 0, False, cfg).tolist() == [-32768, 32767, 3]
    assert fixedpoint.wrap(np.array([-1]), 64).tolist() == [-1]


def test_wrap_happens_in_the_layer_not_only_in_requantize():
    # four products of 32767 * 32767 (~2**30 each) overflow a 32-bit accumulator
    cfg = roomy(1, acc_bits=32)
    cb = np.zeros(16, np.float32)
    cb[1] = 32767.0  # w_frac = 0
    q = QuantizedLayer("w", "linear", cb, np.ones((1, 4), np.uint8), None, 4)
    image = pack_network([q], cfg)
    assert image.layers[0].w_frac == 0
    a = np.full(4, 32767)
    acc = fixedpoint.wrap(np.array([4 * 32767 * 32767]), 32)
    assert golden.run_layer(image, 0, a).tolist() == fixedpoint.saturate(acc, 16).tolist()
    assert acc[0] < 0  # wrapped to negative: the result saturates low, unlike float
    assert golden.run_layer(image, 0, a)[0] == -32768


def test_host_quantization_rounds_half_to_even_and_saturates():
    x = np.array([0.5, 1.5, 2.5, -0.5, -1.5, 1000.0, -1000.0]) / 256
    assert fixedpoint.quantize_input(x, CFG).tolist() == [0, 2, 2, 0, -2, 1000, -1000]
    big = np.array([200.0, -200.0, 127.998, -128.0])
    assert fixedpoint.quantize_input(big, CFG).tolist() == [32767, -32768, 32767, -32768]
    assert np.array_equal(fixedpoint.dequantize(np.array([256, -128]), CFG), [1.0, -0.5])
    with pytest.raises(DataError, match="NaN"):
        fixedpoint.quantize_input(np.array([np.nan]), CFG)


@settings(max_examples=40, deadline=None)
@given(n_out=st.integers(1, 40), n_in=st.integers(1, 40), density=st.floats(0, 1),
       n_pe=st.sampled_from([1, 2, 3, 8, 50]), balance=st.booleans(), relu=st.booleans(),
       seed=st.integers(0, 2**32 - 1))
def test_golden_layer_equals_integer_reference_from_dense_codes(n_out, n_in, density, n_pe,
                                                                 balance, relu, seed):
    rng = np.random.default_rng(seed)
    q = random_layer(rng, n_out, n_in, density, scale=0.3)
    cfg = roomy(n_pe)
    q.relu = relu
    image = pack_network([q], cfg, balance=balance)
    a = rng.integers(-300, 300, n_in) * (rng.random(n_in) < 0.6)
    d = image.layers[0]
    acc = reference_matvec(q, d.codebook_int, a) + (fixedpoint.quantize_bias(q.bias, cfg) << d.w_frac)
    want = fixedpoint.requantize(acc, d.w_frac, relu, cfg)
    got = image.to_logical(0, golden.run_layer(image, 0, a))
    assert np.array_equal(got, want)
    batch = golden.run_layer_batch(image, 0, np.stack([a, a // 2]))
    assert np.array_equal(image.to_logical(0, batch[0]), want)


def test_golden_computes_from_the_images_not_the_dense_matrix():
    rng = np.random.default_rng(1)
    q = random_layer(rng, 8, 8, 1.0)
    image = pack_network([q], roomy(2))
    a = np.full(8, 256)
    before = golden.run_layer(image, 0, a)
    image.codebook[0, 1:] = 0  # zero the codebook held in the image
    image.bias[:] = 0
    assert not np.array_equal(before, golden.run_layer(image, 0, a))
    assert golden.run_layer(image, 0, a).tolist() == [0] * 8


@settings(max_examples=30, deadline=None)
@given(n_out=st.integers(1, 50), n_in=st.integers(1, 60), density=st.floats(0.05, 1),
       n_pe=st.sampled_from([1, 4, 7]), seed=st.integers(0, 2**32 - 1))
def test_fixed_point_within_the_stated_error_bound_of_float(n_out, n_in, density, n_pe, seed):
    rng = np.random.default_rng(seed)
    q = random_layer(rng, n_out, n_in, density, scale=0.2)
    image = pack_network([q], roomy(n_pe))
    a = fixedpoint.quantize_input(rng.random(n_in) * 2, image.config)
    y = fixedpoint.dequantize(image.to_logical(0, golden.run_layer(image, 0, a)), image.config)
    ref = golden.float_network([q], fixedpoint.dequantize(a, image.config))[0]
    bound = image.to_logical(0, golden.error_bound(image, 0, a, q.bias))
    assert np.all(np.abs(y - ref) <= bound + 1e-12)


def test_network_fixed_point_stays_within_one_percent_of_float():
    # LeNet-300-100 shapes; stated tolerance: max error <= 1% of the float outputs' range
    layers = [synthetic_fc(f"ip{i}", n_in, n_out, d, input_density=din, seed=3)
              for i, (n_in, n_out, d, din) in enumerate([(784, 300, 0.08, 0.2), (300, 100, 0.09, 0.5),
                                                         (100, 10, 0.26, 0.5)])]
    image = pack_network(layers, roomy(8))
    x = np.stack([synthetic_input(784, 0.2, seed=s) for s in range(50)])
    xi = fixedpoint.quantize_input(x, image.config)
    fixed = golden.run_network_batch(image, xi)
    ref = golden.float_network(layers, x)
    for f, r in zip(fixed, ref, strict=True):
        err = np.abs(fixedpoint.dequantize(f, image.config) - r).max()
        assert err <= 0.01 * (r.max() - r.min()), err


def test_batch_equals_single_vector_runs_and_balance_does_not_change_results():
    rng = np.random.default_rng(8)
    layers = chain(rng, [30, 20, 12, 5], 0.3, scale=0.3)
    plain = pack_network(layers, roomy(4))
    balanced = pack_network(layers, roomy(4), balance=True)
    x = fixedpoint.quantize_input(rng.random((6, 30)) * (rng.random((6, 30)) < 0.5), plain.config)
    batch = golden.run_network_batch(plain, x)
    for i in range(6):
        single = golden.run_network(plain, x[i])
        other = golden.run_network(balanced, x[i])
        for li in range(3):
            assert np.array_equal(batch[li][i], single[li])
            assert np.array_equal(other[li], single[li])


def test_out_of_range_or_float_inputs_are_refused():
    image = pack_network(chain(np.random.default_rng(9), [4, 3], 0.5), roomy(2))
    with pytest.raises(DataError, match="16-bit range"):
        golden.run_layer(image, 0, np.array([40000, 0, 0, 0]))
    with pytest.raises(DataError, match="integers"):
        golden.run_layer(image, 0, np.zeros(4))
    with pytest.raises(DataError, match="expected 4"):
        golden.run_network(image, np.zeros(5, np.int64))


def test_golden_model_runs_a_10000_image_batch_in_seconds():
    rng = np.random.default_rng(10)
    layers = chain(rng, [784, 300, 100, 10], 0.1, scale=0.1)
    image = pack_network(layers, roomy(8))
    mnist = os.environ.get("EIE_MNIST_DIR")
    if mnist:  # real MNIST test images when available, random ones otherwise
        from sw.compression.data import load_split

        x = load_split("test", mnist).inputs().reshape(-1, 784)
    else:
        x = rng.random((10000, 784)) * (rng.random((10000, 784)) < 0.2)
    xi = fixedpoint.quantize_input(x, image.config)
    t = time.perf_counter()
    out = golden.run_network_batch(image, xi)
    elapsed = time.perf_counter() - t
    assert out[-1].shape == (x.shape[0], 10)
    assert elapsed < 10.0, elapsed
    for i in (0, x.shape[0] - 1):
        assert np.array_equal(golden.run_network(image, xi[i])[-1], out[-1][i])
