import gzip
import json
import os

import numpy as np
import pytest
import torch
from torch import nn

from eie.cli import main
from sw.compression.compress import CompressSettings, compress_module, write_outputs
from sw.compression.data import idx_bytes, load_mnist, to_tensors
from sw.compression.modelfile import load_model
from sw.compression.models import (
    ChainNet,
    apply_quantized,
    build_from_quantized,
    build_model,
    chain_from_state_dict,
    count_params,
)
from sw.compression.train import predict, random_shift
from tests.helpers_nets import write_mnist

MNIST = os.environ.get("EIE_MNIST_DIR")
needs_mnist = pytest.mark.skipif(not MNIST, reason="EIE_MNIST_DIR is not set (point it at the "
                                                   "MNIST IDX files to run the end-to-end test)")
QUICK = ["--epochs", "1", "--prune-iters", "1", "--retrain-epochs", "0", "--finetune-epochs", "0",
         "--quiet"]


def run_cli(capsys, *argv):
    code = main(["compress", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code, err, *words):
    assert code == 2
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("eie compress: error:"), err
    for w in words:
        assert w in lines[0], lines[0]


# -- models -----------------------------------------------------------------------------------

def test_builtin_models_have_the_papers_sizes():
    assert count_params(build_model("lenet300")) == 266_610
    assert count_params(build_model("lenet5")) == 431_080  # Caffe LeNet-5: 431K
    x = torch.zeros(2, 1, 28, 28)
    assert build_model("lenet5")(x).shape == (2, 10) and build_model("lenet300")(x).shape == (2, 10)


def test_state_dict_becomes_a_chain_of_its_layers():
    sd = {"a.weight": torch.randn(8, 4), "a.bias": torch.randn(8), "b.weight": torch.randn(3, 8)}
    net = chain_from_state_dict(sd)
    assert [(s.name, s.kind, s.relu, s.bias) for s in net.specs] == [
        ("a", "linear", True, True), ("b", "linear", False, False)]
    assert torch.equal(net.layer("a").weight, sd["a.weight"])


def test_random_shift_translates_each_image_within_range():
    x = torch.zeros(200, 1, 9, 9)
    x[:, 0, 4, 4] = 1.0  # one bright pixel in the middle
    x[:, 0, 3, 4] = 0.5
    out = random_shift(x, 2, torch.Generator().manual_seed(0))
    pos = torch.nonzero(out[:, 0] == 1.0)
    assert pos.shape[0] == 200  # nothing fell off the edge
    dy, dx = pos[:, 1] - 4, pos[:, 2] - 4
    assert dy.abs().max() == 2 and dx.abs().max() == 2
    assert len(set(zip(dy.tolist(), dx.tolist(), strict=True))) == 25  # all 25 offsets occur
    assert torch.all(out[pos[:, 0], 0, pos[:, 1] - 1, pos[:, 2]] == 0.5)  # shape moved intact
    assert torch.allclose(out.sum((1, 2, 3)), x.sum((1, 2, 3)))


# -- bad input: one line, exit 2, nothing written ---------------------------------------------

def test_missing_data_directory(tmp_path, capsys):
    code, _, err = run_cli(capsys, "--data", tmp_path / "nope", "--out", tmp_path / "o", *QUICK)
    assert_one_line_error(code, err, "does not exist", "--data DIR or set EIE_MNIST_DIR")
    assert not (tmp_path / "o").exists()


def test_no_data_given(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("EIE_MNIST_DIR", raising=False)
    code, _, err = run_cli(capsys, "--out", tmp_path / "o", *QUICK)
    assert_one_line_error(code, err, "no MNIST data")


def test_corrupt_data_file(tmp_path, capsys):
    write_mnist(tmp_path)
    raw = idx_bytes(np.zeros((32, 28, 28), np.uint8))
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(raw[:100]))
    code, _, err = run_cli(capsys, "--data", tmp_path, "--out", tmp_path / "o", *QUICK)
    assert_one_line_error(code, err, "train-images-idx3-ubyte.gz", "truncated")


def test_checkpoint_that_does_not_load(tmp_path, capsys):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"this is not a checkpoint")
    code, _, err = run_cli(capsys, "--weights", bad, "--out", tmp_path / "o", *QUICK)
    assert_one_line_error(code, err, "bad.pt", "does not load")


