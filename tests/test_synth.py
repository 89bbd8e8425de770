"""The FPGA flow (hw/fpga/): cell counting, hierarchy breakdown, fit checks, and a real
Yosys + nextpnr-ecp5 run on a tiny design (a few seconds once YoWASP's WebAssembly is cached;
the very first YoWASP call on a machine compiles it, about a minute)."""

import json

import pytest
from amaranth import ClockSignal, Instance, Module, ResetSignal, Signal
from amaranth.back import verilog
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

from hw.fpga import ecp5, flow, hierarchy, report, xilinx
from sw.errors import EIEError, FitError

# -- a tiny two-level design in the shape hw/verilog.py emits: a leaf module written once and
#    instantiated N times from the top -------------------------------------------------------

class Mac(wiring.Component):
    """A MAC over a 1K x 16 coefficient memory: one DP16KD and one MULT18X18D on ECP5."""

    a: In(16)
    addr: In(10)
    we: In(1)
    y: Out(40)

    def elaborate(self, platform):
        m = Module()
        m.submodules.coef = mem = memory.Memory(shape=16, depth=1024, init=[])
        wp, rp = mem.write_port(), mem.read_port()
        m.d.comb += [wp.addr.eq(self.addr), wp.data.eq(self.a), wp.en.eq(self.we),
                     rp.addr.eq(self.addr)]
        a_r = Signal(16)
        m.d.sync += [a_r.eq(self.a), self.y.eq(self.y + rp.data.as_signed() * a_r.as_signed())]
        return m


class Top(wiring.Component):
    a: In(16)
    addr: In(10)
    we: In(1)
    y: Out(40)

    def __init__(self, n: int):
        self.n = n
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        total = 0
        for k in range(self.n):
            o = Signal(40, name=f"y{k}")
            m.submodules[f"mac{k}"] = Instance(
                "tiny_mac", i_clk=ClockSignal(), i_rst=ResetSignal(), i_a=self.a ^ k,
                i_addr=self.addr, i_we=self.we, o_y=o)
            total = total + o
        m.d.sync += self.y.eq(total)
        return m


def write_design(path, n: int) -> None:
    path.write_text(verilog.convert(Mac(), name="tiny_mac") + verilog.convert(Top(n), name="tiny_top"))


# -- pure parsing ------------------------------------------------------------------------------

def test_ecp5_luts_count_carry_halves_distributed_ram_and_wide_muxes():
    cells = {"LUT4": 100, "CCU2C": 10, "TRELLIS_DPR16X4": 2, "TRELLIS_FF": 50, "PFUMX": 7,
             "MULT18X18D": 3, "DP16KD": 4, "PDPW16KD": 1}
    assert ecp5.resources(cells) == {"LUT4": 135, "FF": 50, "MULT18X18D": 3, "DP16KD": 5}


def test_xilinx_counts_luts_lutram_ffs_dsps_and_bram36_units():
    cells = {"LUT2": 5, "LUT6": 3, "RAM32M": 2, "SRLC32E": 1, "FDRE": 10, "FDSE": 2,
             "DSP48E1": 4, "RAMB36E1": 1, "RAMB18E1": 3, "CARRY4": 6, "BUFG": 1}
    x = xilinx.resources(cells)
    assert (x["LUT"], x["LUTRAM"], x["FF"], x["DSP48"], x["BRAM36"], x["CARRY4"]) == (8, 9, 12, 4, 2.5, 6)


def _stat(modules: dict[str, dict[str, int]]) -> dict:
    return {"modules": {f"\\{m}": {"num_cells_by_type": cells} for m, cells in modules.items()}}


