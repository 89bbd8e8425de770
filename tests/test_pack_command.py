import json

import numpy as np
import pytest
from helpers_eie import chain

from eie.cli import main
from sw.eie.images import read_images
from sw.eie.pack import unpack_network
from sw.qlayer import QuantizedLayer


def test_pack_bench_layer_writes_images_and_prints_memory_use(tmp_path, capsys):
    out = tmp_path / "nt"
    assert main(["pack", "--bench", "NT-We", "--balance", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "spmat" in text and "ptr" in text and "NT-We" in text
    image = read_images(out)
    assert image.config.name == "eie64" and image.layers[0].perm is not None
    assert json.loads((out / "manifest.json").read_text())["meta"]["source"] == "bench:NT-We"


def test_pack_compressed_model_file_with_a_json_config(tmp_path):
    from sw.compression.modelfile import save_model

    layers = chain(np.random.default_rng(0), [30, 20, 10], 0.3)
    for i, q in enumerate(layers):
        q.relu = i == 0
    save_model(tmp_path / "m.eie", layers)
    cfg = tmp_path / "fpga.json"
    cfg.write_text(json.dumps({"base": "tiny", "n_pe": 2}))
    assert main(["pack", str(tmp_path / "m.eie"), "--config", str(cfg), "--out", str(tmp_path / "o")]) == 0
    image = read_images(tmp_path / "o")
    assert image.config.n_pe == 2 and [d.relu for d in image.layers] == [True, False]
    for q, (_, idx, _) in zip(layers, unpack_network(image), strict=True):
        assert np.array_equal(idx, q.indices)


@pytest.mark.parametrize("case, words", [
    ("small", "activation memory"),
    ("conv", "no FC layer runs on the EIE"),
    ("none", "exactly one input"),
    ("junk", "not a model file this tool reads"),
    ("config", "no preset or config file"),
])
def test_pack_errors_are_one_line_and_exit_2(tmp_path, capsys, case, words):
    from sw.compression.modelfile import save_model

    args = ["pack", "--out", str(tmp_path / "o")]
    if case == "small":
        args += ["--bench", "NT-We", "--config", "small"]  # 4096 inputs on 8 PEs x 128
    elif case == "conv":
        conv = QuantizedLayer("conv1", "conv", np.linspace(0, 1, 16).astype(np.float32),
                              np.ones((2, 1, 3, 3), np.uint8), None, 4)
        save_model(tmp_path / "c.eie", [conv])
        args += [str(tmp_path / "c.eie")]
    elif case == "config":
        args += ["--bench", "NT-We", "--config", "eie65"]
    elif case == "junk":
        (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
        args += [str(tmp_path / "junk.pth")]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("eie pack: error:") and "\n" not in err and words in err, err
    assert not (tmp_path / "o").exists()


@pytest.mark.slow
def test_pack_torchvision_alexnet_state_dict(tmp_path):
    import torch

    g = torch.Generator().manual_seed(0)
    sd = {}
    for key, (o, i) in {"classifier.1": (4096, 9216), "classifier.4": (4096, 4096),
                        "classifier.6": (1000, 4096)}.items():
        sd[f"{key}.weight"] = torch.randn(o, i, generator=g) * 0.01
        sd[f"{key}.bias"] = torch.zeros(o)
    torch.save(sd, tmp_path / "alexnet.pth")
    assert main(["pack", str(tmp_path / "alexnet.pth"), "--config", "eie64",
                 "--out", str(tmp_path / "o")]) == 0
    image = read_images(tmp_path / "o")
    assert [d.name for d in image.layers] == ["fc6", "fc7", "fc8"]
    assert [d.relu for d in image.layers] == [True, True, False]
