"""A user's own network through the command line: `eie run` (golden model) and `eie sim
--model --inputs` (the RTL), on networks built and trained here on synthetic data."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from helpers_nets import train
from torch import nn

from eie.cli import main
from sim.fuzz import FUZZ_CONFIGS
from sw.eie.config import PRESETS
from sw.frontends import load_network
from sw.frontends.hybrid import compile_network


def _classes(rng, n: int, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    x = rng.random((n, *shape)).astype(np.float32)
    flat = x.reshape(n, -1)
    half = flat.shape[1] // 2
    return x, (flat[:, :half].mean(1) > flat[:, half:].mean(1)).astype(np.int64)


def _onnx(net: nn.Module, example: np.ndarray, path) -> None:
    torch.onnx.export(net, torch.from_numpy(example[:1]), str(path), dynamo=False)


@pytest.fixture(scope="module")
def mlp_files(tmp_path_factory):
    """A 4-FC-layer classifier with a Tanh between two of its layers, as ONNX and .npz."""
    d = tmp_path_factory.mktemp("mlp")
    rng = np.random.default_rng(0)
    x, y = _classes(rng, 400, (20,))
    torch.manual_seed(1)
    net = nn.Sequential(nn.Linear(20, 24), nn.ReLU(), nn.Linear(24, 16), nn.Tanh(),
                        nn.Linear(16, 12), nn.ReLU(), nn.Linear(12, 2))
    train(net, x[:300], y[:300])
    _onnx(net, x, d / "mlp.onnx")
    np.savez(d / "data.npz", x_train=x[:300], y_train=y[:300], x_test=x[300:], y_test=y[300:])
    with torch.no_grad():
        want = net(torch.from_numpy(x[300:])).numpy()
    return d, want, y[300:]


def test_eie_run_predicts_what_the_hardware_computes_and_saves_it(mlp_files, capsys):
    d, want, y = mlp_files
    assert main(["run", "--model", str(d / "mlp.onnx"), "--inputs", str(d / "data.npz"),
                 "--out", str(d / "pred.npy"), "--config", "tiny"]) == 0
    out = capsys.readouterr().out
    pred = np.load(d / "pred.npy")
    assert pred.shape == want.shape
    # the same compilation as the command's: golden == it bit for bit, and within fixed-point
    # rounding of the float network with the same (4-bit, one-shot) weights
    data = np.load(d / "data.npz")
    model = compile_network(load_network(d / "mlp.onnx"), PRESETS["tiny"], data["x_train"])
    assert np.array_equal(pred, model.run_golden(data["x_test"]))
    assert np.abs(pred - model.run_quantized(data["x_test"])).max() < 0.02
    assert np.abs(pred - want).max() < 0.25 * np.abs(want).max()
    assert "host  tanh" in out and "splits the chain" in out
    assert "EIE segment 0: /0/Gemm -> /2/Gemm" in out and "EIE segment 1: /4/Gemm -> /6/Gemm" in out
    float_acc = float(out.split("float   accuracy ")[1].split("%")[0])
    golden_acc = float(out.split("golden  accuracy ")[1].split("%")[0])
    assert float_acc == pytest.approx(100 * np.mean(want.argmax(1) == y))
    assert abs(golden_acc - float_acc) <= 3.0


def test_regression_targets_give_rmse_and_max_error(tmp_path, capsys):
    rng = np.random.default_rng(2)
    x = rng.normal(0, 1, (300, 6)).astype(np.float32)
    y = np.stack([np.sin(x[:, 0]) + x[:, 1] * x[:, 2], x[:, 3] - 0.5 * x[:, 4]], 1).astype(np.float32)
    torch.manual_seed(3)
    net = train(nn.Sequential(nn.Linear(6, 32), nn.ReLU(), nn.Linear(32, 2)), x[:250], y[:250],
                 steps=200, loss=nn.functional.mse_loss)
    torch.save(net.state_dict(), tmp_path / "reg.pt")
    np.savez(tmp_path / "reg.npz", x_test=x[250:], y_test=y[250:])
    assert main(["run", "--model", str(tmp_path / "reg.pt"), "--inputs", str(tmp_path / "reg.npz"),
                 "--out", str(tmp_path / "y.npy"), "--config", "tiny"]) == 0
    out = capsys.readouterr().out
    line = next(s for s in out.splitlines() if s.startswith("golden  "))
    rmse = float(line.split("rmse ")[1].split(",")[0])
    fl = float(next(s for s in out.splitlines() if s.startswith("float  ")).split("rmse ")[1].split(",")[0])
    assert "max_error" in line and rmse < 2 * fl + 0.05


def test_per_layer_formats_remove_the_saturation_of_a_layer_beyond_the_default_range(tmp_path, capsys):
    rng = np.random.default_rng(4)
    x = rng.uniform(-3, 3, (200, 10)).astype(np.float32)
    torch.manual_seed(5)
    net = nn.Sequential(nn.Linear(10, 16), nn.ReLU(), nn.Linear(16, 3))
    with torch.no_grad():
        net[0].weight.mul_(60.0)  # hidden activations in the hundreds: beyond 127.996
    _onnx(net, x, tmp_path / "big.onnx")
    np.save(tmp_path / "x.npy", x)
    sat = {}
    for fmt in ("fixed", "auto"):
        assert main(["run", "--model", str(tmp_path / "big.onnx"), "--inputs", str(tmp_path / "x.npy"),
                     "--out", str(tmp_path / f"{fmt}.npy"), "--config", "tiny", "--formats", fmt]) == 0
        line = next(s for s in capsys.readouterr().out.splitlines() if s.startswith("saturated"))
        sat[fmt] = int(line.split("/0/Gemm ")[1].split(",")[0])
    assert sat["fixed"] > 100 and sat["auto"] == 0
    # against the float network with the hardware's weights: only rounding is left once the
    # hidden layer has a format of its own
    want = compile_network(load_network(tmp_path / "big.onnx"), PRESETS["tiny"], x).run_quantized(x)
    assert np.abs(np.load(tmp_path / "auto.npy") - want).max() < 0.1
    assert np.abs(np.load(tmp_path / "fixed.npy") - want).max() > 10


def test_eie_sim_runs_a_conv_and_fc_network_through_the_rtl(tmp_path, capsys):
    rng = np.random.default_rng(6)
    x, y = _classes(rng, 160, (1, 6, 6))
    torch.manual_seed(7)
    net = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                        nn.Linear(27, 16), nn.ReLU(), nn.Linear(16, 2))
    train(net, x[:120], y[:120])
    torch.export.save(torch.export.export(net, (torch.from_numpy(x[:1]),)), tmp_path / "conv.pt2")
    np.savez(tmp_path / "d.npz", x_train=x[:120], y_train=y[:120], x_test=x[120:], y_test=y[120:])
    cfg = tmp_path / "n3d4.json"  # the build the other RTL tests use (cached by content)
    cfg.write_text(json.dumps(FUZZ_CONFIGS["n3d4"].to_dict()))
    rc = main(["sim", "--model", str(tmp_path / "conv.pt2"), "--inputs", str(tmp_path / "d.npz"),
               "--config", str(cfg), "--limit", "12"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "host  conv2d" in out and "eie   linear" in out
    assert "EIE segment 0  27x16x2" in out and "yes (12/12)" in out
    assert "RTL == golden prediction on 12/12" in out and "network outputs RTL == golden: yes" in out
    rtl = float(out.split("rtl     accuracy ")[1].split("%")[0])
    golden = float(out.split("golden  accuracy ")[1].split("%")[0])
    assert rtl == golden


def _fails(argv, capsys) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith(f"eie {argv[0]}: error: ")
    return err


def test_bad_inputs_get_one_line_and_exit_2_and_write_nothing(mlp_files, tmp_path, capsys):
    d, _, _ = mlp_files
    out = tmp_path / "p.npy"
    base = ["run", "--model", str(d / "mlp.onnx"), "--out", str(out), "--config", "tiny"]
    np.savez(tmp_path / "nokeys.npz", a=np.zeros((3, 20), np.float32))
    assert "missing key(s) x_test, y_test" in _fails(base + ["--inputs", str(tmp_path / "nokeys.npz")], capsys)
    np.save(tmp_path / "wrong.npy", np.zeros((5, 21), np.float32))
    assert "(21,)" in _fails(base + ["--inputs", str(tmp_path / "wrong.npy")], capsys)
    np.save(tmp_path / "str.npy", np.array([["a"] * 20] * 2))
    assert "dtype" in _fails(base + ["--inputs", str(tmp_path / "str.npy")], capsys)
    # a chain too wide for the configuration: the sizes needed and available
    big = nn.Sequential(nn.Linear(20, 300), nn.ReLU(), nn.Linear(300, 2))
    _onnx(big, np.zeros((1, 20), np.float32), tmp_path / "big.onnx")
    err = _fails(["run", "--model", str(tmp_path / "big.onnx"), "--inputs", str(d / "data.npz"),
                  "--out", str(out), "--config", "tiny"], capsys)
    assert "does not fit config 'tiny'" in err
    (tmp_path / "junk.onnx").write_bytes(b"\x08\x07garbage")
    assert "junk.onnx" in _fails(base[:1] + ["--model", str(tmp_path / "junk.onnx"), "--inputs",
                                            str(d / "data.npz"), "--out", str(out)], capsys)
    assert not out.exists()


def test_eie_pack_writes_one_image_per_eie_segment_and_the_split(mlp_files, tmp_path, capsys):
    from sw.eie.images import read_images

    d, _, _ = mlp_files
    out = tmp_path / "img"
    assert main(["pack", str(d / "mlp.onnx"), "--calib", str(d / "data.npz"), "--config", "tiny",
                 "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "packed 4 layer(s) in 2 EIE segment(s)" in text and "host  tanh" in text
    split = json.loads((out / "network.json").read_text())
    assert [s["kind"] for s in split["network"]["segments"]] == ["eie", "host", "eie"]
    images = [read_images(out / f"segment{i}") for i in (0, 1)]
    assert [[d.name for d in im.layers] for im in images] == [["/0/Gemm", "/2/Gemm"],
                                                            ["/4/Gemm", "/6/Gemm"]]
    fmts = split["network"]["eie_segments"][0]["formats"]
    assert [images[0].input_frac] + [x.out_frac for x in images[0].layers] == fmts
    # one EIE segment is what a ROM holds: the two-segment network is refused in one line
    assert main(["rom", str(d / "mlp.onnx"), "--config", "tiny", "--out", str(tmp_path / "rom")]) == 2
    assert "2 EIE segments" in capsys.readouterr().err and not (tmp_path / "rom").exists()


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_compress_pack_and_sim_through_the_command_line(mlp_files, tmp_path, capsys, task):
    """The whole flow on a user's file: compress (one-shot), pack, then the compressed
    network through the RTL; classification (the Tanh MLP) and regression."""
    d, _, _ = mlp_files
    model, data = d / "mlp.onnx", d / "data.npz"
    if task == "regression":
        rng = np.random.default_rng(8)
        x = rng.normal(0, 1, (240, 5)).astype(np.float32)
        y = (x[:, :2] @ np.array([[1.0, -0.5], [0.3, 2.0]], np.float32) + np.tanh(x[:, 2:4])).astype(np.float32)
        torch.manual_seed(9)
        net = train(nn.Sequential(nn.Linear(5, 24), nn.ReLU(), nn.Linear(24, 16), nn.Sigmoid(),
                                   nn.Linear(16, 2)), x[:200], y[:200], steps=150, loss=nn.functional.mse_loss)
        model, data = tmp_path / "reg.onnx", tmp_path / "reg.npz"
        _onnx(net, x, model)
        np.savez(data, x_train=x[:200], y_train=y[:200], x_test=x[200:], y_test=y[200:])
    cfg = tmp_path / "n3d4.json"
    cfg.write_text(json.dumps(FUZZ_CONFIGS["n3d4"].to_dict()))
    assert main(["compress", "--model", str(model), "--data", str(data), "--out",
                 str(tmp_path / "c"), "--retrain-epochs", "0", "--finetune-epochs", "0",
                 "--prune-iters", "1", "--no-plots", "--no-progress"]) == 0
    compressed = tmp_path / "c" / "model.eie"
    assert main(["pack", str(compressed), "--calib", str(data), "--config", str(cfg),
                 "--out", str(tmp_path / "img")]) == 0
    assert (tmp_path / "img" / "network.json").exists()
    capsys.readouterr()
    assert main(["sim", "--model", str(compressed), "--inputs", str(data), "--config", str(cfg),
                 "--limit", "6"]) == 0
    out = capsys.readouterr().out
    assert "network outputs RTL == golden: yes" in out and "yes (6/6)" in out
    metric = "accuracy" if task == "classification" else "rmse"
    assert f"rtl     {metric} " in out
