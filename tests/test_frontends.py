"""sw.frontends: loading users' model files, the host/EIE split, float and hybrid execution;
sw.compression.data: datasets users bring. Networks are tiny and trained here for a few steps."""

import numpy as np
import onnx
import pytest
import torch
from helpers_nets import blobs, train
from onnx import TensorProto, helper, numpy_helper
from torch import nn

from sw.compression.data import Dataset, evaluate, load_dataset, write_idx
from sw.compression.modelfile import save_model
from sw.errors import DataError
from sw.frontends import FCLayer, detect_format, load_network
from sw.qlayer import QuantizedLayer

# torch.onnx's TorchScript-based exporter (dynamo=False) and torch.jit.script warn that they
# are deprecated: both are what users' files come from, so the tests use them.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")


def mlp(hidden_act: nn.Module) -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(12, 32), nn.ReLU(), nn.Linear(32, 24), hidden_act,
                         nn.Linear(24, 16), nn.ReLU(), nn.Linear(16, 4))


def export_onnx(model: nn.Module, x: torch.Tensor, path) -> None:
    torch.onnx.export(model, (x[:2],), str(path), dynamo=False, input_names=["x"],
                      output_names=["y"], dynamic_axes={"x": {0: "b"}, "y": {0: "b"}})


def export_pt2(model: nn.Module, x: torch.Tensor, path) -> None:
    torch.export.save(torch.export.export(model, (x[:2],)), str(path))


