"""Low-bit activations (`eie compress --act-bits B`, sw/compression/act_quant.py): the fake
quantizer is the golden model's fixed-point arithmetic with a straight-through gradient, the
formats it trains with are the ones the packer chooses, and a network trained for 8-bit
activations (k-means or ternary weights) runs on 8-bit EIE RTL bit- and cycle-exactly with
the golden model and the cycle model."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from helpers_nets import blobs, train
from torch import nn

from eie.cli import main
from hw.timing import rtl_timing
from sim.amaranth_host import simulate
from sw.compression.act_quant import ActQuant, fake_quantize, qat_config
from sw.compression.compress import CompressSettings, compress_module
from sw.compression.modelfile import load_model
from sw.compression.models import ChainNet, LayerSpec
from sw.eie import cycles, golden
from sw.eie.config import EIEConfig
from sw.eie.fixedpoint import quantize_input, rounded, saturate
from sw.eie.formats import choose_formats
from sw.eie.pack import pack_network
from sw.errors import DataError
from sw.frontends import load_network
from sw.frontends.hybrid import compile_network

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")

QUICK = dict(prune_iters=2, retrain_epochs=3, retrain_lr=3e-3, finetune_epochs=2,
             finetune_lr=1e-3, batch_size=32, progress=False)


# -- the fake quantizer -------------------------------------------------------------------------

@pytest.mark.parametrize("bits,frac", [(4, 0), (4, 3), (6, 2), (8, 4), (8, 7), (12, 5), (16, 8)])
def test_fake_quantizer_is_the_golden_models_input_quantization(bits, frac):
    rng = np.random.default_rng(bits * 100 + frac)
    top = 2.0 ** (bits - 1 - frac)  # the format's range is about [-top, top)
    x = np.concatenate([rng.normal(0, top, 500), rng.uniform(-2 * top, 2 * top, 500),
                        (rng.integers(-2 ** bits, 2 ** bits, 200) + 0.5) / 2.0 ** frac]
                       ).astype(np.float32)  # the last: exact ties, rounded half to even
    got = fake_quantize(torch.from_numpy(x), frac, bits).numpy().astype(np.float64)
    cfg = EIEConfig(act_bits=bits, act_frac=frac, acc_bits=2 * bits)
    want = quantize_input(x, cfg)
    assert np.array_equal(got * 2.0 ** frac, want)
    assert len(np.unique(got)) <= 2 ** bits
    # the data span the whole range, so all 2**B values are used, and no more
    wide = torch.linspace(-3 * top, 3 * top, 40 * 2 ** bits)
    assert len(torch.unique(fake_quantize(wide, frac, bits))) == 2 ** bits


@pytest.mark.parametrize("bits,shift,frac", [(8, 4, 3), (8, 7, 0), (6, 1, 2), (16, 11, 8)])
def test_output_fake_quantizer_is_the_write_back(bits, shift, frac):
    """Accumulators at ``frac + shift`` fraction bits, rounded half up and saturated to the
    output format: docs/format.md "Arithmetic" steps 2 and 3 (ties included)."""
    rng = np.random.default_rng(bits + shift)
    hi = 2 ** (bits + shift + 1)
    acc = np.concatenate([rng.integers(-hi, hi, 2000),
                          (rng.integers(-hi >> shift, hi >> shift, 300) << shift) + (1 << (shift - 1))])
    cfg = EIEConfig(act_bits=bits, act_frac=0, acc_bits=2 * bits + 16)
    want = saturate(rounded(acc, shift, cfg), bits)
    y = torch.from_numpy(acc.astype(np.float64) / 2.0 ** (frac + shift))
    got = fake_quantize(y, frac, bits, half_up=True).numpy() * 2.0 ** frac
    assert np.array_equal(got, want)


def test_straight_through_gradient_inside_the_range_and_none_where_saturated():
    bits, frac = 8, 4
    x = torch.linspace(-20, 20, 801, dtype=torch.float64, requires_grad=True)  # range -8..7.94
    w = torch.randn(801, dtype=torch.float64)
    (fake_quantize(x, frac, bits) * w).sum().backward()
    v = x.detach()
    inside = (v >= -8) & (v <= 127 / 16)
    assert torch.equal(x.grad[inside], w[inside])  # d fq(x) / dx = 1: passed straight through
    outside = (v < -8 - 1 / 32) | (v > 127 / 16 + 1 / 32)  # beyond half an LSB: saturated
    assert torch.all(x.grad[outside] == 0) and outside.sum() > 400


# -- the formats it trains with are the packer's, and its forward is the golden model ----------

def _mlp_data(n=600, d=12, k=4, seed=0):
    x, y = blobs(n, d, k, seed=seed)
    return (x[:400], y[:400]), (x[400:], y[400:])


def _chain_net(sizes, seed=0) -> ChainNet:
    torch.manual_seed(seed)
    n = len(sizes) - 1
    return ChainNet([LayerSpec(f"fc{i}", "linear", (sizes[i + 1], sizes[i]), relu=i < n - 1)
                     for i in range(n)])


def _compressed(quantizer: str, act_bits: int | None, seed: int = 0):
    tr, te = _mlp_data(seed=seed)
    net = train(_chain_net([12, 24, 16, 4], seed), *tr, steps=60)
    s = CompressSettings(density={"fc0": 0.5, "fc1": 0.5, "fc2": 0.6}, quantizer=quantizer,
                         act_bits=act_bits, **QUICK)
    meta: dict = {}
    return compress_module(net, tr, te, s, meta=meta), tr, te, meta


@pytest.mark.parametrize("quantizer", ["kmeans", "ternary"])
def test_trained_formats_are_the_packers_and_the_fake_quantized_network_is_the_golden_model(quantizer):
    result, tr, te, meta = _compressed(quantizer, act_bits=8)
    assert meta["act_bits"] == 8 and result.report["act_quant"]["act_bits"] == 8
    if quantizer == "ternary":
        assert all(len(np.unique(q.codebook[q.indices])) <= 3 for q in result.layers)
    cfg = qat_config(EIEConfig.load("eie64"), 8)
    calib = tr[0][:1000]
    fmts = choose_formats(result.layers, calib.numpy(), cfg)
    reported = result.report["act_quant"]["formats"]
    names = [q.name for q in result.layers]
    assert [reported[names[0]]["in_frac"]] + [reported[n]["out_frac"] for n in names] == fmts
    assert [reported[n]["chained"] for n in names] == [False, True, True]
    image = pack_network(result.layers, cfg, formats=fmts)
    assert [reported[n]["w_frac"] for n in names] == [d.w_frac for d in image.layers]
    # the module with the layers fake-quantized computes what the golden model does
    net = result.module
    aq = ActQuant(net, {n: net.layer(n) for n in names}, {q.name: q.relu for q in result.layers},
                  cfg, calib)
    x = te[0].numpy()
    want = image.dequantize_output(golden.run_network_batch(image, image.quantize_input(x))[-1])
    with aq.attached(), torch.no_grad():
        got = net(te[0]).double().numpy()
    lsb = 2.0 ** -fmts[-1]
    assert np.abs(got - want).max() <= lsb * 1.0001  # float32 sums: a tie may round apart
    assert np.mean(np.abs(got - want) < lsb / 2) > 0.99
    err = result.report["act_quant"]["error_fake_quantized"]
    assert err == pytest.approx(np.mean(want.argmax(1) != te[1].numpy()), abs=0.011)


def test_finetune_only_prunes_as_without_act_bits_and_then_adapts_the_centroids():
    plain, *_ = _compressed("kmeans", act_bits=None, seed=4)
    tr, te = _mlp_data(seed=4)
    net = train(_chain_net([12, 24, 16, 4], 4), *tr, steps=60)
    s = CompressSettings(density={"fc0": 0.5, "fc1": 0.5, "fc2": 0.6}, act_bits=4,
                         act_phases="finetune", **QUICK)
    late = compress_module(net, tr, te, s)
    assert late.report["pruning"] == plain.report["pruning"]
    assert late.report["error_pruned"] == plain.report["error_pruned"]
    assert late.report["act_quant"]["phases"] == "finetune"
    for a, b in zip(plain.layers, late.layers, strict=True):
        assert np.array_equal(a.indices != 0, b.indices != 0)  # the same weights kept
    assert any(not np.array_equal(a.codebook, b.codebook)
               for a, b in zip(plain.layers, late.layers, strict=True))


def test_act_bits_is_validated_in_one_line(tmp_path, capsys):
    for bad in (3, 17, 2.5):
        with pytest.raises(DataError, match=r"^--act-bits must be an integer in 4\.\.16"):
            CompressSettings(act_bits=bad).check([])
    code = main(["compress", "--model", "lenet300", "--act-bits", "20", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "--act-bits must be an integer in 4..16" in err[0]
    with pytest.raises(DataError, match=r"^--act-phases applies with --act-bits$"):
        CompressSettings(act_phases="finetune").check([])
    with pytest.raises(DataError, match=r"^--act-phases must be one of all, finetune"):
        CompressSettings(act_bits=8, act_phases="dense").check([])


class _HostInBetween(nn.Module):
    """FC-ReLU-FC on EIE, a Tanh on the host, FC on EIE: two EIE segments."""

    def __init__(self):
        super().__init__()
        self.a, self.b, self.c = nn.Linear(12, 24), nn.Linear(24, 16), nn.Linear(16, 4)

    def forward(self, x):
        return self.c(torch.tanh(self.b(torch.relu(self.a(x)))))


def test_a_model_file_with_host_nodes_trains_with_the_formats_eie_run_chooses(tmp_path, capsys):
    (xtr, ytr), (xte, yte) = _mlp_data(seed=3)
    torch.manual_seed(3)
    model = train(_HostInBetween(), xtr, ytr, steps=60)
    torch.onnx.export(model, (xtr[:2],), str(tmp_path / "m.onnx"), dynamo=False,
                      input_names=["x"], output_names=["y"], dynamic_axes={"x": {0: "b"}})
    np.savez(tmp_path / "d.npz", x_train=xtr.numpy(), y_train=ytr.numpy(), x_test=xte.numpy(),
             y_test=yte.numpy())
    out = tmp_path / "out"
    code = main(["compress", "--model", str(tmp_path / "m.onnx"), "--data", str(tmp_path / "d.npz"),
                 "--act-bits", "6", "--out", str(out), "--prune-iters", "2", "--retrain-epochs",
                 "2", "--finetune-epochs", "1", "--batch-size", "32", "--no-progress",
                 "--no-plots", "--quiet"])
    text = capsys.readouterr().out
    assert code == 0
    assert "6-bit activations (eie64, 64 PEs): on-chip image" in text and "bytes saved" in text
    report = json.loads((out / "report.json").read_text())
    aq = report["act_quant"]
    at = aq["onchip"]["at"]
    assert aq["onchip"]["saved_bytes"] == at["16"]["total_bytes"] - at["6"]["total_bytes"] > 0
    assert at["6"]["act_bytes"] < at["16"]["act_bytes"] and \
        at["6"]["spmat_bytes"] == at["16"]["spmat_bytes"]
    assert load_model(out / "model.eie")[1]["act_bits"] == 6
    # what `eie run --config <act_bits 6>` would choose: the same formats the training used
    net = load_network(out / "model.eie")
    model6 = compile_network(net, qat_config(EIEConfig.load("eie64"), 6), xtr.numpy()[:1000])
    fmts = [(f["in_frac"], f["out_frac"], f["w_frac"], f["chained"]) for f in aq["formats"].values()]
    want = []
    for seg in model6.segments:
        for i, d in enumerate(seg.image.layers):
            want.append((d.in_frac, d.out_frac, d.w_frac, i > 0))
    assert fmts == want and [c for *_, c in fmts] == [False, True, False]
    # the file says what it was trained for; a configuration of another width says so once
    assert net.act_bits == 6 and not any(ln.startswith("note:") for ln in model6.describe())
    model16 = compile_network(net, EIEConfig.load("eie64"), xtr.numpy()[:1000])
    notes = [ln for ln in model16.describe() if ln.startswith("note:")]
    assert len(notes) == 1 and "trained for 6-bit activations" in notes[0] and \
        "16-bit" in notes[0]


# -- RTL == golden model and cycle model at 8-bit activations ----------------------------------

def _rtl_config() -> EIEConfig:
    return EIEConfig(name="act8", n_pe=3, queue_depth=4, act_bits=8, act_frac=4, acc_bits=24,
                     spmat_words=128, ptr_depth=128, act_depth=16, bias_depth=64, max_layers=4)


@pytest.mark.parametrize("quantizer", ["kmeans", "ternary"])
def test_rtl_is_bit_and_cycle_exact_at_8_bit_activations(quantizer):
    """A network compressed with 8-bit activation training (k-means, or ternary weights),
    packed for an 8-bit EIE with the formats chosen from its training inputs, in Amaranth's
    simulator: outputs == golden model, cycles and stall cycles == cycle model."""
    result, tr, te, _ = _compressed(quantizer, act_bits=8, seed=1)
    cfg = _rtl_config()
    fmts = choose_formats(result.layers, tr[0][:1000].numpy(), cfg)
    image = pack_network(result.layers, cfg, formats=fmts)
    xs = image.quantize_input(te[0][:6].numpy())
    phys = [image.input_to_physical(v) for v in xs]
    runs = simulate(image, phys, n_layers=3)
    t = rtl_timing(cfg)
    want = golden.run_network_batch(image, xs)
    for b, (r, a0) in enumerate(zip(runs, phys, strict=True)):
        assert np.array_equal(image.to_logical(2, r.output), want[-1][b])
        reports, a = [], a0
        for li in range(3):
            reports.append(cycles.simulate_layer(image, li, a, t))
            a = golden.run_layer(image, li, a)
        assert r.cycles == sum(x.cycles for x in reports)
        assert r.stall_cycles == sum(x.stall_cycles for x in reports)
    assert np.abs(want[-1]).max() > 0  # not a network of zeros


@pytest.mark.slow
def test_verilator_rtl_is_bit_and_cycle_exact_at_8_bit_activations():
    """The same two networks (8-bit activation training with k-means weights, and with ternary
    weights) through the Verilator build of the 8-bit EIE (sim/tb_eie.py checks every output
    against the golden model and every counter against the cycle model)."""
    from sim.design import eie_design
    from sim.job import Case, Job, make_run
    from sim.session import run_job

    cfg = _rtl_config()
    cases = []
    for quantizer in ("kmeans", "ternary"):
        result, tr, te, _ = _compressed(quantizer, act_bits=8, seed=2)
        image = pack_network(result.layers, cfg,
                             formats=choose_formats(result.layers, tr[0][:1000].numpy(), cfg))
        xs = image.quantize_input(te[0][:8].numpy())
        runs = [make_run(image, image.input_to_physical(v), label=f"x{i}") for i, v in enumerate(xs)]
        mid = golden.run_layer(image, 0, image.input_to_physical(xs[0]))  # layer 1's input
        runs.append(make_run(image, mid, 1, 2, "from layer 1"))
        cases.append(Case(quantizer, image, runs))
    result = run_job(eie_design(cfg), Job(cases))
    assert result.ok, result.first_failure.message
    assert [len(c.runs) for c in result.cases] == [9, 9]
    assert any(np.any(r.outputs[max(r.outputs)] != 0) for c in result.cases for r in c.runs)
