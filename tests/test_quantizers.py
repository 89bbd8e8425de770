"""The quantizers beyond the paper's k-means (sw.compression.quantize): each one's defining
property, their fine-tuning, their codebooks on EIE, and the on-chip footprint."""

import numpy as np
import pytest
import torch
from torch import nn

from eie.cli import main
from sw.compression.compress import (
    CompressSettings,
    compress_module,
    settings_from,
    write_outputs,
)
from sw.compression.footprint import fc_chains, onchip_footprint
from sw.compression.quantize import (
    QUANTIZERS,
    SharedWeights,
    ecsq_1d,
    hessian_diag,
    kmeans_1d,
    quantize_weights,
)
from sw.compression.train import TrainSettings, fit
from sw.eie.config import PRESETS
from sw.eie.pack import pack_network, unpack_network
from sw.errors import DataError
from sw.qlayer import QuantizedLayer
from tests.helpers_nets import blobs, train


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny nets: one torch thread (two spin against each other on a busy machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def pruned_laplace(shape=(60, 50), seed=0, scale=0.05, threshold=0.04):
    w = np.random.default_rng(seed).laplace(0, scale, shape).astype(np.float32)
    w[np.abs(w) < threshold] = 0
    return w


def _entropy(codes):
    p = np.bincount(codes) / codes.size
    p = p[p > 0]
    return float(-(p * np.log2(p)).sum())


# -- defining properties ------------------------------------------------------------------------

def test_ternary_has_exactly_three_values():
    w = pruned_laplace()
    q = quantize_weights(w, bits=4, quantizer="ternary")
    assert q.codebook.size == 4  # 2 bits whatever --bits says
    values = np.unique(q.codebook[q.indices])
    alpha = q.info["alpha"]
    assert alpha > 0 and np.array_equal(values, np.float32([-alpha, 0, alpha]))
    # TWN: the survivors below 0.7 mean|w| go to 0 too; the rest keep their sign
    a = np.abs(w[w != 0])
    thr = 0.7 * a.mean()
    kept = (np.abs(w) >= thr) & (w != 0)
    assert np.array_equal(q.indices != 0, kept)
    assert np.all(np.sign(q.codebook[q.indices]) == np.sign(w) * kept)
    assert alpha == pytest.approx(np.abs(w[kept]).mean(), rel=1e-6)  # least-squares alpha


def test_binary_keeps_the_pruning_and_one_magnitude():
    w = pruned_laplace(seed=1)
    q = quantize_weights(w, quantizer="binary")
    d = q.codebook[q.indices]
    assert np.array_equal(d != 0, w != 0)  # the pruned weights only are 0
    mags = np.unique(np.abs(d[d != 0]))
    assert mags.size == 1 and mags[0] == pytest.approx(np.abs(w[w != 0]).mean(), rel=1e-6)
    assert np.all(np.sign(d) == np.sign(w))


@pytest.mark.parametrize("bits", [2, 3, 4])
def test_uniform_levels_are_evenly_spaced(bits):
    w = pruned_laplace(seed=2)
    q = quantize_weights(w, bits=bits, quantizer="uniform")
    step = q.info["step"]
    used = np.unique(q.codebook[q.indices[q.indices != 0]])
    assert 1 <= used.size <= (1 << bits) - 1
    n = used / step
    np.testing.assert_allclose(n, np.round(n), atol=1e-4)  # integer multiples of one step
    assert not np.any(np.round(n) == 0)
    assert np.all(np.diff(np.sort(np.concatenate([[0], np.round(n)]))) >= 1)
    # every weight went to its nearest lattice point (or the end of the clipped lattice)
    nz = w != 0
    lat = np.round(w[nz] / step)
    lo, hi = np.round(used.min() / step), np.round(used.max() / step)
    want = np.clip(lat, min(lo, 0), max(hi, 0)) * step
    np.testing.assert_allclose(q.codebook[q.indices][nz], want, rtol=1e-5, atol=1e-7)


def test_ecsq_entropy_falls_as_lambda_rises():
    x = pruned_laplace((200, 100), seed=3)
    x = x[x != 0]
    entropies = []
    for lam in (0.0, 0.01, 0.03, 0.1, 0.3):
        r = ecsq_1d(x, 15, lam)
        assert r.converged
        assert r.entropy == pytest.approx(_entropy(r.labels), rel=1e-12)
        entropies.append(r.entropy)
    assert all(b < a for a, b in zip(entropies, entropies[1:], strict=False)), entropies
    # lambda 0 is plain k-means: same centroids as Lloyd from the same start
    km = kmeans_1d(x, 15, "linear")
    np.testing.assert_allclose(ecsq_1d(x, 15, 0.0).centroids, km.centroids, rtol=1e-12)


def test_ecsq_codes_in_the_layer_match_its_entropy():
    w = pruned_laplace(seed=4)
    q = quantize_weights(w, quantizer="ecsq", ecsq_lambda=0.05)
    codes = q.indices[w != 0]
    assert q.info["entropy_bits"] == pytest.approx(_entropy(codes), rel=1e-12)
    assert 0 < q.info["clusters"] <= 15
    plain = quantize_weights(w, quantizer="kmeans")
    assert _entropy(codes) < _entropy(plain.indices[w != 0])


def test_hessian_weighting_moves_centroids_toward_high_curvature_weights():
    rng = np.random.default_rng(5)
    x = rng.uniform(-1, 1, 4000)
    h = np.ones_like(x)
    hot = (x > 0.45) & (x < 0.55)  # midway between two unweighted centroids
    h[hot] = 100.0
    plain = kmeans_1d(x, 4, "linear")
    weighted = kmeans_1d(x, 4, "linear", sample_weight=h)

    def err_on_hot(c):
        return np.min((x[hot][:, None] - c[None, :]) ** 2, axis=1).mean()

    assert err_on_hot(weighted.centroids) < 0.25 * err_on_hot(plain.centroids)
    # the centroid serving the hot weights moved toward them
    target = x[hot].mean()
    assert np.min(np.abs(weighted.centroids - target)) < np.min(np.abs(plain.centroids - target))
    # the weighted result is a fixed point of weighted Lloyd: centroid = h-weighted mean
    lab = np.argmin(np.abs(x[:, None] - weighted.centroids[None, :]), axis=1)
    for j, c in enumerate(weighted.centroids):
        assert c == pytest.approx(np.sum(h[lab == j] * x[lab == j]) / np.sum(h[lab == j]), rel=1e-12)


def test_hessian_quantizer_uses_the_estimate_and_needs_it():
    w = pruned_laplace(seed=6)
    h = np.ones_like(w)
    same = quantize_weights(w, quantizer="hessian", hessian=h)
    np.testing.assert_array_equal(same.codebook, quantize_weights(w, quantizer="kmeans").codebook)
    with pytest.raises(DataError, match="needs a Hessian estimate"):
        quantize_weights(w, quantizer="hessian")
    with pytest.raises(DataError, match="unknown quantizer"):
        quantize_weights(w, quantizer="lloyd")


def test_hessian_diag_is_the_mean_squared_minibatch_gradient():
    torch.manual_seed(0)
    x, y = blobs(64, 6, 3)
    net = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3))
    h = hessian_diag(net, {"a": net[0]}, x, y, batch_size=16, max_batches=2, seed=3)["a"]
    assert net[0].weight.grad is None  # leaves no gradients behind
    perm = torch.randperm(64, generator=torch.Generator().manual_seed(3))
    want = np.zeros((5, 6))
    for b in range(2):
        net.zero_grad()
        idx = perm[b * 16:(b + 1) * 16]
        nn.functional.cross_entropy(net(x[idx]), y[idx]).backward()
        want += net[0].weight.grad.double().numpy() ** 2 / 2
    np.testing.assert_allclose(h, want, rtol=1e-10)


