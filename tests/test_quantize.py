import numpy as np
import pytest
import torch
from torch import nn

from sw.compression.quantize import SharedWeights, init_centroids, kmeans_1d, quantize_weights
from sw.compression.train import TrainSettings, fit
from sw.errors import DataError


def brute_force_lloyd(x, c, iters=10_000):
    """Textbook Lloyd (argmin over all centroids, then means) until assignments stop changing;
    an empty cluster takes the point farthest from its centroid, as scikit-learn does."""
    labels = None
    for _ in range(iters):
        new = np.argmin(np.abs(x[:, None] - c[None, :]), axis=1)  # ties -> lower index
        if labels is not None and np.array_equal(new, labels):
            break
        labels = new
        counts = np.bincount(labels, minlength=c.size).astype(float)
        sums = np.bincount(labels, weights=x, minlength=c.size)
        empty = np.flatnonzero(counts == 0)
        far = np.argsort(-np.abs(x - c[labels]), kind="stable")[: empty.size]
        for e, p in zip(empty, far, strict=True):
            counts[labels[p]] -= 1
            sums[labels[p]] -= x[p]
            counts[e], sums[e] = 1, x[p]
        c = np.where(counts > 0, sums / np.maximum(counts, 1), c)
    return c, float(np.sum((x - c[labels]) ** 2))


@pytest.mark.parametrize("seed", range(5))
def test_kmeans_matches_brute_force_lloyd(seed):
    rng = np.random.default_rng(seed)
    x = np.concatenate([rng.laplace(0, 0.05, 700), rng.normal(0.2, 0.02, 300)])
    x = x[np.abs(x) > 0.03]  # pruned: a gap around zero, where linear init strands centroids
    init = init_centroids(np.sort(x), 15, "linear")
    ref_c, ref_inertia = brute_force_lloyd(x, init.copy())
    km = kmeans_1d(x, init=init)
    assert km.converged
    np.testing.assert_allclose(km.centroids, np.sort(ref_c), rtol=1e-12, atol=1e-15)
    assert km.inertia == pytest.approx(ref_inertia, rel=1e-12)


def test_kmeans_result_is_a_fixed_point():
    x = np.random.default_rng(3).normal(size=5000)
    km = kmeans_1d(x, 7, "random", seed=1)
    labels = np.argmin(np.abs(x[:, None] - km.centroids[None, :]), axis=1)
    means = np.array([x[labels == j].mean() for j in range(7)])
    np.testing.assert_allclose(means, km.centroids, rtol=1e-12)


def test_inertia_not_worse_than_sklearn_with_same_init():
    sklearn = pytest.importorskip("sklearn.cluster")
    x = np.random.default_rng(7).laplace(0, 0.03, 20_000)
    x = x[np.abs(x) > 0.04]  # pruned: a hole around zero
    init = init_centroids(np.sort(x), 15, "linear")
    ours = kmeans_1d(x, init=init)
    sk = sklearn.KMeans(15, init=init[:, None], n_init=1, max_iter=1000, tol=0).fit(x[:, None])
    assert ours.inertia <= sk.inertia_ * (1 + 1e-9)


def test_initializations():
    xs = np.sort(np.random.default_rng(0).normal(size=1000))
    assert np.allclose(init_centroids(xs, 5, "linear"), np.linspace(xs[0], xs[-1], 5))
    dens = init_centroids(xs, 4, "density")  # evenly spaced on the CDF
    assert np.allclose(dens, xs[[125, 375, 625, 875]])
    rnd = init_centroids(xs, 6, "random", np.random.default_rng(1))
    assert rnd.size == 6 and np.all(np.isin(rnd, xs))
    with pytest.raises(DataError, match="unknown k-means initialization"):
        init_centroids(xs, 4, "kmeans++")


def test_code_zero_is_zero_and_pruned_weights_keep_it():
    rng = np.random.default_rng(0)
    w = rng.normal(size=(40, 30)).astype(np.float32)
    w[np.abs(w) < 1.0] = 0
    q = quantize_weights(w, bits=4)
    assert q.codebook.shape == (16,) and q.codebook[0] == 0
    assert np.all((q.indices == 0) == (w == 0))
    assert np.all(np.diff(q.codebook[1:]) > 0)
    # every weight maps to its nearest centroid
    nz = w != 0
    dist = np.abs(w[nz][:, None] - q.codebook[1:][None, :])
    assert np.array_equal(q.indices[nz] - 1, dist.argmin(1))


def test_fewer_distinct_weights_than_centroids_are_kept_exactly():
    w = np.array([[0, 0.5, -0.25], [0.5, 0, 0.125]], np.float32)
    q = quantize_weights(w, bits=4)
    assert np.array_equal(q.codebook[q.indices], w)


@pytest.mark.parametrize("bits", [0, 9, 2.5])
def test_bits_out_of_range(bits):
    with pytest.raises(DataError, match="bits must be an integer in 1..8"):
        quantize_weights(np.ones((2, 2), np.float32), bits=bits)


def test_nan_weights_and_all_pruned_layers_are_rejected():
    with pytest.raises(DataError, match="NaN or Inf"):
        quantize_weights(np.array([[np.nan, 1.0]], np.float32))
    with pytest.raises(DataError, match="every weight is pruned"):
        quantize_weights(np.zeros((3, 3), np.float32), name="ip9")


def _sparse_net():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(20, 32), nn.ReLU(), nn.Linear(32, 4))
    with torch.no_grad():
        for layer in (net[0], net[2]):
            layer.weight[layer.weight.abs() < 0.1] = 0
    return net


def test_centroid_gradient_is_the_sum_of_its_cluster_gradients():
    net = _sparse_net()
    layers = {"a": net[0]}
    q = {"a": quantize_weights(net[0].weight.detach().numpy(), bits=3)}
    shared = SharedWeights(layers, q)
    x = torch.randn(8, 20)
    nn.functional.cross_entropy(net(x), torch.zeros(8, dtype=torch.long)).backward()
    shared.accumulate_grads()
    g = net[0].weight.grad.numpy()
    want = np.array([g[q["a"].indices == k].sum() for k in range(8)])
    want[0] = 0
    np.testing.assert_allclose(shared.centroids["a"].grad.numpy(), want, rtol=1e-5, atol=1e-7)


def test_finetuning_moves_centroids_keeps_assignments_and_zeros():
    net = _sparse_net()
    layers = {"a": net[0], "b": net[2]}
    q = {n: quantize_weights(m.weight.detach().numpy(), bits=4) for n, m in layers.items()}
    shared = SharedWeights(layers, q)
    start = shared.codebooks()
    g = torch.Generator().manual_seed(1)
    x = torch.randn(256, 20, generator=g)
    y = x[:, :4].argmax(1)
    fit(net, shared.parameters(), x, y, TrainSettings(epochs=3, lr=1e-2, batch_size=32),
        progress=False, before_step=shared.accumulate_grads, after_step=shared.after_step)
    end = shared.codebooks()
    for n, layer in layers.items():
        assert not np.allclose(end[n][1:], start[n][1:]), "centroids did not move"
        assert end[n][0] == 0
        assert np.array_equal(shared.indices()[n], q[n].indices), "assignments changed"
        w = layer.weight.detach().numpy()
        assert np.array_equal(w, end[n][q[n].indices]), "weights are not codebook[indices]"
        assert np.all(w[q[n].indices == 0] == 0), "a pruned weight came back"