def test_hierarchy_costs_multiply_nested_instances():
    stat = _stat({
        "top": {"LUT4": 5, "pe": 4, "ccu": 1},
        "pe": {"LUT4": 10, "TRELLIS_FF": 3, "MULT18X18D": 1, "pe.q": 2},
        "pe.q": {"LUT4": 1, "DP16KD": 1},
        "ccu": {"CCU2C": 2, "lnzd": 5},
        "lnzd": {"LUT4": 7},
    })
    glue, mods = hierarchy.hierarchy_costs(stat, "top", ecp5.resources)
    assert glue == {"LUT4": 5, "FF": 0, "MULT18X18D": 0, "DP16KD": 0}
    by = {m.module: m for m in mods}
    assert by["pe"].instances == 4 and by["pe.q"].instances == 8 and by["lnzd"].instances == 5
    assert by["pe"].per_instance == {"LUT4": 12, "FF": 3, "MULT18X18D": 1, "DP16KD": 2}
    assert by["ccu"].per_instance["LUT4"] == 4 + 35
    assert by["pe"].depth == 1 and by["pe.q"].depth == 2
    blocks = hierarchy.block_costs(stat, "top", {"PE": r"^pe", "LNZD": r"lnzd", "CCU": r"ccu"},
                                   ecp5.resources)
    assert list(blocks) == ["PE", "LNZD", "CCU", "other"]
    # pe.q also matches "^pe" and stays inside its PE; the LNZD nodes inside the CCU are their
    # own block; the top's glue is "other"; together they are the whole design
    assert blocks["PE"]["instances"] == 4 and blocks["PE"]["total"]["DP16KD"] == 8
    assert blocks["PE"]["per_instance"] == {"LUT4": 12, "FF": 3, "MULT18X18D": 1, "DP16KD": 2}
    assert blocks["LNZD"]["instances"] == 5 and blocks["LNZD"]["total"]["LUT4"] == 35
    assert blocks["CCU"]["instances"] == 1 and blocks["CCU"]["total"]["LUT4"] == 4
    assert blocks["other"]["total"]["LUT4"] == 5
    assert sum(b["total"]["LUT4"] for b in blocks.values()) == 5 + 48 + 39


def test_unknown_top_module_is_a_one_line_error():
    with pytest.raises(EIEError, match="top module 'nope' not in the synthesised design"):
        hierarchy.hierarchy_costs(_stat({"top": {"LUT4": 1}}), "nope", ecp5.resources)


def test_overflow_names_each_exceeded_resource():
    dev = ecp5.DEVICES["LFE5U-85F"]
    used = {"LUT4": 1000, "FF": 10, "MULT18X18D": 160, "DP16KD": 256}
    assert report.overflow_of(used, dev) == ["MULT18X18D 160/156 (103%)", "DP16KD 256/208 (123%)"]


def test_distributed_ram_beyond_the_ram_capable_luts_is_an_overflow():
    dev = ecp5.DEVICES["LFE5U-85F"]  # 83,640 LUTs, one in 8 can be RAM: 10,455
    assert ecp5.dpram_overflow({"TRELLIS_DPR16X4": 2613}, dev) == []  # 10,452 LUTs
    assert ecp5.dpram_overflow({"TRELLIS_DPR16X4": 4013}, dev) == [
        "distributed RAM LUTs 16052/10455 (154%)"]  # 28 PEs of 143 DPR16X4 each


def test_clock_constraint_frequency_is_rewritten(tmp_path):
    assert ecp5.lpf_frequency(ecp5.DEFAULT_LPF) == 125.0
    lpf = tmp_path / "c.lpf"
    lpf.write_text(ecp5.clock_lpf(87.5))
    assert ecp5.lpf_frequency(lpf) == 87.5
    assert '"clk"' in lpf.read_text()


def test_critical_path_summary_splits_logic_and_routing():
    cp = {"from": "posedge clk", "to": "posedge clk", "path": [
        {"type": "clk-to-q", "delay": 0.5, "from": {"cell": "a", "port": "Q"}, "to": {"cell": "a", "port": "Q"}},
        {"type": "routing", "delay": 1.0, "sources": ["hw/pe.py:10", "/share/lattice/x.v:1"],
         "from": {"cell": "a", "port": "Q"}, "to": {"cell": "b", "port": "A"}},
        {"type": "logic", "delay": 0.25, "from": {"cell": "b", "port": "A"}, "to": {"cell": "b", "port": "F"}},
        {"type": "setup", "delay": 0.1, "from": {"cell": "c", "port": "DI"}, "to": {"cell": "c", "port": "DI"}},
    ]}
    s = ecp5.summarise_path(cp)
    assert s["delay_ns"] == pytest.approx(1.85) and s["routing_ns"] == pytest.approx(1.0)
    assert s["logic_levels"] == 1 and s["start"] == "a.Q" and s["end"] == "c.DI"
    assert s["sources"] == ["hw/pe.py:10"]


# -- the tools ---------------------------------------------------------------------------------