def ref(model: nn.Module, x: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        return model(x).numpy()


@pytest.fixture(scope="module")
def data():
    return blobs(256, spread=3.0)


@pytest.fixture(scope="module")
def tanh_mlp(data):
    return train(mlp(nn.Tanh()), *data, steps=60)


@pytest.fixture(scope="module")
def relu_mlp(data):
    return train(mlp(nn.ReLU()), *data, steps=60)


def shapes(net):
    return [[(fc.weight.shape, fc.bias is not None, fc.relu) for fc in seg] for seg in net.eie_layers()]


# -- (a) the same MLP from every format ----------------------------------------------------------

def test_tanh_mlp_from_onnx_and_pt2_gives_same_layers_and_outputs(tmp_path, tanh_mlp, data):
    x = data[0]
    export_onnx(tanh_mlp, x, tmp_path / "m.onnx")
    export_pt2(tanh_mlp, x, tmp_path / "m.pt2")
    a, b = load_network(tmp_path / "m.onnx"), load_network(tmp_path / "m.pt2")
    assert (a.format, b.format) == ("onnx", "torch.export")
    assert a.input_shape == b.input_shape == (12,)
    # Tanh splits the chain: EIE [fc, relu, fc] | host [tanh] | EIE [fc, relu, fc]
    assert [s.kind for s in a.segments] == [s.kind for s in b.segments] == ["eie", "host", "eie"]
    assert shapes(a) == shapes(b) == [[((32, 12), True, True), ((24, 32), True, False)],
                                      [((16, 24), True, True), ((4, 16), True, False)]]
    for la, lb in zip(sum(a.eie_layers(), []), sum(b.eie_layers(), []), strict=True):
        assert np.array_equal(la.weight, lb.weight) and np.array_equal(la.bias, lb.bias)
    tanh = a.segments[1].nodes[0]
    assert tanh.op == "tanh" and tanh.reason == "Tanh between FC layers: not ReLU/identity, splits the chain"
    for net in (a, b):
        np.testing.assert_allclose(net.run_float(x), ref(tanh_mlp, x), rtol=1e-5, atol=1e-5)


def test_relu_mlp_from_state_dict_onnx_and_torchscript_agree(tmp_path, relu_mlp, data):
    x = data[0]
    torch.save(relu_mlp.state_dict(), tmp_path / "sd.pt")
    export_onnx(relu_mlp, x, tmp_path / "m.onnx")
    torch.jit.script(relu_mlp).save(str(tmp_path / "ts.pt"))
    nets = [load_network(tmp_path / f) for f in ("sd.pt", "m.onnx", "ts.pt")]
    assert [n.format for n in nets] == ["state_dict", "onnx", "torchscript"]
    for net in nets:
        assert [s.kind for s in net.segments] == ["eie"]  # one chain: ReLU everywhere
        assert [fc.relu for fc in net.eie_layers()[0]] == [True, True, True, False]
        np.testing.assert_allclose(net.run_float(x), ref(relu_mlp, x), rtol=1e-5, atol=1e-5)
    assert [fc.name for fc in nets[0].eie_layers()[0]] == ["0", "2", "4", "6"]
    for la, lb in zip(nets[0].eie_layers()[0], nets[1].eie_layers()[0], strict=True):
        assert np.array_equal(la.weight, lb.weight) and np.array_equal(la.bias, lb.bias)


def test_state_dict_activation_argument_applies_between_every_pair(tmp_path, data):
    torch.manual_seed(1)
    m = nn.Sequential(nn.Linear(12, 8), nn.Tanh(), nn.Linear(8, 8), nn.Tanh(), nn.Linear(8, 3)).eval()
    torch.save(m.state_dict(), tmp_path / "sd.pt")
    net = load_network(tmp_path / "sd.pt", act="tanh")
    assert [s.kind for s in net.segments] == ["eie", "host", "eie", "host", "eie"]
    np.testing.assert_allclose(net.run_float(data[0]), ref(m, data[0]), rtol=1e-5, atol=1e-5)
    ident = load_network(tmp_path / "sd.pt", act="identity")
    assert [s.kind for s in ident.segments] == ["eie"]
    assert [fc.relu for fc in ident.eie_layers()[0]] == [False] * 3


# -- (b) conv + FC: host front, EIE back --------------------------------------------------------

class ConvFC(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.fc1 = nn.Linear(4 * 4 * 4, 16)
        self.fc2 = nn.Linear(16, 3)

    def forward(self, x):
        x = torch.flatten(self.pool(torch.relu(self.conv(x))), 1)
        return self.fc2(torch.relu(self.fc1(x)))


@pytest.fixture(scope="module")
def conv_fc():
    g = torch.Generator().manual_seed(2)
    x = torch.rand(192, 1, 8, 8, generator=g)
    y = (x[:, 0, :4].mean((1, 2)) > x[:, 0, 4:].mean((1, 2))).long() + (x.mean((1, 2, 3)) > 0.5).long()
    return train(ConvFC(), x, y, steps=40), x


@pytest.mark.parametrize("fmt", ["onnx", "pt2"])
def test_conv_fc_splits_into_host_conv_and_eie_fc_chain(tmp_path, conv_fc, fmt):
    model, x = conv_fc
    path = tmp_path / f"m.{fmt}"
    (export_onnx if fmt == "onnx" else export_pt2)(model, x, path)
    net = load_network(path)
    assert [(s.kind, [n.op for n in s.nodes]) for s in net.segments] == [
        ("host", ["conv2d", "relu", "max_pool2d", "flatten"]),
        ("eie", ["linear", "relu", "linear"]),
    ]
    reasons = [n.reason for n in net.nodes]
    assert reasons[0] == "Conv: not a matrix-vector product"
    assert reasons[3] == "Flatten before an FC layer: a host no-op reshape"
    assert net.input_shape == (1, 8, 8)
    np.testing.assert_allclose(net.run_float(x), ref(model, x), rtol=1e-5, atol=1e-5)


def test_run_hybrid_hands_each_eie_segment_to_the_runner(tmp_path, tanh_mlp, data):
    x = data[0][:10]
    export_pt2(tanh_mlp, x, tmp_path / "m.pt2")
    net = load_network(tmp_path / "m.pt2")
    calls = []

    def runner(i: int, a: np.ndarray) -> np.ndarray:  # what the golden model / RTL would do
        calls.append((i, a.shape, a.dtype))
        for fc in net.eie_layers()[i]:
            a = a @ fc.weight.T + fc.bias
            a = np.maximum(a, 0) if fc.relu else a
        return a

    np.testing.assert_allclose(net.run_hybrid(x.numpy(), runner), net.run_float(x), rtol=1e-5, atol=1e-6)
    assert calls == [(0, (10, 12), np.float32), (1, (10, 24), np.float32)]
    with pytest.raises(DataError, match=r"runner returned shape \(10, 3\), expected \(10, 24\)"):
        net.run_hybrid(x, lambda i, a: np.zeros((len(a), 3), np.float32))


def test_with_eie_layers_replaces_weights_and_keeps_the_rest(tanh_mlp, tmp_path, data):
    export_pt2(tanh_mlp, data[0], tmp_path / "m.pt2")
    net = load_network(tmp_path / "m.pt2")
    zeroed = net.with_eie_layers(lambda i, fc: fc._replace(weight=np.zeros_like(fc.weight)) if i == 1 else fc)
    out = zeroed.run_float(data[0][:5])
    last = net.eie_layers()[1][-1]
    np.testing.assert_allclose(out, np.broadcast_to(last.bias, out.shape), atol=1e-6)
    assert np.array_equal(net.eie_layers()[1][0].weight, tanh_mlp[4].weight.detach().numpy())
    flipped = [[fc._replace(relu=not fc.relu) for fc in seg] for seg in net.eie_layers()]
    with pytest.raises(DataError, match="relu flag changed"):
        net.with_eie_layers(flipped)


# -- (c) host operators: residual, GELU, BatchNorm, softmax ---------------------------------------

class ResidualNet(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(3)
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.fc1 = nn.Linear(4, 8)
        self.fc2 = nn.Linear(8, 8)
        self.out = nn.Linear(8, 3)

    def forward(self, x):
        x = nn.functional.adaptive_avg_pool2d(torch.relu(self.bn(self.conv(x))), 1).flatten(1)
        h = self.fc1(x)
        h = h + self.fc2(torch.relu(h))  # residual around an FC layer
        return torch.softmax(self.out(nn.functional.gelu(h)), dim=-1)


@pytest.mark.parametrize("fmt", ["onnx", "pt2"])
def test_residual_gelu_batchnorm_run_on_the_host(tmp_path, fmt):
    model = ResidualNet()
    x = torch.rand(32, 1, 6, 6)
    model.train()
    model(x * 2 + 1)  # non-trivial BatchNorm running statistics
    model.eval()
    path = tmp_path / f"m.{fmt}"
    (export_onnx if fmt == "onnx" else export_pt2)(model, x, path)
    net = load_network(path)
    ops = {n.op: n for n in net.nodes}
    assert {"add", "gelu", "softmax", "global_avg_pool"} <= set(ops)
    assert ops["add"].placement == ops["gelu"].placement == "host"
    assert "residual" in ops["add"].reason
    # fc1's output is read twice (relu and the residual add): the chain ends after fc1
    assert shapes(net) == [[((8, 4), True, False)], [((8, 8), True, False)], [((3, 8), True, False)]]
    np.testing.assert_allclose(net.run_float(x), ref(model, x), rtol=1e-5, atol=1e-6)
    if fmt == "pt2":
        assert ops["batch_norm"].placement == "host"


def test_compressed_model_file_loads_as_relu_chain(tmp_path):
    rng = np.random.default_rng(0)
    layers = []
    for i, (n_out, n_in) in enumerate([(6, 5), (3, 6)]):
        codebook = np.r_[0.0, np.linspace(-1, 1, 15)].astype(np.float32)
        layers.append(QuantizedLayer(f"ip{i + 1}", "linear", codebook, rng.integers(0, 16, (n_out, n_in)),
                                     rng.standard_normal(n_out).astype(np.float32), 4,
                                     {"relu": i == 0}))
    save_model(tmp_path / "model.eie", layers)
    net = load_network(tmp_path / "model.eie")
    assert net.format == "eie" and [s.kind for s in net.segments] == ["eie"]
    assert [fc.relu for fc in net.eie_layers()[0]] == [True, False]
    x = rng.standard_normal((4, 5)).astype(np.float32)
    h = np.maximum(x @ layers[0].dense().T + layers[0].bias, 0)
    np.testing.assert_allclose(net.run_float(x), h @ layers[1].dense().T + layers[1].bias, rtol=1e-5, atol=1e-5)


# -- content recognition and bad inputs ---------------------------------------------------------

def test_format_is_recognised_by_content_not_name(tmp_path, relu_mlp, data):
    export_onnx(relu_mlp, data[0], tmp_path / "model.bin")
    torch.save(relu_mlp.state_dict(), tmp_path / "weights.onnx")
    assert detect_format(tmp_path / "model.bin") == "onnx"
    assert detect_format(tmp_path / "weights.onnx") == "state_dict"
    assert load_network(tmp_path / "weights.onnx").format == "state_dict"


def onnx_graph(op: str, domain: str = "") -> onnx.ModelProto:
    w = numpy_helper.from_array(np.ones((4, 3), np.float32), "w")
    nodes = [helper.make_node("Gemm", ["x", "w"], ["h"], name="Gemm_0", transB=1),
             helper.make_node("Relu", ["h"], ["r"], name="Relu_1"),
             helper.make_node(op, ["r"] if domain else ["r", "r"], ["y"], name=f"{op}_3",
                              domain=domain, **({} if domain else {"equation": "bi,bi->bi"}))]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", 3])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["b", 4])], [w])
    opsets = [helper.make_opsetid("", 17)] + ([helper.make_opsetid(domain, 1)] if domain else [])
    return helper.make_model(g, opset_imports=opsets)


def test_onnx_string_attributes_are_text_and_the_network_stores(tmp_path):
    from sw.frontends.stored import network_from_meta, network_meta

    w = numpy_helper.from_array(np.ones((4, 3), np.float32), "w")
    nodes = [helper.make_node("Gemm", ["x", "w"], ["h"], name="Gemm_0", transB=1),
             helper.make_node("Gelu", ["h"], ["y"], name="Gelu_1", approximate="tanh")]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", 3])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["b", 4])], [w])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 20)]), tmp_path / "g.onnx")
    net = load_network(tmp_path / "g.onnx")
    gelu = next(n for n in net.nodes if n.op == "gelu")
    assert gelu.attrs["approximate"] == "tanh"
    x = np.linspace(-2, 2, 6, dtype=np.float32).reshape(2, 3)
    want = torch.nn.functional.gelu(torch.from_numpy(x) @ torch.ones(3, 4), approximate="tanh")
    assert np.allclose(net.run_float(x), want.numpy(), atol=1e-6)
    fc = QuantizedLayer("Gemm_0", "linear", np.array([0, 1] + [0.5] * 14, np.float32),
                        np.ones((4, 3), np.uint8), None, 4)
    import json

    back = network_from_meta(json.loads(json.dumps(network_meta(net))), [fc], "g")
    assert next(n for n in back.nodes if n.op == "gelu").attrs == {"approximate": "tanh"}


@pytest.mark.parametrize("op,domain", [("Einsum", ""), ("MyFancyOp", "com.example")])
def test_unsupported_onnx_operator_is_one_line_naming_node_and_op(tmp_path, op, domain):
    onnx.save(onnx_graph(op, domain), tmp_path / "model.onnx")
    with pytest.raises(DataError) as e:
        load_network(tmp_path / "model.onnx")
    msg = str(e.value)
    assert msg.startswith(f"model.onnx: node '{op}_3' (op {op}) is not supported: supported ops are Gemm, ")
    assert "\n" not in msg


def test_unsupported_torch_export_operator_is_named(tmp_path):
    class Cumsum(nn.Module):
        def forward(self, x):
            return torch.cumsum(x, 1)

    export_pt2(Cumsum(), torch.rand(2, 3), tmp_path / "m.pt2")
    with pytest.raises(DataError, match=r"m.pt2: node 'cumsum' \(op aten.cumsum\) is not supported"):
        load_network(tmp_path / "m.pt2")


@pytest.mark.parametrize("content", [b"\x00\x01garbage bytes", b"PK\x03\x04broken zip", b"",
                                     b"\x80\x02not a pickle", b"EIEZ\x01"])
def test_corrupt_file_is_one_line(tmp_path, content):
    p = tmp_path / "model.onnx"
    p.write_bytes(content)
    with pytest.raises(DataError) as e:
        load_network(p)
    assert "\n" not in str(e.value) and str(p.name) in str(e.value)


def test_truncated_onnx_and_pt2_are_one_line(tmp_path, relu_mlp, data):
    export_onnx(relu_mlp, data[0], tmp_path / "m.onnx")
    export_pt2(relu_mlp, data[0], tmp_path / "m.pt2")
    for f in ("m.onnx", "m.pt2"):
        raw = (tmp_path / f).read_bytes()
        (tmp_path / f).write_bytes(raw[: len(raw) // 2])
        with pytest.raises(DataError) as e:
            load_network(tmp_path / f)
        assert "\n" not in str(e.value)


def test_state_dict_that_does_not_chain_names_both_tensors(tmp_path):
    sd = {"a.weight": torch.zeros(8, 4), "a.bias": torch.zeros(8), "b.weight": torch.zeros(3, 7)}
    torch.save(sd, tmp_path / "sd.pt")
    with pytest.raises(DataError, match=r"'a.weight' \(8, 4\) does not chain into 'b.weight' \(3, 7\)"):
        load_network(tmp_path / "sd.pt")
    with pytest.raises(DataError, match="unknown activation 'swish'"):
        load_network(tmp_path / "sd.pt", act="swish")


def test_input_of_the_wrong_shape_names_both_shapes(tmp_path, relu_mlp, data):
    torch.save(relu_mlp.state_dict(), tmp_path / "sd.pt")
    net = load_network(tmp_path / "sd.pt")
    with pytest.raises(DataError, match=r"examples \(10,\).*shape \(12,\)"):
        net.run_float(np.zeros((2, 10), np.float32))


# -- datasets -----------------------------------------------------------------------------------

def test_npz_with_keras_keys_is_a_classification_dataset(tmp_path):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", x_train=rng.random((20, 28, 28)), y_train=rng.integers(0, 10, 20),
             x_test=rng.random((5, 28, 28)), y_test=np.arange(5))
    ds = load_dataset(tmp_path / "d.npz")
    assert ds.task == "classification" and ds.x_train.shape == (20, 28, 28)
    assert ds.x_test.dtype == np.float32 and ds.y_test.dtype == np.int64
    assert ds.for_input((784,)).x_test.shape == (5, 784)
    with pytest.raises(DataError, match=r"examples have shape \(28, 28\), the network's input has shape \(12,\)"):
        ds.for_input((12,))
    logits = np.eye(5, 10)[[0, 1, 2, 3, 0]]
    assert ds.metrics(logits) == {"accuracy": 0.8}


def test_npy_pair_of_real_targets_is_regression_with_rmse_and_max_error(tmp_path):
    np.save(tmp_path / "x.npy", np.ones((4, 3), np.float64))
    np.save(tmp_path / "y.npy", np.array([0.0, 1.0, 2.0, 3.0]))
    ds = load_dataset(tmp_path / "x.npy", tmp_path / "y.npy")
    assert ds.task == "regression" and ds.x_train is None
    m = ds.metrics(np.array([[0.0], [1.0], [2.0], [5.0]]))
    assert m["max_error"] == 2.0 and m["rmse"] == pytest.approx(1.0)


def test_idx_pair_loads(tmp_path):
    write_idx(tmp_path / "x.gz", np.arange(24, dtype=np.uint8).reshape(4, 2, 3))
    write_idx(tmp_path / "y", np.array([1, 0, 1, 2], np.uint8))
    ds = load_dataset(tmp_path / "x.gz", tmp_path / "y")
    assert ds.task == "classification" and ds.example_shape == (2, 3)


def test_npz_missing_keys_are_named_with_those_found(tmp_path):
    np.savez(tmp_path / "d.npz", images=np.zeros((2, 3)), labels=np.zeros(2, np.int64))
    with pytest.raises(DataError, match=r"missing key\(s\) x_test, y_test \(found: images, labels; expected x_test, y_test"):
        load_dataset(tmp_path / "d.npz")


def test_dataset_dtype_and_length_errors(tmp_path):
    np.savez(tmp_path / "s.npz", x_test=np.array([["a", "b"]]), y_test=np.array([0]))
    with pytest.raises(DataError, match="x_test has dtype <U1; expected numbers"):
        load_dataset(tmp_path / "s.npz")
    np.savez(tmp_path / "n.npz", x_test=np.zeros((3, 2)), y_test=np.zeros(2, np.int64))
    with pytest.raises(DataError, match="x_test has 3 examples, y_test 2"):
        load_dataset(tmp_path / "n.npz")
    np.savez(tmp_path / "f.npz", x_test=np.zeros((2, 2)), y_test=np.array([0.5, 1.0]))
    with pytest.raises(DataError, match="fractional values"):
        load_dataset(tmp_path / "f.npz", task="classification")
    (tmp_path / "bad.npz").write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(DataError, match="corrupt .npz"):
        load_dataset(tmp_path / "bad.npz")


def test_evaluate_rejects_unknown_task_and_mismatched_lengths():
    with pytest.raises(DataError, match="unknown task"):
        evaluate("ranking", np.zeros(2), np.zeros(2))
    with pytest.raises(DataError, match="3 outputs for 2 targets"):
        Dataset(np.zeros((2, 1), np.float32), np.zeros(2, np.int64), "classification").metrics(np.zeros((3, 2)))


def test_fc_layer_is_a_plain_tuple():
    fc = FCLayer("ip1", np.zeros((2, 3), np.float32), None, True)
    name, w, b, relu = fc
    assert (name, w.shape, b, relu) == ("ip1", (2, 3), None, True)


def test_compressed_conv_model_file_matches_the_pipelines_own_network(tmp_path):
    from sw.compression.models import build_from_quantized

    rng = np.random.default_rng(1)
    codebook = np.r_[0.0, np.linspace(-0.5, 0.5, 15)].astype(np.float32)

    def q(name, kind, shape, meta):
        return QuantizedLayer(name, kind, codebook, rng.integers(0, 16, shape),
                              rng.standard_normal(shape[0]).astype(np.float32), 4, meta)

    layers = [q("conv1", "conv", (3, 1, 3, 3), {"relu": True, "pool": 2, "stride": 1, "padding": 1}),
              q("ip1", "linear", (8, 48), {"relu": True}), q("ip2", "linear", (4, 8), {"relu": False})]
    save_model(tmp_path / "model.eie", layers, {"input_shape": [1, 8, 8]})
    net = load_network(tmp_path / "model.eie")
    assert [(s.kind, [n.op for n in s.nodes]) for s in net.segments] == [
        ("host", ["conv2d", "relu", "max_pool2d", "flatten"]), ("eie", ["linear", "relu", "linear"])]
    x = torch.rand(3, 1, 8, 8)
    np.testing.assert_allclose(net.run_float(x), ref(build_from_quantized(layers), x), rtol=1e-5, atol=1e-5)


def test_onnx_matmul_plus_constant_add_is_one_fc_layer(tmp_path):
    rng = np.random.default_rng(0)
    w1, b1, w2 = (rng.standard_normal(s).astype(np.float32) for s in ((5, 4), (4,), (4, 2)))
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["h"], name="mm1"),
             helper.make_node("Add", ["h", "b1"], ["hb"], name="add1"),
             helper.make_node("Relu", ["hb"], ["r"], name="relu1"),
             helper.make_node("Dropout", ["r"], ["d"], name="drop"),
             helper.make_node("MatMul", ["d", "w2"], ["y"], name="mm2")]
    inits = [numpy_helper.from_array(a, n) for a, n in ((w1, "w1"), (b1, "b1"), (w2, "w2"))]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", 5])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["b", 2])], inits)
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), tmp_path / "k.onnx")
    net = load_network(tmp_path / "k.onnx")
    (seg,) = net.eie_layers()
    assert [(fc.name, fc.weight.shape, fc.bias is not None, fc.relu) for fc in seg] == [
        ("mm1", (4, 5), True, True), ("mm2", (2, 4), False, False)]
    x = rng.standard_normal((3, 5)).astype(np.float32)
    np.testing.assert_allclose(net.run_float(x), np.maximum(x @ w1 + b1, 0) @ w2, rtol=1e-5, atol=1e-5)


def test_frontends_import_neither_hw_nor_sim():
    import subprocess
    import sys

    code = ("import sys, sw.frontends, sw.compression.data; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'hw', 'sim', 'amaranth', 'cocotb'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