# -- fine-tuning keeps each form ----------------------------------------------------------------

@pytest.mark.parametrize("quantizer", ["ternary", "binary", "uniform"])
def test_tied_codebooks_keep_their_form_through_finetuning(quantizer):
    torch.manual_seed(0)
    x, y = blobs(256, 12, 4)
    net = train(nn.Sequential(nn.Linear(12, 24), nn.ReLU(), nn.Linear(24, 4)), x, y, steps=40)
    with torch.no_grad():
        net[0].weight[net[0].weight.abs() < 0.05] = 0
    q = quantize_weights(net[0].weight.detach().numpy(), bits=3, quantizer=quantizer)
    shared = SharedWeights({"a": net[0]}, {"a": q})
    start = shared.codebooks()["a"]
    fit(net, shared.parameters(), x, y, TrainSettings(epochs=3, lr=1e-2, batch_size=32),
        progress=False, before_step=shared.accumulate_grads, after_step=shared.after_step)
    end = shared.codebooks()["a"]
    assert not np.allclose(start, end), "the scale did not move"
    ratio = end[q.base != 0] / q.base[q.base != 0]
    np.testing.assert_allclose(ratio, ratio[0], rtol=1e-6)  # still scale * base
    w = net[0].weight.detach().numpy()
    assert np.array_equal(w, end[q.indices]) and np.all(w[q.indices == 0] == 0)


