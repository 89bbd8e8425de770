"""`eie compress --model FILE --data FILE`: Deep Compression of a user's network.

Networks are tiny and trained here on synthetic data for a few dozen steps; every run goes
through `eie.cli.main` and is read back with `load_network(out / "model.eie")`."""

import json

import numpy as np
import pytest
import torch
from helpers_nets import blobs, train
from torch import nn

from eie.cli import main
from sw.compression.compress import CompressSettings
from sw.compression.modelfile import load_model, save_model
from sw.compression.network import compress_network, network_settings
from sw.errors import DataError
from sw.frontends import load_network
from sw.frontends.stored import network_meta

# torch.onnx's TorchScript-based exporter (dynamo=False) warns that it is deprecated.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")

# few short phases: each run takes about a second
RETRAIN = ["--prune-iters", "2", "--retrain-epochs", "3", "--retrain-lr", "3e-3",
           "--finetune-epochs", "2", "--finetune-lr", "1e-3", "--batch-size", "32",
           "--no-progress", "--no-plots"]


def save_npz(path, x, y, n_train: int | None):
    arrays = {"x_test": x[n_train or 0:].numpy(), "y_test": y[n_train or 0:].numpy()}
    if n_train:
        arrays |= {"x_train": x[:n_train].numpy(), "y_train": y[:n_train].numpy()}
    np.savez(path, **arrays)
    return path


def export_onnx(model: nn.Module, x: torch.Tensor, path) -> None:
    torch.onnx.export(model, (x[:2],), str(path), dynamo=False, input_names=["x"],
                      output_names=["y"], dynamic_axes={"x": {0: "b"}, "y": {0: "b"}})


def export_pt2(model: nn.Module, x: torch.Tensor, path) -> None:
    torch.export.save(torch.export.export(model, (x[:2],)), str(path))