def test_tiny_design_synthesises_places_and_reports(tmp_path):
    src = tmp_path / "tiny.v"
    write_design(src, 2)
    out = tmp_path / "out"
    r = flow.synthesize([src], "tiny_top", out, freq_mhz=100, blocks={"MAC": r"^tiny_mac$"})
    assert r.fits and r.resources_from == "nextpnr"
    assert r.resources["MULT18X18D"] == 2 and r.resources["DP16KD"] == 2
    assert 100 < r.resources["LUT4"] < 2000 and r.resources["FF"] >= 2 * 56
    assert r.fmax is not None and r.fmax > 20
    assert r.critical_paths and r.critical_paths[0]["delay_ns"] == pytest.approx(1000 / r.fmax, rel=0.02)
    mac = r.blocks["MAC"]
    assert mac["instances"] == 2 and mac["per_instance"]["MULT18X18D"] == 1
    assert mac["per_instance"]["DP16KD"] == 1
    d = json.loads((out / "report.json").read_text())
    assert d["fits"] and d["overflow"] == [] and d["constraint"]["target_mhz"] == 100
    assert set(d["resources"]) == {"LUT4", "FF", "MULT18X18D", "DP16KD"}
    assert d["resources"]["DP16KD"] == {"used": 2, "available": 208, "percent": pytest.approx(0.96)}
    assert d["fmax_mhz"]["clk"] == pytest.approx(r.fmax) and d["fmax_met"] == (r.fmax >= 100)
    assert d["wall_s"]["yosys_ecp5"] > 0 and d["wall_s"]["nextpnr"] > 0
    assert 'FREQUENCY PORT "clk" 100 MHZ' in (out / "clk.lpf").read_text()
    text = (out / "report.txt").read_text()
    assert "MULT18X18D" in text and "Fmax clk" in text and "MAC" in text


BIG_V = """module big(input clk, input we, input [13:0] addr, input [63:0] d, output reg [63:0] q);
  reg [63:0] mem [0:16383];
  always @(posedge clk) begin
    if (we) mem[addr] <= d;
    q <= mem[addr];
  end
endmodule
"""


def test_design_too_big_for_the_device_reports_what_overflowed(tmp_path):
    # 1 Mbit of block RAM: 64 DP16KD, more than an LFE5U-25F's 56. Caught from Yosys' counts,
    # before place and route. (Plain Verilog: Amaranth writes one `initial` line per memory row,
    # which Yosys takes minutes to digest for 16K rows.)
    src = tmp_path / "big.v"
    src.write_text(BIG_V)
    out = tmp_path / "big"
    r = flow.synthesize([src], "big", out, device="LFE5U-25F")
    assert not r.fits and r.resources_from == "yosys" and r.fmax is None
    assert r.overflow == ["DP16KD 64/56 (114%)"]
    with pytest.raises(FitError) as e:
        report.check_fit(r)
    assert str(e.value) == "big does not fit LFE5U-25F: DP16KD 64/56 (114%) used/available"
    assert "\n" not in str(e.value)
    d = json.loads((out / "report.json").read_text())
    assert d["fits"] is False and d["overflow"] == ["DP16KD 64/56 (114%)"]
    assert not (out / "nextpnr.log").exists()


def test_verilog_error_is_one_line_naming_the_tool(tmp_path):
    src = tmp_path / "bad.v"
    src.write_text("module bad(input clk, output reg q);\n always @(posedge clk) q <= ;\nendmodule\n")
    with pytest.raises(EIEError, match=r"^yosys failed \(exit 1\): .*bad.v:2: ERROR: syntax error") as e:
        flow.synthesize([src], "bad", tmp_path / "out", pnr=False)
    assert "\n" not in str(e.value)


