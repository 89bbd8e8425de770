"""The one configuration object of the EIE accelerator.

Every consumer (packer, golden model, cycle model, RTL generator, testbenches, synthesis)
takes an :class:`EIEConfig`; nothing else defines a width or a depth. Validation happens once,
in ``__post_init__``, and raises :class:`sw.errors.ConfigError` with a message naming the field.
The storage format these numbers parameterise is described in ``docs/format.md``.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

from sw.errors import ConfigError


@dataclass(frozen=True)
class EIEConfig:
    """Parameters of one EIE instance (names follow Han et al., ISCA 2016, Section IV).

    Memory depths are per PE and counted in the unit each memory is addressed by:
    ``spmat_words`` 64-bit words (8 entries each), ``ptr_depth`` pointer entries (both banks
    together), ``act_depth`` activations (per register file), ``bias_depth`` 16-bit biases.
    """

    name: str = "custom"
    n_pe: int = 4  # number of processing elements N; row i lives in PE i mod N
    queue_depth: int = 8  # activation-queue (FIFO) depth per PE, paper: 8
    weight_bits: int = 4  # v: index into the layer's codebook (code 0 = value 0)
    index_bits: int = 4  # z: relative row index (zeros skipped before the entry)
    act_bits: int = 16  # activation and codebook width, two's complement fixed point
    act_frac: int = 8  # fraction bits of every activation (inputs, outputs, biases)
    acc_bits: int = 40  # accumulator width; accumulation wraps modulo 2**acc_bits
    spmat_word_bits: int = 64  # sparse-matrix SRAM word: spmat_word_bits // entry_bits entries
    spmat_words: int = 1024  # sparse-matrix SRAM depth per PE, in words
    ptr_depth: int = 1024  # pointer entries per PE (even + odd bank together)
    act_depth: int = 64  # activations per PE per register file (paper: 64)
    bias_depth: int = 256  # 16-bit biases per PE (all layers together)
    max_layers: int = 8  # entries of the layer table (and codebooks) held on chip

    def __post_init__(self) -> None:
        def need(cond: bool, msg: str) -> None:
            if not cond:
                raise ConfigError(f"config {self.name!r}: {msg}")

        for f in dataclasses.fields(self):
            if f.name != "name":
                v = getattr(self, f.name)
                need(isinstance(v, int) and not isinstance(v, bool), f"{f.name} must be an integer, got {v!r}")
        need(1 <= self.n_pe <= 256, f"n_pe must be in 1..256, got {self.n_pe}")
        need(1 <= self.queue_depth <= 256, f"queue_depth must be in 1..256, got {self.queue_depth}")
        need(1 <= self.weight_bits <= 8, f"weight_bits must be in 1..8, got {self.weight_bits}")
        need(1 <= self.index_bits <= 8, f"index_bits must be in 1..8, got {self.index_bits}")
        need(4 <= self.act_bits <= 32, f"act_bits must be in 4..32, got {self.act_bits}")
        need(0 <= self.act_frac < self.act_bits, f"act_frac must be in 0..act_bits-1 ({self.act_bits - 1}), got {self.act_frac}")
        need(2 * self.act_bits <= self.acc_bits <= 64, f"acc_bits must be in 2*act_bits ({2 * self.act_bits})..64, got {self.acc_bits}")
        # the images hold a sparse-matrix word as one 64-bit integer (sw.eie.pack)
        need(self.spmat_word_bits <= 64, f"spmat_word_bits must be at most 64 (an image word), got {self.spmat_word_bits}")
        need(self.spmat_word_bits % self.entry_bits == 0,
             f"spmat_word_bits ({self.spmat_word_bits}) must be a multiple of the entry width ({self.entry_bits})")
        need(_pow2(self.entries_per_word), f"entries per word ({self.entries_per_word}) must be a power of two")
        for f in ("spmat_words", "ptr_depth", "act_depth", "bias_depth", "max_layers"):
            need(getattr(self, f) >= 1, f"{f} must be >= 1, got {getattr(self, f)}")
        need(self.ptr_depth >= 2, f"ptr_depth must be >= 2 (one column needs two pointers), got {self.ptr_depth}")
        need(self.ptr_bits <= 32, f"spmat of {self.spmat_entries} entries needs pointers wider than 32 bits")

    # -- derived widths (the only place they are computed) ---------------------------------
    @property
    def entry_bits(self) -> int:
        """Bits of one (v, z) entry: z in the high bits, v in the low bits."""
        return self.weight_bits + self.index_bits

    @property
    def entries_per_word(self) -> int:
        return self.spmat_word_bits // self.entry_bits

    @property
    def spmat_entries(self) -> int:
        return self.spmat_words * self.entries_per_word

    @property
    def ptr_bits(self) -> int:
        """Pointer width: an absolute entry address 0..spmat_entries inclusive."""
        return max(1, self.spmat_entries.bit_length())

    @property
    def shift_bits(self) -> int:
        """Width of the layer table's ``shift`` field (docs/format.md "Activation formats")."""
        return max(1, (self.act_bits - 1).bit_length())

    @property
    def max_shift(self) -> int:
        """The largest per-layer output shift the layer table holds (>= act_bits - 1)."""
        return (1 << self.shift_bits) - 1

    @property
    def codebook_size(self) -> int:
        return 1 << self.weight_bits

    @property
    def max_gap(self) -> int:
        """Largest z; a longer run of zero rows needs a padding entry (v = 0, z = max_gap)."""
        return (1 << self.index_bits) - 1

    @property
    def max_vector(self) -> int:
        """Longest activation vector (layer input or output) the register files hold."""
        return self.n_pe * self.act_depth

    # -- presets and files --------------------------------------------------------------------
    def replace(self, **changes) -> EIEConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> EIEConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"unknown configuration field(s): {', '.join(unknown)}")
        return cls(**d)

    @classmethod
    def load(cls, spec: str | Path) -> EIEConfig:
        """A preset name (``eie64``) or a JSON file holding fields (and optionally ``base``)."""
        spec = str(spec)
        if spec in PRESETS:
            return PRESETS[spec]
        p = Path(spec)
        if not p.exists():
            raise ConfigError(f"no preset or config file named {spec!r} (presets: {', '.join(PRESETS)})")
        try:
            d = json.loads(p.read_text())
        except (OSError, ValueError) as e:
            raise ConfigError(f"config file {spec}: not valid JSON ({e})") from None
        if not isinstance(d, dict):
            raise ConfigError(f"config file {spec}: expected a JSON object")
        base = d.pop("base", None)
        if base is not None and base not in PRESETS:
            raise ConfigError(f"config file {spec}: unknown base preset {base!r}")
        d.setdefault("name", p.stem)
        if base is not None:
            return cls.from_dict({**PRESETS[base].to_dict(), **d})
        return cls.from_dict(d)


