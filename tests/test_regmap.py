"""The front end's register map (hw/soc/regmap.py): layout rules, files, `eie regmap`."""

from __future__ import annotations

import subprocess
import sys

import pytest

from hw.params import HWParams, RdMem, WrMem
from hw.soc.regmap import DATA_WIDTH, ErrorCode, RegisterMap, Window, config_hash, regmap
from sw.eie.config import PRESETS, EIEConfig
from sw.errors import ConfigError, DataError

CONFIGS = [*PRESETS.values(),
           EIEConfig(name="odd", n_pe=3, spmat_words=100, ptr_depth=90, act_depth=20,
                     bias_depth=33, max_layers=3, act_bits=8, act_frac=4, acc_bits=20),
           EIEConfig(name="one", n_pe=1, spmat_words=16, ptr_depth=2, act_depth=1,
                     bias_depth=1, max_layers=1, act_bits=32, act_frac=8, acc_bits=64)]


def _spans(m: RegisterMap) -> list[tuple[int, int, str]]:
    return sorted([(0, m.reg_block, "registers")]
                  + [(w.base, w.base + w.size, w.name) for w in m.windows])


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: c.name)
def test_layout_rules(config):
    m = regmap(config)
    p = HWParams(config)
    assert len(m.registers) <= m.reg_block
    assert [r.addr for r in m.registers] == list(range(len(m.registers)))
    spans = _spans(m)
    for (_, a1, n0), (b0, _, n1) in zip(spans, spans[1:], strict=False):
        assert a1 <= b0, f"{n0} overlaps {n1}"
    assert spans[-1][1] <= 1 << m.addr_width
    assert spans[-1][1] > 1 << (m.addr_width - 1)  # no wasted address bit
    for w in m.windows:
        assert w.size & (w.size - 1) == 0 and w.base % w.size == 0, w.name
        assert w.words == -(-w.width // DATA_WIDTH)
        # every entry's words lie in the window, and one PE's entries (one bank) are one run
        pes = sorted({0, config.n_pe - 1}) if w.per_pe else [None]
        seen = set()
        for pe in pes:
            for bank in range(w.banks):
                first = w.addr(0, pe, bank)
                for i in sorted({0, 1 % w.depth, w.depth // 2, w.depth - 1}):
                    for k in range(w.words):
                        a = w.addr(i, pe, bank, k)
                        assert w.base <= a < w.base + w.size and a not in seen
                        seen.add(a)
                        if w.words & (w.words - 1) == 0:  # one PE's memory: one run
                            assert a == first + i * w.words + k, w.name
        if w.broadcast:
            assert w.pe_broadcast >= config.n_pe
            w.addr(0, w.pe_broadcast)
    # the windows hold what the core's host port reaches (docs/hardware.md)
    assert {m.write_window(mem).mem for mem in WrMem if mem != WrMem.ACT_CLEAR} == \
        {mem.name for mem in WrMem if mem != WrMem.ACT_CLEAR}
    assert m.write_window(WrMem.SPMAT).depth == config.spmat_words
    assert m.write_window(WrMem.PTR).width == 2 * p.ptr_bits
    assert m.write_window(WrMem.LAYER).width == p.layer_entry.size
    assert m.read_window(RdMem.ACT).banks == 2
    assert m.read_window(RdMem.BUSY).depth == 1
    # configuration registers hold every numeric field
    for f, v in config.to_dict().items():
        if f != "name":
            assert m.reg(f"CFG_{f.upper()}").value == v


def test_addresses_name_what_they_address():
    m = regmap(PRESETS["ecp5_small"])
    spmat = m.window("SPMAT")
    assert m.locate(spmat.addr(12, 1, word=1)) == "SPMAT[pe 1][12].w1"
    assert m.locate(m.window("CODEBOOK").addr(3, m.pe_broadcast)) == "CODEBOOK[every PE][3]"
    assert m.locate(m.window("ACT").addr(5, 2, bank=1)) == "ACT[pe 2][bank 1][5]"
    assert m.locate(m.reg("STATUS").addr) == "STATUS"
    assert m.reg("LAYER").addr < m.reg_block and m.window("LAYER").base >= m.reg_block  # two LAYERs
    with pytest.raises(KeyError):
        m.reg("SPMAT")
    assert m.locate(spmat.base + (m.n_pe << spmat.pe_shift)) == "nothing"  # PE 4 of 4
    assert m.locate(m.reg_block - 1) == "nothing"
    with pytest.raises(ValueError):
        spmat.addr(spmat.depth, 0)
    with pytest.raises(ValueError):
        m.window("ACT").addr(0, m.pe_broadcast)  # no broadcast reads
    assert spmat.split((5 << 32) | 7) == [7, 5]
    with pytest.raises(ValueError):
        m.window("BIAS").split(1 << 16)


def test_config_hash_follows_every_field():
    base = PRESETS["ecp5_small"]
    assert config_hash(base) == config_hash(EIEConfig.from_dict(base.to_dict()))
    seen, changed_fields = {config_hash(base)}, 0
    for f, v in base.to_dict().items():
        for alt in ([v + "x"] if f == "name" else [v * 2, v + 1, v - 1, v // 2]):
            try:
                changed = base.replace(**{f: alt})
            except ConfigError:
                continue
            seen.add(config_hash(changed))
            changed_fields += 1
            break
    assert changed_fields >= len(base.to_dict()) - 2 and len(seen) == changed_fields + 1
    assert regmap(base).reg("CONFIG_HASH").value == config_hash(base)


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: c.name)
def test_json_round_trip(config, tmp_path):
    m = regmap(config)
    assert RegisterMap.from_json(m.to_json()) == m
    (path,) = [p for p in m.write(tmp_path) if p.suffix == ".json"]
    assert RegisterMap.from_json(path) == m


def test_json_refuses_what_is_not_a_map(tmp_path):
    m = regmap(PRESETS["tiny"])
    d = m.to_dict()
    for bad in ({**d, "format": "x"}, {**d, "version": [9, 0]},
                {**d, "windows": [{**d["windows"][0], "pe_shift": 3}] + d["windows"][1:]},
                {k: v for k, v in d.items() if k != "registers"}):
        with pytest.raises(DataError):
            RegisterMap.from_dict(bad)
    with pytest.raises(DataError, match="not valid JSON"):
        RegisterMap.from_json("{nope")
    with pytest.raises(DataError):
        RegisterMap.from_json(tmp_path / "missing.json")


def test_markdown_and_c_header(tmp_path):
    m = regmap(PRESETS["ecp5_small"])
    md = m.to_markdown()
    for r in m.registers:
        assert f"`{r.name}`" in md
    for w in m.windows:
        assert f"`{w.name}`" in md and f"`{w.base:#06x}`" in md
    for e in ErrorCode:
        assert f"`{e.name}`" in md
    # the header compiles, and its macros give the map's addresses
    h = tmp_path / "regmap.h"
    h.write_text(m.to_c_header())
    sp, ac, lt = m.window("SPMAT"), m.window("ACT"), m.window("LAYER")
    checks = {
        "EIE_REG_STATUS": m.reg("STATUS").addr,
        "EIE_REG_STATUS_DONE_MASK": m.reg("STATUS").bit("DONE"),
        "EIE_WIN_SPMAT_ADDR(3, 17, 1)": sp.addr(17, 3, word=1),
        "EIE_WIN_SPMAT_ADDR(EIE_PE_BROADCAST, 2, 0)": sp.addr(2, m.pe_broadcast),
        "EIE_WIN_ACT_ADDR(2, 1, 9)": ac.addr(9, 2, bank=1),
        "EIE_WIN_LAYER_ADDR(3, 1)": lt.addr(3, word=1),
        "EIE_CONFIG_HASH": m.config_hash,
        "EIE_ERR_BAD_LAYERS": int(ErrorCode.BAD_LAYERS),
    }
    src = tmp_path / "t.c"
    src.write_text('#include <stdio.h>\n#include "regmap.h"\nint main(void) {\n'
                   + "".join(f'  printf("%lu\\n", (unsigned long)({k}));\n' for k in checks)
                   + "  return 0;\n}\n")
    exe = tmp_path / "t"
    subprocess.run(["gcc", "-Wall", "-Werror", "-o", str(exe), str(src)], check=True,
                   cwd=tmp_path)
    got = [int(x) for x in subprocess.run([str(exe)], capture_output=True, text=True,
                                          check=True).stdout.split()]
    assert got == list(checks.values())


def test_window_fields_are_powers_of_two():
    w = Window("X", "SPMAT", "w", 0, 96, 5, "", per_pe=True, pe_bits=2, n_pe=3)
    assert (w.words, w.word_bits, w.index_bits, w.pe_shift, w.size) == (3, 2, 3, 5, 128)
    assert w.locate(w.addr(4, 2, word=2)) == "X[pe 2][4].w2"
    assert w.locate(w.addr(4, 2) + 3) is None  # the padding word of an entry


def test_eie_regmap_command(tmp_path):
    eie = [sys.executable, "-m", "eie"]
    r = subprocess.run(eie + ["regmap", "--config", "tiny", "--out", str(tmp_path / "m")],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == \
        ["regmap.h", "regmap.json", "regmap.md"]
    assert RegisterMap.from_json(tmp_path / "m" / "regmap.json") == regmap(PRESETS["tiny"])
    r = subprocess.run(eie + ["regmap", "--config", "nope", "--out", str(tmp_path / "x")],
                       capture_output=True, text=True)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