def test_tiny_eie_config_synthesises_with_per_block_costs(tmp_path):
    from sw.eie.config import EIEConfig

    cfg = EIEConfig(name="smoke", n_pe=2, queue_depth=2, spmat_words=64, ptr_depth=128,
                    act_depth=16, bias_depth=32, max_layers=2)
    r = flow.synthesize_config(cfg, tmp_path / "eie", pnr=False, xilinx=True)
    assert r.fits and r.resources_from == "yosys" and r.config["n_pe"] == 2
    assert list(r.blocks) == ["PE", "LNZD", "CCU", "other"]
    pe = r.blocks["PE"]
    assert pe["instances"] == 2 and pe["modules"] == ["eie_pe"]
    assert pe["per_instance"]["MULT18X18D"] >= 1 and pe["per_instance"]["LUT4"] > 100
    # the blocks add up to the hierarchical design
    total = sum(b["total"]["MULT18X18D"] for b in r.blocks.values())
    assert total == sum(m.per_instance["MULT18X18D"] * m.instances for m in r.modules if m.depth == 1) \
        + r.glue["MULT18X18D"]
    assert "verilog" in r.wall_s and (tmp_path / "eie" / "eie.v").exists()
    # elaborated for the ECP5 (hw.dsp): the write-back's product in a MULT18X18D's own output
    # register, the arithmetic unit's operands in another's A and B registers (its product
    # in the fabric), not in fabric flip-flops
    text = (tmp_path / "eie" / "eie.v").read_text()
    assert text.count("MULT18X18D #(") == 2
    assert text.count('.REG_OUTPUT_CLK("CLK0")') == 1 and text.count('.REG_OUTPUT_CLK("NONE")') == 1
    assert text.count('.REG_INPUTA_CLK("CLK0")') == 1 and text.count('.REG_INPUTB_CLK("CLK0")') == 1
    # ... and the Xilinx estimate reads the portable Verilog (no ECP5 primitives in it)
    assert "MULT18X18D" not in (tmp_path / "eie" / "eie.generic.v").read_text()
    assert r.xilinx["DSP48"] == 2 * 2