# -- on EIE and through the pipeline -------------------------------------------------------------

@pytest.mark.parametrize("quantizer", QUANTIZERS)
def test_every_quantizer_gives_a_codebook_eie_holds(quantizer):
    w = pruned_laplace((24, 20), seed=7)
    hess = np.random.default_rng(0).random(w.shape) if quantizer == "hessian" else None
    lq = quantize_weights(w, bits=4, quantizer=quantizer, hessian=hess)
    assert lq.codebook.size <= 16 and lq.codebook[0] == 0
    layer = QuantizedLayer("a", "linear", lq.codebook, lq.indices, np.zeros(24, np.float32),
                           lq.bits)
    image = pack_network([layer], PRESETS["tiny"])
    book, idx, _ = unpack_network(image)[0]
    assert np.array_equal(idx, lq.indices)
    np.testing.assert_array_equal(book[idx], lq.codebook[lq.indices])


def _net_and_data(seed=0):
    torch.manual_seed(seed)
    x, y = blobs(400, 12, 4, seed=seed)
    net = train(nn.Sequential(nn.Linear(12, 32), nn.ReLU(), nn.Linear(32, 16), nn.ReLU(),
                              nn.Linear(16, 4)), x, y)
    return net, (x[:300], y[:300]), (x[300:], y[300:])


def test_pipeline_with_a_quantizer_per_layer(tmp_path):
    net, tr, te = _net_and_data()
    s = CompressSettings(prune_iters=1, retrain_epochs=1, finetune_epochs=1, progress=False,
                         density={"0": 0.5, "2": 0.5, "4": 0.8},
                         layer_quantizer={"0": "ternary", "2": "hessian", "4": "ecsq"})
    res = compress_module(net, tr, te, s)
    q = {ql.name: ql for ql in res.layers}
    assert q["0"].bits == 2 and np.unique(q["0"].dense()).size == 3
    assert res.report["quantization"]["2"]["quantizer"] == "hessian"
    assert "entropy_bits" in res.report["quantization"]["4"]
    report = write_outputs(res, tmp_path / "out", test_inputs=te[0], plots=False,
                           eie_config="tiny")
    assert report["roundtrip"]["identical_layers"]
    fp = report["onchip"]
    assert fp["config"] == "tiny" and fp["total_bytes"] > 0 and fp["nonzeros"] == sum(
        ql.nnz for ql in res.layers)