def test_checkpoint_lacking_expected_keys(tmp_path, capsys):
    ck = tmp_path / "other.pt"
    torch.save({"fc.weight": torch.zeros(3, 3)}, ck)
    code, _, err = run_cli(capsys, "--weights", ck, "--out", tmp_path / "o", *QUICK)
    assert_one_line_error(code, err, "lacks key 'ip1.weight'")
    code, _, err = run_cli(capsys, "--model", "alexnet-fc", "--weights", ck, "--out", tmp_path / "o")
    assert_one_line_error(code, err, "lacks key 'classifier.1.weight'")
    torch.save({"classifier.1.weight": torch.zeros(3, 3)}, ck)
    code, _, err = run_cli(capsys, "--model", "alexnet-fc", "--weights", ck, "--out", tmp_path / "o")
    assert_one_line_error(code, err, "classifier.1.weight has shape (3, 3), expected (4096, 9216)")


def test_checkpoint_with_nan_weights(tmp_path, capsys):
    sd = build_model("lenet300").state_dict()
    sd["ip2.weight"][3, 4] = float("nan")
    ck = tmp_path / "nan.pt"
    torch.save(sd, ck)
    code, _, err = run_cli(capsys, "--weights", ck, "--out", tmp_path / "o", *QUICK)
    assert_one_line_error(code, err, "ip2.weight holds NaN or Inf")


def test_layer_with_every_weight_pruned(tmp_path, capsys):
    write_mnist(tmp_path)
    code, _, err = run_cli(capsys, "--data", tmp_path, "--out", tmp_path / "o",
                           "--sensitivity", "ip3=1000", *QUICK)
    assert_one_line_error(code, err, "layer ip3: every weight pruned")
    assert not (tmp_path / "o").exists(), "a failed run left an output directory"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".o.")], "temp dir left behind"


@pytest.mark.parametrize("spec", ["9", "0", "ip1=12", "4,ip3=0", "four"])
def test_bits_out_of_range(tmp_path, capsys, spec):
    code, _, err = run_cli(capsys, "--bits", spec, "--out", tmp_path / "o", *QUICK)
    assert_one_line_error(code, err, "bits")


def test_unknown_layer_in_sensitivity(tmp_path, capsys):
    code, _, err = run_cli(capsys, "--sensitivity", "ip9=1.0", "--out", tmp_path / "o", *QUICK)
    assert_one_line_error(code, err, "unknown layer(s) ip9", "ip1, ip2, ip3")


def test_output_directory_that_cannot_be_written(tmp_path, capsys):
    write_mnist(tmp_path)
    blocker = tmp_path / "file"
    blocker.write_text("a file, not a directory")
    code, _, err = run_cli(capsys, "--data", tmp_path, "--out", blocker / "out", *QUICK)
    assert_one_line_error(code, err, "cannot write output directory")


def test_alexnet_fc_needs_weights(tmp_path, capsys):
    code, _, err = run_cli(capsys, "--model", "alexnet-fc", "--out", tmp_path / "o")
    assert_one_line_error(code, err, "--weights")


# -- the Python API on any module -------------------------------------------------------------

class SmallConvNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 8 * 8, 5)

    def forward(self, x):
        return self.fc(torch.relu(self.conv(x)).flatten(1))


def _small_run(distill=0.0):
    torch.manual_seed(0)
    net = SmallConvNet()
    g = torch.Generator().manual_seed(0)
    x = torch.randn(128, 1, 8, 8, generator=g)
    y = torch.randint(0, 5, (128,), generator=g)
    s = CompressSettings(dense_epochs=1, prune_iters=2, retrain_epochs=1, finetune_epochs=1,
                         quality=0.8, layer_bits={"conv": 5}, batch_size=32, distill=distill,
                         progress=False)
    return net, x, y, compress_module(net, (x, y), (x, y), s)


def test_compress_module_on_an_arbitrary_module():
    net, x, y, res = _small_run()
    assert [(q.name, q.kind, q.bits) for q in res.layers] == [("conv", "conv", 5), ("fc", "linear", 4)]
    assert res.layers[0].meta == {"stride": 1, "padding": 1}
    for q in res.layers:
        layer = getattr(net, q.name)
        assert np.array_equal(layer.weight.detach().numpy(), q.dense())
        assert 0 < q.nnz < q.indices.size
    rep = res.report
    assert rep["layers"]["compressed_bytes"] == rep["compressed_bytes"]
    assert rep["error_compressed"] is not None and rep["weights"] == 4 * 9 + 256 * 5
    # the quantized layers go back into a fresh copy of the architecture
    other = apply_quantized(SmallConvNet(), res.layers)
    assert np.array_equal(predict(other, x), predict(net, x))


