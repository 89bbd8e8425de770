"""Command-line options several `eie` verbs share, spelled once (a library for the command
modules, not a command). The choices come from the modules that own them, imported when the
option is added, so that `eie verilog` or `eie synth` (which take only --config) never load
PyTorch."""

from __future__ import annotations

import argparse


def describe(p: argparse.ArgumentParser, doc: str | None, *examples: str) -> None:
    """The verb's help: its module docstring as written, then its examples."""
    p.description = doc
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.epilog = "examples:\n" + "\n".join(f"  {e}" for e in examples)


def add_config(p: argparse.ArgumentParser, default: str | None = "eie64") -> None:
    p.add_argument("--config", default=default, required=default is None, metavar="PRESET|FILE",
                   help="accelerator configuration: a preset (eie64, small, tiny, ecp5_small, "
                        "...) or a JSON file of EIEConfig fields, optionally with \"base\": PRESET")


def add_act(p: argparse.ArgumentParser, default: str | None = "relu") -> None:
    from sw.frontends.chains import ACTS

    p.add_argument("--act", default=default, choices=ACTS,
                   help="activation between the layers of a bare state_dict (other model "
                        "files record their own; default relu)")


def add_formats(p: argparse.ArgumentParser) -> None:
    from sw.frontends.hybrid import FORMATS

    p.add_argument("--formats", default="auto", choices=FORMATS,
                   help="activation formats: per layer from calibration data (auto, "
                        "docs/format.md), or the configuration's act_frac everywhere (fixed)")


def add_calib(p: argparse.ArgumentParser) -> None:
    p.add_argument("--calib", metavar="FILE",
                   help="calibration inputs (.npz, .npy, IDX, MNIST dir) for per-layer "
                        "activation formats (default: act_frac everywhere)")