def test_hessian_needs_training_data_and_unknown_layers_are_named():
    net, _, te = _net_and_data()
    with pytest.raises(DataError, match="needs training data"):
        compress_module(net, None, te, CompressSettings(quantizer="hessian", progress=False))
    with pytest.raises(DataError, match="--quantizer: unknown layer"):
        CompressSettings(layer_quantizer={"ip9": "ternary"}).check(["0", "2"])
    with pytest.raises(DataError, match="unknown quantizer 'tern'"):
        CompressSettings(quantizer="tern").check(["0"])


def test_quantizer_overrides_of_per_model_defaults():
    defaults = {"quantizer": "ecsq", "layer_quantizer": {"ip3": "kmeans"}}
    assert settings_from(defaults).quantizer_of("ip3") == "kmeans"
    glob = settings_from(defaults, quantizer="uniform")  # a global choice covers every layer
    assert glob.layer_quantizer == {} and glob.quantizer_of("ip3") == "uniform"
    per = settings_from(defaults, layer_quantizer={"ip1": "ternary"})  # adds to the defaults
    assert per.layer_quantizer == {"ip3": "kmeans", "ip1": "ternary"}
    assert per.bits_of("ip1") == 2 and per.bits_of("ip2") == 4


def test_cli_quantizer_spec_errors_are_one_line(capsys, tmp_path):
    code = main(["compress", "--model", "lenet300", "--quantizer", "ip1=tern", "--out",
                 str(tmp_path / "o")])
    _, err = capsys.readouterr()
    assert code == 2 and "Traceback" not in err and "unknown quantizer 'tern'" in err
    assert len(err.strip().splitlines()) == 1


# -- the on-chip footprint ----------------------------------------------------------------------

def test_footprint_counts_the_packers_padding_and_memories():
    cfg = PRESETS["tiny"]  # 4 PEs, 4-bit z: a gap of more than 15 rows needs padding
    idx = np.zeros((160, 2), np.uint8)
    idx[4 * 39, 0] = 1  # PE 0, local row 39: z = 39 = 15 + 1 + 15 + 1 + 7 -> 2 padding entries
    idx[1, 1] = 2  # PE 1, local row 0: no padding
    layer = QuantizedLayer("a", "linear", np.float32([0, 0.5, -0.5, 0.25]), idx,
                           np.zeros(160, np.float32), 2)
    fp = onchip_footprint([[layer]], cfg)
    assert (fp["nonzeros"], fp["entries"], fp["padding_entries"]) == (2, 4, 2)
    image = pack_network([layer], cfg)
    assert fp["spmat_bytes"] == int(image.words_per_pe().sum()) * cfg.spmat_word_bits // 8
    assert fp["ptr_bytes"] == -(-3 * cfg.n_pe * cfg.ptr_bits // 8)
    assert fp["codebook_bytes"] == 16 * cfg.act_bits // 8
    assert fp["bias_bytes"] == 40 * cfg.n_pe * cfg.act_bits // 8
    assert fp["act_bytes"] == 2 * 40 * cfg.n_pe * cfg.act_bits // 8
    assert fp["total_bytes"] == sum(fp[f"{p}_bytes"] for p in ("spmat", "ptr", "codebook",
                                                               "bias", "act"))
    too_big = onchip_footprint([[layer]], PRESETS["tiny"].replace(act_depth=8))
    assert "activation memory" in too_big["error"]


def test_fc_chains_split_at_convolutions_and_size_breaks():
    def lin(name, o, i):
        return QuantizedLayer(name, "linear", np.float32([0, 1]), np.ones((o, i), np.uint8),
                              None, 1)
    conv = QuantizedLayer("c", "conv", np.float32([0, 1]), np.ones((2, 1, 3, 3), np.uint8), None, 1)
    chains = fc_chains([conv, lin("a", 5, 8), lin("b", 3, 5), conv, lin("d", 2, 4)])
    assert [[q.name for q in c] for c in chains] == [["a", "b"], ["d"]]
