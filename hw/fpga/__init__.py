"""The FPGA flow (docs/fpga.md): one module per tool or family.

- :mod:`hw.fpga.flow`: the flow that joins them (``synthesize``, ``synthesize_config``) and
  the registry of families (a new family is a new module beside ``ecp5``);
- :mod:`hw.fpga.ecp5`: Lattice ECP5 parts, cell counting, LPF constraints, nextpnr-ecp5;
- :mod:`hw.fpga.xilinx`: the Xilinx 7-series estimate (``synth_xilinx``);
- :mod:`hw.fpga.report`: the report record, its JSON and its table, the fit check;
- :mod:`hw.fpga.hierarchy`: per-module and per-block cost from Yosys' hierarchy;
- :mod:`hw.fpga.tools`: running the YoWASP tools (child processes, logs, paths);
- :mod:`hw.fpga.rom`: ROM builds (Verilog whose memories start out holding a model).
"""