def test_same_seed_same_compressed_model():
    a, b = _small_run(distill=0.5)[3], _small_run(distill=0.5)[3]
    for qa, qb in zip(a.layers, b.layers, strict=True):
        assert np.array_equal(qa.indices, qb.indices) and np.array_equal(qa.codebook, qb.codebook)
    assert a.report["compressed_bytes"] == b.report["compressed_bytes"]


def test_compress_module_without_data_prunes_to_target_densities():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(300, 200), nn.ReLU(), nn.Linear(200, 50))
    s = CompressSettings(density={"0": 0.09, "2": 0.25}, progress=False)
    res = compress_module(net, None, None, s)
    assert res.report["error_dense"] is None and res.report["error_compressed"] is None
    kept = [q.nnz / q.indices.size for q in res.layers]
    assert kept == pytest.approx([0.09, 0.25], abs=0.002)


# -- end to end on real MNIST ------------------------------------------------------------------

@pytest.mark.mnist
@needs_mnist
def test_eie_compress_end_to_end_on_a_few_thousand_images(tmp_path, capsys):
    out = tmp_path / "lenet300"
    code, stdout, err = run_cli(
        capsys, "--model", "lenet300", "--data", MNIST, "--out", out, "--limit-train", 3000,
        "--limit-test", 1000, "--epochs", 2, "--prune-iters", 2, "--retrain-epochs", 1,
        "--finetune-epochs", 1, "--bits", "4,ip3=5", "--no-progress")
    assert code == 0, err
    assert "total" in stdout and "x" in stdout
    report = json.loads((out / "report.json").read_text())
    for key in ("ratio", "error_dense", "error_compressed", "compressed_bytes", "layers",
                "timings", "settings", "seed"):
        assert key in report
    assert report["compressed_bytes"] == os.path.getsize(out / "model.eie")
    assert report["ratio"] == pytest.approx(report["original_bytes"] / report["compressed_bytes"])
    assert report["original_bytes"] == 4 * 266_610
    assert [r["name"] for r in report["layers"]["layers"]] == ["ip1", "ip2", "ip3"]
    assert report["quantization"]["ip3"]["bits"] == 5 and report["quantization"]["ip1"]["bits"] == 4
    assert 0 <= report["error_compressed"] <= 1 and report["ratio"] > 10
    assert report["roundtrip"] == {"identical_layers": True, "identical_predictions": True}
    for png in ("weights_dense.png", "weights_pruned.png", "weights_quantized.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG"
    assert (out / "table.txt").read_text().startswith("layer")
    layers, meta = load_model(out / "model.eie")
    assert meta["model"] == "lenet300" and [q.bits for q in layers] == [4, 4, 5]


@pytest.mark.mnist
@needs_mnist
def test_model_file_round_trip_gives_identical_predictions(tmp_path):
    train, test = load_mnist(MNIST)
    tr, te = to_tensors(train.take(2000)), to_tensors(test.take(2000))
    torch.manual_seed(0)
    net = build_model("lenet300")
    s = CompressSettings(dense_epochs=1, prune_iters=2, retrain_epochs=1, finetune_epochs=1,
                         sensitivity={"ip1": 1.5, "ip2": 1.2, "ip3": 0.8}, progress=False)
    res = compress_module(net, tr, te, s)
    assert all(np.all(q.indices[q.indices == 0] == 0) for q in res.layers)
    report = write_outputs(res, tmp_path / "out", {"model": "lenet300"}, None, te[0])
    assert report["compressed_bytes"] == os.path.getsize(tmp_path / "out" / "model.eie")
    layers, _ = load_model(tmp_path / "out" / "model.eie")
    rebuilt = build_from_quantized(layers)
    assert isinstance(rebuilt, ChainNet)
    for a, b in zip(layers, res.layers, strict=True):
        assert np.array_equal(a.dense(), b.dense()) and np.array_equal(a.bias, b.bias)
    assert np.array_equal(predict(rebuilt, te[0]), predict(res.module, te[0]))
