"""Compression under an accuracy budget (sw.compression.budget, eie compress --max-loss)."""

import numpy as np
import pytest
import torch
from torch import nn

from eie.cli import main
from sw.compression.budget import DENSITIES, est_bytes, plan, split_validation
from sw.compression.compress import CompressSettings, compress_module
from sw.compression.data import load_dataset
from sw.errors import DataError
from tests.helpers_nets import blobs, train


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def fake_sensitivity():
    """Layer a is robust to pruning, b is sensitive; both lose a lot at 2 bits."""
    def curve(scale):
        return {d: scale * (1 / d - 1) for d in DENSITIES}
    return {"a": {"weights": 10_000, "prune": curve(0.01), "quantize": {2: 5.0, 3: 0.1, 4: 0.0}},
            "b": {"weights": 1_000, "prune": curve(1.0), "quantize": {2: 5.0, 3: 0.1, 4: 0.0}}}


def test_plan_stays_within_the_tolerance_and_prunes_the_robust_layer_harder():
    sens = fake_sensitivity()
    sizes = []
    for tau in (0.0, 0.1, 0.5, 2.0, 10.0):
        dens, bits, est = plan(sens, tau)
        assert est <= tau + 1e-9
        sizes.append(sum(est_bytes(sens[n]["weights"], dens[n], bits[n]) for n in sens))
        assert dens["a"] <= dens["b"]
        assert all(b >= 3 for b in bits.values())  # 2 bits costs 5 points: never within 10
    assert sizes[0] == pytest.approx(est_bytes(10_000, 1.0, 4) + est_bytes(1_000, 1.0, 4))
    assert all(b <= a for a, b in zip(sizes, sizes[1:], strict=False))
    assert sizes[-1] < 0.3 * sizes[0]


def test_validation_split_is_seeded_and_disjoint():
    x = torch.arange(100).float()[:, None]
    y = torch.arange(100)
    (xt, yt), (xv, yv) = split_validation((x, y), 0.2, seed=3)
    assert len(xv) == 20 and len(xt) == 80
    assert set(yt.tolist()).isdisjoint(yv.tolist()) and set(yt.tolist()) | set(yv.tolist()) == set(range(100))
    assert torch.equal(split_validation((x, y), 0.2, seed=3)[1][1], yv)
    with pytest.raises(DataError, match="leaves no"):
        split_validation((x[:1], y[:1]), 0.5, seed=0)


def test_budget_is_met_on_validation_and_reported():
    torch.manual_seed(0)
    x, y = blobs(900, 16, 4, seed=1, spread=3.0)
    net = train(nn.Sequential(nn.Linear(16, 48), nn.ReLU(), nn.Linear(48, 4)), x[:600], y[:600])
    s = CompressSettings(prune_iters=1, retrain_epochs=1, finetune_epochs=1, progress=False,
                         max_loss=1.0, budget_tries=2, budget_steps=5)
    res = compress_module(net, (x[:600], y[:600]), (x[600:], y[600:]), s,
                          val_data=(x[600:750], y[600:750]))
    b = res.report["budget"]
    assert b["validation_examples"] == 150 and b["training_examples"] == 600
    assert 1 <= len(b["attempts"]) <= 2 and b["unit"] == "points of error"
    chosen = b["attempts"][b["chosen_attempt"] - 1]
    assert b["met"] == any(a["within_budget"] for a in b["attempts"])
    if b["met"]:
        assert chosen["val_loss"] <= 1.0 and chosen["ratio"] == max(
            a["ratio"] for a in b["attempts"] if a["within_budget"])
    # the planned densities are what the pipeline pruned to (density targets)
    for n, d in chosen["density"].items():
        assert res.report["pruning"][n]["density"] == pytest.approx(d, abs=0.02)
        assert res.report["quantization"][n]["bits"] == chosen["bits"][n]
    assert set(b["sensitivity"]) == {"0", "2"}


def test_budget_needs_training_data():
    net = nn.Sequential(nn.Linear(4, 3))
    x, y = torch.randn(10, 4), torch.zeros(10, dtype=torch.long)
    with pytest.raises(DataError, match="--max-loss needs training examples"):
        compress_module(net, None, (x, y), CompressSettings(max_loss=0.5, progress=False))


@pytest.mark.parametrize("argv, words", [
    (["--max-loss", "-1"], "--max-loss must be >= 0"),
    (["--max-loss", "0.2", "--val-fraction", "1.5"], "--val-fraction must be in (0, 1)"),
    (["--max-loss", "0.2", "--budget-tries", "0"], "--budget-tries must be >= 1"),
])
def test_cli_budget_option_errors_are_one_line(capsys, tmp_path, argv, words):
    code = main(["compress", "--model", "lenet300", *argv, "--out", str(tmp_path / "o")])
    _, err = capsys.readouterr()
    assert code == 2 and "Traceback" not in err and words in err
    assert len(err.strip().splitlines()) == 1


def test_npz_validation_split_is_read(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {k: rng.normal(size=(n, 5)).astype(np.float32) for k, n in
              (("x_train", 8), ("x_val", 4), ("x_test", 3))}
    arrays.update(y_train=np.arange(8) % 2, y_val=np.arange(4) % 2, y_test=np.arange(3) % 2)
    np.savez(tmp_path / "d.npz", **arrays)
    ds = load_dataset(tmp_path / "d.npz")
    assert ds.x_val.shape == (4, 5) and ds.y_val.dtype == np.int64
    del arrays["y_val"]
    np.savez(tmp_path / "e.npz", **arrays)
    with pytest.raises(DataError, match="missing key.*y_val"):
        load_dataset(tmp_path / "e.npz")