def _pow2(x: int) -> bool:
    return x > 0 and x & (x - 1) == 0


PRESETS: dict[str, EIEConfig] = {
    # The paper's chip: 64 PEs, depth-8 queues, 128 KB spmat (16K x 64 bit) per PE. Pointers:
    # 32K per PE (two 16K banks, 18 bit wide to address 128K entries) instead of the paper's
    # 16K x 16 bit, so that VGG-6 (25,089 pointers) and the AlexNet fc6-fc7-fc8 chain
    # (9,217 + 4,097 + 4,097) fit. Activation files hold 512 per PE instead of the paper's 64,
    # so that Alex-6 (9216 inputs) and VGG-6 (25088 inputs: 392 per PE) run without batching.
    "eie64": EIEConfig(name="eie64", n_pe=64, queue_depth=8, spmat_words=16384, ptr_depth=32768,
                       act_depth=512, bias_depth=1024, max_layers=8),
    # FPGA presets measured by `eie synth` on an LFE5U-85F (docs/fpga.md): a small one for quick
    # runs and the largest N that place and route builds. Per PE of ecp5_max, 6 DP16KD (sparse
    # matrix 2, pointer banks 2, biases 1, non-zero lists 1) of 208, and 62 distributed RAMs
    # (TRELLIS_DPR16X4) of 2,613: by resource counts block RAM binds at 34 PEs, but place and
    # route binds first: 25 PEs route, 26 and 28 place but router2 does not get them legal
    # (32 no longer place). 25 x 32 activations hold LeNet-300-100's 784 inputs
    # (docs/fpga.md "Capacity").
    "ecp5_small": EIEConfig(name="ecp5_small", n_pe=4, queue_depth=8, spmat_words=1024,
                            ptr_depth=2048, act_depth=64, bias_depth=1024, max_layers=4),
    "ecp5_max": EIEConfig(name="ecp5_max", n_pe=25, queue_depth=8, spmat_words=512,
                          ptr_depth=2048, act_depth=32, bias_depth=1024, max_layers=4),
    # Small instances for unit tests and quick simulations.
    "tiny": EIEConfig(name="tiny", n_pe=4, queue_depth=4, spmat_words=256, ptr_depth=512,
                      act_depth=64, bias_depth=128, max_layers=4),
    "small": EIEConfig(name="small", n_pe=8, queue_depth=8, spmat_words=2048, ptr_depth=2048,
                       act_depth=128, bias_depth=256, max_layers=4),
}
