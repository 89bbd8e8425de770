"""sim.runner: the Verilator control file that decides which signals stay visible."""

from sim.runner import ports_vlt

VERILOG = r"""
module leaf(clk, a, b, y);
  input clk;
  input [7:0] a;
  input b;
  output [7:0] y;
endmodule

module \top.ctl (clk, q);
  input clk;
  output q;
endmodule

module top(clk, rst, wr__data, done);
  input clk;
  input rst;
  input [15:0] wr__data;
  output done;
  leaf l0 (
    .clk(clk), .a(wr__data[7:0]), .b(rst)
  );
  leaf l1 (
    .clk(clk), .a(wr__data[15:8]), .b(rst)
  );
  \top.ctl  ctl (
    .clk(clk), .q(done)
  );
endmodule
"""


def test_ports_vlt_top_ports_and_repeated_modules_inputs(tmp_path):
    src = tmp_path / "top.v"
    src.write_text(VERILOG)
    lines = ports_vlt([src], "top").splitlines()
    assert lines[0] == "`verilator_config"
    body = set(lines[1:])
    # the top level: inputs read-write (cocotb drives them), outputs read-only
    assert {'public_flat_rw -module "top" -var "clk"', 'public_flat_rw -module "top" -var "rst"',
            'public_flat_rw -module "top" -var "wr__data"',
            'public_flat_rd -module "top" -var "done"'} <= body
    # the module instantiated twice keeps its inputs (one copy of its code for both)
    assert {'public_flat_rd -module "leaf" -var "clk"', 'public_flat_rd -module "leaf" -var "a"',
            'public_flat_rd -module "leaf" -var "b"'} <= body
    assert not any('-var "y"' in line for line in body)  # outputs of a repeated module: no
    assert not any('"top.ctl"' in line for line in body)  # instantiated once: nothing
    assert len(body) == 7


def test_ports_vlt_falls_back_to_every_top_signal(tmp_path):
    src = tmp_path / "other.v"
    src.write_text("module other(a);\n  input a;\nendmodule\n")
    assert ports_vlt([src], "top").splitlines()[1:] == ['public_flat_rw -module "top" -var "*"']
