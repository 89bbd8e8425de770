"""Build an FPGA ROM image of a compressed model: EIE Verilog whose memories start out holding it.

Packs the model (the same packer and images as `eie pack` and the simulations), writes the
images under <out>/images, and Verilog whose sparse-matrix, pointer, bias and codebook memories
are initialised from them, with the layer table in the central control unit; the host then only
writes an input vector, pulses start (first_layer 0, n_layers = the model's layers) and reads
the outputs (docs/hardware.md, docs/fpga.md). Memory initialisation:

  readmemh  each PE's memories load its images/peNN/*.hex files with $readmemh (one copy of
            the PE module per PE, named <name>_peNN); paths are relative to <out> unless
            --absolute-paths (tools must then run in <out>, as `eie synth` does);
  amaranth  the contents are written into the Verilog (hw.verilog.generate with the image; one
            `initial` line per memory row: a single self-contained file, for small configurations).

<out>/rom.json records the configuration, the layer table, the run parameters, which file
initialises which memory, and the SHA-256 of the Verilog and of the images' manifest.
"""

from __future__ import annotations

import argparse

from sw.commands.options import add_act, add_calib, add_config, describe


def add_arguments(p: argparse.ArgumentParser) -> None:
    describe(p, __doc__,
             "eie rom build/lenet300/model.eie --config ecp5_max --out build/rom",
             "eie synth --verilog build/rom/eie_rom.v --top eie_rom --out build/rom-synth")
    p.add_argument("model", nargs="?", metavar="MODEL",
                   help="a model file (as `eie pack`): ONNX, .pt2, TorchScript, state_dict, model.eie")
    p.add_argument("--bench", metavar="NAME",
                   help="instead of MODEL: a built-in EIE Table III layer or 'alexnet' (as `eie pack`)")
    p.add_argument("--seed", type=int, default=0, help="seed of the --bench synthesis")
    add_config(p, None)
    p.add_argument("--balance", action="store_true",
                   help="load-balance-aware row assignment (as `eie pack --balance`)")
    p.add_argument("--init", choices=["readmemh", "amaranth"], default="readmemh",
                   help="how the memories are initialised (default: readmemh)")
    p.add_argument("--name", default="eie_rom", help="top module name (default: eie_rom)")
    p.add_argument("--absolute-paths", action="store_true",
                   help="$readmemh with absolute paths (for simulators run from elsewhere)")
    add_calib(p)
    add_act(p)
    p.add_argument("--out", required=True, metavar="DIR", help="output directory, written atomically")


def run(args: argparse.Namespace) -> int:
    from hw.fpga.rom import build_rom
    from sw.commands.sources import compile_for_hardware
    from sw.eie.config import EIEConfig
    from sw.errors import FitError

    config = EIEConfig.load(args.config)
    model, meta = compile_for_hardware(config, args.model, args.bench, args.seed, args.act,
                                       args.calib, args.balance)
    if len(model.segments) != 1:
        raise FitError(f"the network has {len(model.segments)} EIE segments (host operators "
                       f"between its FC chains); a ROM build holds one: use `eie pack` and load "
                       f"the segments at run time")
    layers, image = model.segments[0].layers, model.segments[0].image
    rom = build_rom(image, args.out, name=args.name, init=args.init,
                    absolute_paths=args.absolute_paths, meta=meta)
    m = rom.manifest
    size = rom.verilog.stat().st_size
    print(f"ROM build of {len(layers)} layer(s) for {config.name} ({config.n_pe} PEs), memories "
          f"initialised by {rom.init}: {rom.verilog} ({size / 1e6:.2f} MB, top {rom.top}), "
          f"images in {rom.out / 'images'}, manifest {rom.out / 'rom.json'} "
          f"({m['generate_s']:.1f} s)")
    for d in m["layers"]:
        print(f"  {d['name']:<10} {d['n_in']:>6} -> {d['n_out']:<6} w_frac {d['w_frac']:>2}  "
              f"relu {'yes' if d['relu'] else 'no'}")
    r = m["run"]
    print(f"run: write {r['input_length']} inputs, start with first_layer {r['first_layer']}, "
          f"n_layers {r['n_layers']}; read {r['output_length']} outputs from bank {r['output_bank']}")
    return 0
