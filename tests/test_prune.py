import numpy as np
import pytest
import torch
from torch import nn

from sw.compression.prune import Pruner, quality_for_density, quality_schedule
from sw.compression.train import TrainSettings, fit
from sw.errors import DataError


def small_net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(20, 32), nn.ReLU(), nn.Linear(32, 4))


def toy_data(n=256):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(n, 20, generator=g)
    y = (x[:, :4].argmax(1)).long()
    return x, y


def test_threshold_is_quality_times_std_of_the_dense_weights():
    net = small_net()
    w = net[0].weight.detach().clone()
    pruner = Pruner({"a": net[0]})
    rec = pruner.prune({"a": 1.0})["a"]
    std = float(w.double().std(unbiased=False))
    assert rec.threshold == pytest.approx(std)
    assert torch.equal(pruner.masks["a"], w.abs() >= std)
    assert rec.kept == int((w.abs() >= std).sum())


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_pruned_weights_stay_exactly_zero_through_retraining(optimizer):
    net = small_net()
    layers = {"a": net[0], "b": net[2]}
    pruner = Pruner(layers)
    pruner.prune({"a": 1.2, "b": 0.8})
    masks = {n: m.clone() for n, m in pruner.masks.items()}
    before = {n: m.weight.detach().clone() for n, m in layers.items()}
    pruner.attach()
    x, y = toy_data()
    # weight decay and momentum would both move a zero weight if masks were not enforced
    fit(net, net.parameters(), x, y, TrainSettings(epochs=3, lr=1e-2, batch_size=32,
                                                    optimizer=optimizer, weight_decay=1e-2),
        progress=False, after_step=pruner.after_step)
    pruner.detach()
    for n, layer in layers.items():
        w = layer.weight.detach()
        assert torch.all(w[~masks[n]] == 0), "a pruned weight came back"
        assert not torch.equal(w[masks[n]], before[n][masks[n]]), "survivors did not train"


def test_gradient_hook_zeroes_gradients_of_pruned_weights():
    net = small_net()
    pruner = Pruner({"a": net[0]})
    pruner.prune({"a": 1.0})
    pruner.attach()
    x, y = toy_data(16)
    nn.functional.cross_entropy(net(x), y).backward()
    assert torch.all(net[0].weight.grad[~pruner.masks["a"]] == 0)
    pruner.detach()


def test_optimizer_state_of_pruned_weights_is_cleared():
    net = small_net()
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    x, y = toy_data(16)
    nn.functional.cross_entropy(net(x), y).backward()
    opt.step()  # dense momentum everywhere
    pruner = Pruner({"a": net[0]})
    pruner.prune({"a": 1.0})
    pruner.after_step(opt)
    buf = opt.state[net[0].weight]["momentum_buffer"]
    assert torch.all(buf[~pruner.masks["a"]] == 0)


def test_iterative_pruning_masks_only_shrink():
    net = small_net()
    pruner = Pruner({"a": net[0]})
    kept = []
    for i in range(1, 4):
        old = pruner.masks["a"].clone()
        pruner.prune({"a": quality_schedule(1.5, 3, i)})
        assert not torch.any(pruner.masks["a"] & ~old)
        kept.append(pruner.kept())
    assert kept == sorted(kept, reverse=True) and kept[-1] < kept[0]


def test_quality_for_density_hits_the_target_fraction():
    w = np.random.default_rng(0).laplace(size=(100, 50))
    q = quality_for_density(w, 0.09)
    kept = np.mean(np.abs(w) >= q * w.std())
    assert kept == pytest.approx(0.09, abs=1e-3)


def test_pruning_every_weight_is_an_error():
    net = small_net()
    with pytest.raises(DataError, match="layer a: every weight pruned"):
        Pruner({"a": net[0]}).prune({"a": 100.0})