def test_eie_synth_command_on_a_verilog_file(tmp_path, capsys):
    from eie.cli import main

    src = tmp_path / "tiny.v"
    write_design(src, 1)
    out = tmp_path / "cli"
    assert main(["synth", "--verilog", str(src), "--top", "tiny_top", "--no-pnr", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "tiny_top on LFE5U-85F" in text and "Yosys estimate, not placed" in text
    assert json.loads((out / "report.json").read_text())["resources"]["MULT18X18D"]["used"] == 1


def test_eie_synth_command_exits_2_with_one_line_when_it_does_not_fit(tmp_path, capsys):
    from eie.cli import main

    src = tmp_path / "big.v"
    src.write_text(BIG_V)
    out = tmp_path / "cli"
    code = main(["synth", "--verilog", str(src), "--top", "big", "--device", "LFE5U-25F",
                 "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err == "eie synth: error: big does not fit LFE5U-25F: DP16KD 64/56 (114%) used/available"
    assert json.loads((out / "report.json").read_text())["fits"] is False


# -- block RAM output registers (hw.fpga.ecp5.absorb_bram_output_registers) ------------------

OUTREG_V = """module outreg(input clk, input rst, input we, input ce, input [9:0] wa, input [9:0] ra,
              input [15:0] d, output reg [15:0] q_plain, output reg [15:0] q_ce,
              output reg [15:0] q_rst, output reg [15:0] q_logic, output reg [15:0] q_two,
              output reg [15:0] q_two_b, output reg [23:0] q_wide);
  // no_rw_check: a read never meets a write of the same word (as hw.params'
  // HOST_LOADED_MEMORY says of the EIE's), so no collision logic follows the block RAMs
  (* no_rw_check *) reg [15:0] m1 [0:1023]; (* no_rw_check *) reg [15:0] m2 [0:1023];
  (* no_rw_check *) reg [15:0] m3 [0:1023]; (* no_rw_check *) reg [15:0] m4 [0:1023];
  (* no_rw_check *) reg [15:0] m5 [0:1023]; (* no_rw_check *) reg [23:0] m6 [0:511];
  reg [15:0] r1, r2, r3, r4, r5; reg [23:0] r6;
  always @(posedge clk) begin
    if (we) begin m1[wa] <= d; m2[wa] <= d ^ 16'h1111; m3[wa] <= d ^ 16'h2222;
                  m4[wa] <= d ^ 16'h3333; m5[wa] <= d ^ 16'h4444;
                  m6[wa[8:0]] <= {d[7:0], d}; end
    r1 <= m1[ra]; r2 <= m2[ra]; r3 <= m3[ra]; r4 <= m4[ra]; r5 <= m5[ra]; r6 <= m6[ra[8:0]];
    q_plain <= r1;                          // a register of its own: absorbed
    if (ce) q_ce <= r2;                     // with a clock enable: absorbed, OCE = ce
    if (rst) q_rst <= 0; else q_rst <= r3;  // with a reset: kept
    q_logic <= r4 + 16'd1;                  // logic after the block RAM: kept
    q_two <= r5; if (ce) q_two_b <= r5;     // two registers per bit: kept
    q_wide <= r6;                           // 24 bits, the 36-bit mode: absorbed
  end
endmodule
"""


def _outreg_netlist(tmp_path):
    src = tmp_path / "outreg.v"
    src.write_text(OUTREG_V)
    flow.synthesize([src], "outreg", tmp_path / "o", pnr=False)
    return json.loads((tmp_path / "o" / "netlist.json").read_text())


def _brams_by_output(netlist):
    """The top module, and for each output port the DP16KD its bit 0 comes from (searched
    backwards through the cells that drive it)."""
    top = next(m for m in netlist["modules"].values() if m.get("attributes", {}).get("top"))
    drivers = {}
    for c in top["cells"].values():
        for port, bits in c["connections"].items():
            if c["port_directions"].get(port) == "output":
                drivers.update({b: c for b in bits if isinstance(b, int)})
    out = {}
    for name, port in top["ports"].items():
        if port["direction"] != "output":
            continue
        frontier, seen = [port["bits"][0]], set()
        while frontier:
            c = drivers.get(frontier.pop())
            if c is None or id(c) in seen:
                continue
            seen.add(id(c))
            if c["type"] == "DP16KD":
                out[name] = c
                break
            frontier += [b for p, bits in c["connections"].items()
                         if c["port_directions"].get(p) == "input" for b in bits
                         if isinstance(b, int)]
    return top, out


def test_bram_output_registers_are_absorbed_only_where_they_are_all_that_reads_the_port(tmp_path):
    netlist = _outreg_netlist(tmp_path)
    ffs_before = sum(c["type"] == "TRELLIS_FF" for c in next(
        m for m in netlist["modules"].values() if m.get("attributes", {}).get("top"))["cells"].values())
    changed, ports = ecp5.absorb_bram_output_registers(netlist)
    assert (changed, ports) == (3, 6)
    top, by_out = _brams_by_output(netlist)
    ffs_after = sum(c["type"] == "TRELLIS_FF" for c in top["cells"].values())
    assert ffs_before - ffs_after == 16 + 16 + 24  # q_plain's, q_ce's and q_wide's flip-flops
    wide = by_out["q_wide"]
    assert int(wide["parameters"]["DATA_WIDTH_A"], 2) == 36
    assert wide["parameters"]["REGMODE_A"] == wide["parameters"]["REGMODE_B"] == "OUTREG"
    assert set(top["ports"]["q_wide"]["bits"]) <= {b for p, (b,) in wide["connections"].items()
                                                   if p.startswith("DO")}
    regmode = {q: c["parameters"]["REGMODE_B"] for q, c in by_out.items()}
    assert regmode["q_plain"] == regmode["q_ce"] == "OUTREG"
    assert regmode["q_rst"] == regmode["q_logic"] == regmode["q_two"] == "NOREG"
    assert regmode["q_two_b"] == "NOREG"
    # the absorbed ports drive the output ports themselves; q_ce's enable is the port's OCE
    for q in ("q_plain", "q_ce"):
        bits = [by_out[q]["connections"][f"DOB{i}"][0] for i in range(16)]
        assert bits == top["ports"][q]["bits"]
    assert by_out["q_plain"]["connections"]["OCEB"] in (["1"], [1])
    ce_bit = top["ports"]["ce"]["bits"][0]
    assert by_out["q_ce"]["connections"]["OCEB"] == [ce_bit]
    # a second pass finds nothing more to do
    assert ecp5.absorb_bram_output_registers(netlist) == (0, 6)


def test_place_and_route_uses_the_block_rams_output_registers(tmp_path):
    src = tmp_path / "outreg.v"
    src.write_text(OUTREG_V)
    r = flow.synthesize([src], "outreg", tmp_path / "o", freq_mhz=100)
    assert r.fits and r.resources_from == "nextpnr" and r.resources["DP16KD"] == 6
    assert r.nextpnr_options["dp16kd_output_registers"] == "3/6"
    assert "3/6 DP16KD output registers" in (tmp_path / "o" / "report.txt").read_text()