def compress(capsys, *argv):
    code = main(["compress", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code, err, *words):
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("eie compress: error:"), err
    for w in words:
        assert w in lines[0], lines[0]


def accuracy(net, x, y) -> float:
    return float((net.run_float(x).argmax(1) == y.numpy()).mean())


def distinct_weights(net) -> list[int]:
    return [len(np.unique(fc.weight)) for seg in net.eie_layers() for fc in seg]


# -- (a) an MLP with four FC layers and a Tanh between two of them, from ONNX -------------------

@pytest.fixture(scope="module")
def tanh_mlp(tmp_path_factory):
    x, y = blobs()
    torch.manual_seed(0)
    model = train(nn.Sequential(nn.Linear(12, 48), nn.ReLU(), nn.Linear(48, 32), nn.Tanh(),
                                nn.Linear(32, 24), nn.ReLU(), nn.Linear(24, 4)), x[:350], y[:350])
    d = tmp_path_factory.mktemp("mlp")
    export_onnx(model, x, d / "mlp.onnx")
    return d / "mlp.onnx", x, y


@pytest.mark.parametrize("mode", ["retrain", "one-shot"])
def test_onnx_mlp_with_tanh_compresses_and_loads_back_quantized(tmp_path, capsys, tanh_mlp, mode):
    path, x, y = tanh_mlp
    data = save_npz(tmp_path / "d.npz", x, y, 350 if mode == "retrain" else None)
    code, out, err = compress(capsys, "--model", path, "--data", data, "--out", tmp_path / "out",
                              *RETRAIN)
    assert code == 0, err
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["mode"] == mode and report["task"] == "classification"
    assert ("one-shot" in out and "one-shot" in err) == (mode == "one-shot")
    assert "accuracy" in out and "host part" in out

    original, net = load_network(path), load_network(tmp_path / "out" / "model.eie")
    assert [(s.kind, [n.op for n in s.nodes]) for s in net.segments] == \
        [(s.kind, [n.op for n in s.nodes]) for s in original.segments]
    assert [fc.relu for seg in net.eie_layers() for fc in seg] == [True, False, True, False]
    assert all(n <= 16 for n in distinct_weights(net))  # 4 bits: 15 centroids and zero
    acc_before, acc_after = accuracy(original, x[350:], y[350:]), accuracy(net, x[350:], y[350:])
    assert acc_before > 0.9 and acc_after >= acc_before - 0.05
    assert report["metrics"]["original"]["accuracy"] == pytest.approx(acc_before)
    assert report["metrics"]["compressed"]["accuracy"] == pytest.approx(acc_after)
    assert report["roundtrip"]["identical_network_outputs"] is True
    assert report["model_file_bytes"] == (tmp_path / "out" / "model.eie").stat().st_size
    assert report["compressed_bytes"] + report["network_bytes"] == report["model_file_bytes"]
    assert report["host"]["parameters"] == 0


def test_default_densities_follow_the_paper_and_one_shot_keeps_more(tanh_mlp):
    net = load_network(tanh_mlp[0])
    names = [fc.name for seg in net.eie_layers() for fc in seg]
    retrained = network_settings(net, retrain=True)
    assert list(retrained.density.values()) == [0.25, 0.25, 0.25, 0.25]  # all < 10,000 weights
    assert set(network_settings(net, retrain=False).density.values()) == {0.5}
    one = network_settings(net, retrain=True, density={names[0]: 0.1})
    assert one.density[names[0]] == 0.1 and one.density[names[1]] == 0.25
    assert network_settings(net, retrain=True, quality=1.0).density == {}


# -- (b) host convolution in float, FC layers compressed (.pt2) ---------------------------------

class ConvFC(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(1)
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.fc1 = nn.Linear(4 * 4 * 4, 32)
        self.fc2 = nn.Linear(32, 3)

    def forward(self, x):
        x = torch.flatten(nn.functional.max_pool2d(torch.relu(self.conv(x)), 2), 1)
        return self.fc2(torch.relu(self.fc1(x)))


def test_conv_fc_keeps_the_host_conv_in_float_and_compresses_the_fc_layers(tmp_path, capsys):
    g = torch.Generator().manual_seed(2)
    x = torch.rand(400, 1, 8, 8, generator=g)
    y = (x[:, 0, :4].mean((1, 2)) > x[:, 0, 4:].mean((1, 2))).long() + (x.mean((1, 2, 3)) > 0.5).long()
    model = train(ConvFC(), x[:300], y[:300], steps=60)
    export_pt2(model, x, tmp_path / "m.pt2")
    data = save_npz(tmp_path / "d.npz", x.reshape(400, 64), y, 300)  # flat examples: reshaped
    code, out, err = compress(capsys, "--model", tmp_path / "m.pt2", "--data", data,
                              "--out", tmp_path / "out", *RETRAIN)
    assert code == 0, err
    original, net = load_network(tmp_path / "m.pt2"), load_network(tmp_path / "out" / "model.eie")
    conv = next(n for n in net.nodes if n.op == "conv2d")
    assert conv.placement == "host"
    for k, v in next(n for n in original.nodes if n.op == "conv2d").params.items():
        assert np.array_equal(conv.params[k], v)  # frozen, stored bit for bit
    assert [len(seg) for seg in net.eie_layers()] == [2]
    assert all(n <= 16 for n in distinct_weights(net))
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["host"]["parameters"] == 4 * 9 + 4 and report["host"]["float32_bytes"] == 160
    assert "40 parameters = 160 bytes" in out
    assert report["metrics"]["compressed"]["accuracy"] >= report["metrics"]["original"]["accuracy"] - 0.1
    assert [q.name for q in load_model(tmp_path / "out" / "model.eie")[0]] == \
        [fc.name for fc in net.eie_layers()[0]]


# -- (c) a regression MLP: MSE loss, RMSE and max error ----------------------------------------

def test_regression_mlp_reports_rmse_before_and_after(tmp_path, capsys):
    g = torch.Generator().manual_seed(3)
    x = torch.rand(400, 6, generator=g) * 2 - 1
    y = torch.stack([torch.sin(2 * x[:, 0]) + x[:, 1] * x[:, 2], x[:, 3] - x[:, 4] ** 2], 1)
    torch.manual_seed(0)
    model = train(nn.Sequential(nn.Linear(6, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(),
                                nn.Linear(32, 2)), x[:300], y[:300], steps=150,
                  loss=nn.functional.mse_loss)
    export_onnx(model, x, tmp_path / "reg.onnx")
    data = save_npz(tmp_path / "d.npz", x, y, 300)
    code, out, err = compress(capsys, "--model", tmp_path / "reg.onnx", "--data", data,
                              "--out", tmp_path / "out", *RETRAIN, "--density", "/0/Gemm=0.5")
    assert code == 0, err
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["task"] == "regression" and report["error"] == "rmse"
    before, after = report["metrics"]["original"], report["metrics"]["compressed"]
    assert set(before) == set(after) == {"rmse", "max_error"}
    assert "RMSE" in out and "max error" in out
    spread = float(y[300:].std(0).mean())  # the RMSE of predicting each output's mean
    assert before["rmse"] < 0.3 * spread and after["rmse"] < 0.6 * spread, (before, after, spread)
    assert report["error_compressed"] == pytest.approx(after["rmse"], rel=1e-4)
    net = load_network(tmp_path / "out" / "model.eie")
    pred = net.run_float(x[300:].numpy())
    assert np.sqrt(np.mean((pred - y[300:].numpy()) ** 2)) == pytest.approx(after["rmse"], rel=1e-4)


# -- the model file holds the whole network -----------------------------------------------------

def test_network_metadata_round_trips_and_old_files_still_load(tmp_path, tanh_mlp):
    path, x, _ = tanh_mlp
    net = load_network(path)
    settings = CompressSettings(density={fc.name: 0.5 for seg in net.eie_layers() for fc in seg},
                                progress=False)
    compress_network(net, tmp_path / "out", settings, plots=False)  # no data: one-shot, no metrics
    layers, meta = load_model(tmp_path / "out" / "model.eie")
    assert meta["network"]["nodes"][3]["op"] == "tanh" and "params" not in meta["network"]["nodes"][0]
    rebuilt = load_network(tmp_path / "out" / "model.eie")
    assert np.array_equal(rebuilt.run_float(x), load_network(tmp_path / "out" / "model.eie").run_float(x))
    # the same layers without meta["network"]: read as today, a chain with ReLU from the flags
    save_model(tmp_path / "old.eie", layers, {"input_shape": [12]})
    chain = load_network(tmp_path / "old.eie")
    assert [s.kind for s in chain.segments] == ["eie"] and "tanh" not in [n.op for n in chain.nodes]
    # a node whose layer is missing is a one-line error
    bad = dict(meta, network=network_meta(net))
    save_model(tmp_path / "bad.eie", layers[:-1], bad)
    with pytest.raises(DataError, match="FC node '/6/Gemm' has no linear layer in the file"):
        load_network(tmp_path / "bad.eie")


# -- bad input: one line, exit 2, nothing written ----------------------------------------------

def test_npz_without_the_expected_keys(tmp_path, capsys, tanh_mlp):
    np.savez(tmp_path / "d.npz", inputs=np.zeros((4, 12), np.float32))
    code, _, err = compress(capsys, "--model", tanh_mlp[0], "--data", tmp_path / "d.npz",
                            "--out", tmp_path / "out")
    assert_one_line_error(code, err, "missing key(s) x_test, y_test", "found: inputs")
    assert not (tmp_path / "out").exists()


def test_data_of_the_wrong_shape(tmp_path, capsys, tanh_mlp):
    np.savez(tmp_path / "d.npz", x_test=np.zeros((4, 10), np.float32), y_test=np.zeros(4, np.int64))
    code, _, err = compress(capsys, "--model", tanh_mlp[0], "--data", tmp_path / "d.npz",
                            "--out", tmp_path / "out")
    assert_one_line_error(code, err, "examples have shape (10,)", "input has shape (12,)")
    assert not (tmp_path / "out").exists()


def test_labels_beyond_the_networks_outputs(tmp_path, capsys, tanh_mlp):
    np.savez(tmp_path / "d.npz", x_test=np.zeros((4, 12), np.float32), y_test=np.arange(4) + 3)
    code, _, err = compress(capsys, "--model", tanh_mlp[0], "--data", tmp_path / "d.npz",
                            "--out", tmp_path / "out")
    assert_one_line_error(code, err, "class label 6 but mlp.onnx has 4 outputs")


def test_network_with_no_fc_layer_on_eie(tmp_path, capsys):
    class ConvOnly(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 2, 3)

        def forward(self, x):
            return torch.relu(self.conv(x)).mean((2, 3))

    export_pt2(ConvOnly().eval(), torch.rand(2, 1, 5, 5), tmp_path / "c.pt2")
    code, _, err = compress(capsys, "--model", tmp_path / "c.pt2", "--out", tmp_path / "out")
    assert_one_line_error(code, err, "c.pt2: no FC layer runs on EIE")
    assert not (tmp_path / "out").exists()


def test_unsupported_operator_and_unknown_model(tmp_path, capsys):
    class Cumsum(nn.Module):
        def forward(self, x):
            return torch.cumsum(x, 1)

    export_pt2(Cumsum(), torch.rand(2, 3), tmp_path / "m.pt2")
    code, _, err = compress(capsys, "--model", tmp_path / "m.pt2", "--out", tmp_path / "out")
    assert_one_line_error(code, err, "node 'cumsum' (op aten.cumsum) is not supported")
    code, _, err = compress(capsys, "--model", "lenet301", "--out", tmp_path / "out")
    assert_one_line_error(code, err, "--model lenet301: neither a built-in model")


def test_builtin_only_and_file_only_options_are_refused(tmp_path, capsys, tanh_mlp):
    code, _, err = compress(capsys, "--model", "lenet300", "--task", "regression", "--out", tmp_path / "o")
    assert_one_line_error(code, err, "--task applies to a model file")
    code, _, err = compress(capsys, "--model", tanh_mlp[0], "--weights", tanh_mlp[0], "--out", tmp_path / "o")
    assert_one_line_error(code, err, "--weights applies to the built-in models")
    code, _, err = compress(capsys, "--model", tanh_mlp[0], "--density", "nope=0.1", "--out", tmp_path / "o")
    assert_one_line_error(code, err, "--density: unknown layer(s) nope")
