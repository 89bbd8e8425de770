"""Activation read/write unit: the PE's register files, its non-zero list and the write-back.

Han et al., EIE (ISCA 2016), Section IV "Activation Read/Write": a source and a destination
activation register file that swap roles between layers, so a layer's outputs are in place as
the next layer's inputs; ReLU on write-back; each PE's leading-non-zero detection over its
source activations feeds the LNZD tree.

:class:`ActivationRW` holds, per PE (docs/hardware.md, "Design choices"):

- the accumulator file (``act_depth`` x ``acc_bits``): the destination file during compute,
  read and written by the arithmetic unit;
- two activation banks, each a dense file (``act_depth`` x ``act_bits``: what the host reads)
  and a non-zero list (:class:`NonZeroList`). The two dense files are one memory, and so are
  the two lists, with the bank as the address MSB: only one bank is written at a time, only the
  source list is read, and only the host reads the dense files, so one write and one read port
  serve both banks;
- the bias file (``bias_depth`` x ``act_bits``);
- the write-back (:class:`WriteBack`): bias, rounding, saturation and ReLU, once per row.
"""

from __future__ import annotations

from collections.abc import Sequence

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import memory, stream, wiring
from amaranth.lib.wiring import In, Out

from .dsp import RegisteredMultiplier
from .params import HOST_LOADED_MEMORY, HWParams
from .signatures import accumulator_signature, write_signature

WB_STAGES = 7  # W0 (read) .. W4 (write): a row's result is written 7 cycles after its read
# The write-back rows and the layer's parameters come from the central control unit across the
# chip: each PE registers them (the parameters are constant during a layer; the rows arrive one
# cycle later, which the control unit allows for: hw.central_control, DRAIN and WB_TAIL)
WB_ROW_STAGES = 1
# ... and so are the layer's start, compute phase and source bank, which this PE's non-zero list
# (its LNZD leaf) and the write-back use: the leaf's layer starts a cycle after the control
# unit's (hw.central_control.start_latency counts it)
LEAF_CONTROL_STAGES = 1
# The list's read has a register of its own after the block RAM (on an ECP5 the DP16KD's output
# register, hw.fpga.ecp5.absorb_bram_output_registers), between the memory and the leaf's
# slots, which the placer pulls towards the LNZD node: a read reaches a slot three cycles after
# its address, and the leaf is valid a cycle after ``compute`` rises (its first element from
# its register, the second from the memory: hw.central_control.start_latency counts it)
LEAF_READ_STAGES = 1

# The banks' dense files (both banks in one memory) of at most this many words are distributed
# RAM (ram_style); larger ones are left to Yosys, which puts them into block RAM. ECP5
# distributed RAM is 16 words deep, and up to 8 of them (128 words) a bit's read multiplexer is
# one slice pair (4 LUT4, 2 PFUMX, an L6MUX21). Yosys's own cost model would put a 128-word
# memory into a DP16KD (18 Kbit, 15% used); on ecp5_small (act_depth 64) block RAM would save
# 225 LUT4 per PE for the dense files, one DP16KD. What distributed RAM costs on the
# LFE5U-85F: docs/fpga.md, "Capacity".
LUTRAM_MAX_DEPTH = 128
# The non-zero lists are block RAM whatever their depth: on the LFE5U-85F distributed RAM ran
# out first (docs/fpga.md), and the leaf reads the list three cycles ahead (LEAF_SLOTS).
NZ_LIST_MEMORY = {"ram_style": "block"}
# the leaf's head slots: a read (issued while the slots have room for it and for everything in
# flight) reaches a slot three cycles later, and a pop frees a slot for the read decided in the
# next cycle: four keep one item per cycle coming (and the slot pointers wrap by themselves)
LEAF_SLOTS = 4


class WriteBack(wiring.Component):
    """The write-back pipeline: one row per cycle, rows 0 .. rows-1, driven by the central
    control unit in every PE at once; docs/format.md "Arithmetic", bit-exact with
    ``sw.eie.fixedpoint.requantize``.

    - W0 (in :class:`ActivationRW`): read accumulator[row] and bias[bias_base + row];
    - W1: both registered as they leave their memories (``acc_data``, ``bias_data``);
      accumulator[row] := 0 (``clear_valid`` / ``clear_row``: ready for the next layer);
    - W1b: both registered once more (on an ECP5 the bias in its DP16KD's output register);
    - W1c: and the bias once more in the fabric; bias << shift (the product bias * 2**shift,
      :class:`hw.dsp.RegisteredMultiplier`: on an ECP5 registered in the MULT18X18D's own
      output register), registered with the accumulator;
    - W2: t = (acc + (bias << shift)) mod 2**acc_bits, registered;
    - W2b: of s = t >> shift (arithmetic) keep the bits that survive saturation (:func:`_window`);
    - W3: y = s + bit shift-1 of t (round half up), saturated to act_bits, ReLU if ``relu``;
    - W4: ``o`` writes y at the row (of the destination bank: :class:`ActivationRW`), with
      ``o.nonzero`` (y != 0, from W3's flags: :func:`_round_saturate`).

    ``i`` is the central control unit's row (``valid``, ``row``, ``clear``); a ``clear`` row only zeroes the accumulator (the central control unit
    clears all of them after reset, so a reset in the middle of a layer leaves no stale sums).
    """

    def __init__(self, params: HWParams):
        self._p = params
        lb = params.local_bits
        super().__init__({
            "i": In(params.wb),
            "shift": In(params.shift_bits),
            "relu": In(1),
            # named apart from ActivationRW's memories ``acc`` and ``bias``: the wires that
            # feed these ports take their names there, and the ROM flow finds ``bias`` by name
            "acc_data": In(signed(params.acc_bits)),
            "bias_data": In(signed(params.act_bits)),
            "clear_valid": Out(1),
            "clear_row": Out(lb),
            "o": Out(write_signature(lb, signed(params.act_bits), nonzero=True)),
        })

    def elaborate(self, platform) -> Module:
        m = Module()
        p = self._p
        lb, ab, accb = p.local_bits, p.act_bits, p.acc_bits
        # W1: the accumulator and the bias registered as they come out of their memories (the
        # bias is in block RAM: no logic fits after its clock-to-output delay). Only the valid
        # bits have a reset: the data registers hold what their stage's valid bit says (a
        # routed 16-PE build's critical path was the PE's reset register -> a write-back data
        # register's reset, 10.2 ns of routing)
        def data(shape, name):
            return Signal(shape, name=name, reset_less=True)
        v1, clr1, row1 = Signal(), Signal(), data(lb, "row1")
        m.d.sync += [v1.eq(self.i.valid), clr1.eq(self.i.clear), row1.eq(self.i.row)]
        m.d.comb += [self.clear_valid.eq(v1), self.clear_row.eq(row1)]
        v1b, row1b = Signal(), data(lb, "row1b")
        acc1b = data(signed(accb), "acc1b")
        # (the ECP5 flow makes bias1b the bias block RAM's own output register:
        # hw.fpga.ecp5.absorb_bram_output_registers)
        bias1b = data(signed(ab), "bias1b")
        m.d.sync += [v1b.eq(v1 & ~clr1), row1b.eq(row1), acc1b.eq(self.acc_data),
                     bias1b.eq(self.bias_data)]
        # W1c: the bias once more in the fabric, before the route into the DSP column (with
        # bias1b in the block RAM, the block RAM -> the multiplier was the critical path of a
        # routed 16-PE design: 6.3 ns of routing), and the rest with it
        v1c, row1c = Signal(), data(lb, "row1c")
        acc1c, bias1c = data(signed(accb), "acc1c"), data(signed(ab), "bias1c")
        m.d.sync += [v1c.eq(v1b), row1c.eq(row1b), acc1c.eq(acc1b), bias1c.eq(bias1b)]
        # W1c, W2: bias << shift, written as the product bias * 2**shift so that synthesis
        # gives it to a multiplier block (an ECP5 MULT18X18D; the arithmetic unit uses another,
        # the LFE5U-85F has 156) instead of a barrel shifter in LUTs (measured on ecp5_small:
        # 194 LUT4 per PE fewer). The bias reaches the multiplier from a fabric register
        # (bias1c: neither the block RAM's clock-to-output delay nor its output register's
        # place is in the route into the DSP column, docs/fpga.md), and the product is
        # registered at W2 (mod 2**acc_bits), on an ECP5 in the block's own output register
        # (hw.dsp: no route back into the fabric before it).
        # The factor 2**shift is registered here (shift is constant during a layer and comes
        # from the central control unit), so that both multiplier operands are registers.
        scale = data(1 << p.shift_bits, "scale")
        m.d.sync += scale.eq(1 << self.shift)
        m.submodules.scale_mult = mult = RegisteredMultiplier(signed(ab), scale.shape(), accb,
                                                              input_registers=False)
        m.d.comb += [mult.a.eq(bias1c), mult.b.eq(scale)]
        v2, row2 = Signal(), data(lb, "row2")
        acc2, bias2 = data(signed(accb), "acc2"), Signal(signed(accb))
        m.d.sync += [v2.eq(v1c), row2.eq(row1c), acc2.eq(acc1c)]
        m.d.comb += bias2.eq(mult.o)
        # W2: t = (acc + (bias << shift)) mod 2**acc_bits, registered
        v2b, row2b, t = Signal(), data(lb, "row2b"), data(signed(accb), "t")
        m.d.sync += [v2b.eq(v2), row2b.eq(row2), t.eq(acc2 + bias2)]
        # W2b: of s = t >> shift only what survives saturation to act_bits is kept: its low
        # act_bits bits and the rounding bit shift-1 (one shift of a window of t), whether s
        # is out of range and its sign -- not the whole acc_bits-wide s (see _window).
        win, over = _window(t, self.shift, ab, (1 << p.shift_bits) - 1)
        v3, row3 = Signal(), data(lb, "row3")
        r3, s3, over3, neg3 = data(1, "r3"), data(signed(ab), "s3"), data(1, "over3"), data(1, "neg3")
        m.d.sync += [v3.eq(v2b), row3.eq(row2b), r3.eq(win[0]), s3.eq(win[1:]),
                     over3.eq(over), neg3.eq(t[-1])]
        # W3: round half up, saturate, ReLU; W4: the row's result
        y_sat, y_nonzero = Signal(signed(ab)), Signal()
        y, nonzero = _round_saturate(s3, r3, over3, neg3, self.relu)
        m.d.comb += [y_sat.eq(y), y_nonzero.eq(nonzero)]
        m.d.sync += [self.o.en.eq(v3), self.o.addr.eq(row3), self.o.data.eq(y_sat),
                     self.o.nonzero.eq(y_nonzero)]
        return m


class NonZeroList(wiring.Component):
    """The leading non-zero detection of one PE: each bank's non-zero activations as a list of
    ``(local index, value)`` in ascending index, with its length, and the source list's head as
    this PE's leaf of the LNZD tree (docs/format.md "Timing": zeros cost no cycles).

    A list is built as its bank is written (``wr``: every write of a dense file, ``addr`` =
    bank << local_bits | local index; a non-zero value is appended), so the detection is a read
    pointer into the source bank's list. Writes come in ascending index after the list was
    emptied: host input writes into bank 0 (``in_clear`` empties it) and the write-back.

    Ports:
        wr: a write of a dense file (above), with ``nonzero`` (``data != 0``) computed by the
            writer a stage ahead: between the write's registers and the list memory's write
            enable and address there is no compare (the longest path of a routed 24-PE design
            ran through one: docs/fpga.md).
        in_clear: empty bank 0's list (host ACT_CLEAR).
        layer_start: pulse before a layer: rewinds the source list (its first element is at
            the head when ``compute`` rises) and empties the destination list.
        compute: the layer is running (the leaf is valid).
        src_bank: which bank is the source (the destination is the other).
        nz: the head of the source list: valid while ``compute``; ``sentinel`` once the list
            is exhausted; ``ready`` pops it.
        entry_read: the list memory is read at an entry of the list in this cycle (for access
            counters; its read port is also enabled past the list's end, ahead of a pop).
    """

    def __init__(self, params: HWParams):
        self._p = params
        super().__init__({
            "entry_read": Out(1),
            "wr": In(write_signature(params.local_bits + 1, signed(params.act_bits),
                                     nonzero=True)),
            "in_clear": In(1),
            "layer_start": In(1),
            "compute": In(1),
            "src_bank": In(1),
            "nz": Out(stream.Signature(params.leaf(0))),
        })

    def elaborate(self, platform) -> Module:
        m = Module()
        p = self._p
        c = p.config
        lb = p.local_bits
        depth = (1 << lb) + c.act_depth  # bank 1 at 1 << local_bits
        # block RAM (docs/fpga.md: distributed RAM is what ran out first); a read never meets a
        # write of the same word (the source list is read, the destination list written)
        m.submodules.list = lst = memory.Memory(shape=p.nz_item, depth=depth, init=[],
                                                 attrs={**NZ_LIST_MEMORY, **HOST_LOADED_MEMORY})
        l_wp = lst.write_port()
        l_rp = lst.read_port()  # non-transparent: the source list is not written in compute

        # append: the destination list is written only by the write-back, bank 0's also by the
        # host while the control unit is idle (never both in one cycle)
        dst = ~self.src_bank
        idx, bank = self.wr.addr[:lb], self.wr.addr[lb]
        append = self.wr.en & self.wr.nonzero
        counts = [Signal(p.count_bits, name=f"count{b}") for b in range(2)]
        # count == 0 kept as a register beside each count: it enables the first element's
        # register, after the append (no compare of the count on that path)
        emptys = [Signal(name=f"empty{b}", init=1) for b in range(2)]
        count_wr = Mux(bank, counts[1], counts[0])
        item = Signal(p.nz_item)
        m.d.comb += [
            item.idx.eq(idx), item.value.eq(self.wr.data),
            l_wp.en.eq(append), l_wp.addr.eq(Cat(count_wr[:lb], bank)), l_wp.data.eq(item),
        ]
        # each bank's first element is also kept in a register: it is the leaf's head in the
        # layer's first compute cycle, while the memory (two cycles from address to a
        # registered item) delivers the second
        firsts = [Signal(p.nz_item, name=f"first{b}") for b in range(2)]
        for b, count in enumerate(counts):
            clear = self.layer_start & (dst if b else ~dst)
            if b == 0:
                clear = clear | self.in_clear
            with m.If(clear):
                m.d.sync += [count.eq(0), emptys[b].eq(1)]
            with m.Elif(append & (bank == b)):
                m.d.sync += [count.eq(count + 1), emptys[b].eq(0)]
                with m.If(emptys[b]):
                    m.d.sync += firsts[b].eq(item)

        # The leaf is registered on both sides: its head is a register (the first element's,
        # or one of LEAF_SLOTS slots that take the memory's registered output as it is), and
        # what is read next
        # depends only on registers (read while the slots have room for everything in flight),
        # never on the node's ``ready`` -- so no combinational path runs from the LNZD tree into
        # the list's address. In LSTART the source list's second element is read and the first
        # is taken from its register: the first is the head when ``compute`` rises, and from
        # then on a new head is ready every cycle (the leaf is valid from the second compute
        # cycle: LEAF_READ_STAGES). A read past the end of the list returns the
        # sentinel (its flag is computed when the read is issued; the pointer stops there).
        # ``remaining`` = the source list's items not yet read (``count - rd_ptr``, at least 0):
        # past the end is ``remaining == 0``, a decode of a register (a compare of the pointer
        # with the source bank's count, then the increment, was the routed ULX3S top's critical
        # path: 15 logic levels from ``src_bank``)
        count_src = Mux(self.src_bank, counts[1], counts[0])
        rd_ptr = Signal(p.count_bits)
        remaining = Signal(p.count_bits)
        rd_addr = Signal(p.count_bits)
        issue = Signal()
        s1, s1_sent = Signal(), Signal()  # a read issued in the previous cycle
        s2, s2_sent = Signal(), Signal()  # ... two cycles before: in ``data2``
        # the memory's output in a register of its own, data only (no reset: ``s2`` says when
        # it holds an item), which the ECP5 flow makes the block RAM's output register
        data2 = Signal(p.nz_item, reset_less=True)
        started = Signal()  # ``compute`` a cycle ago: the leaf is valid
        use_first = Signal()  # the head is the first element's register
        first_sent = Signal()  # ... which is the sentinel (an empty list)
        # the slots are data only (``level``, ``wp`` and ``rp`` say which hold an item): no
        # reset, so the block's reset net does not reach them where the placer pulls them,
        # towards the LNZD node (a 24-PE build's critical path was that reset, 15.9 ns of
        # routing)
        slots = [Signal(p.nz_item, name=f"slot{n}", reset_less=True) for n in range(LEAF_SLOTS)]
        slot_sent = Signal(LEAF_SLOTS)
        wp, rp = Signal(range(LEAF_SLOTS)), Signal(range(LEAF_SLOTS))
        level = Signal(range(LEAF_SLOTS + 1))
        held = use_first + level + s1 + s2  # items held or on their way
        m.d.comb += [
            issue.eq(self.layer_start | (self.compute & (held < LEAF_SLOTS))),
            rd_addr.eq(Mux(self.layer_start, 1, rd_ptr)),
            l_rp.addr.eq(Cat(rd_addr[:lb], self.src_bank)), l_rp.en.eq(issue),
        ]
        # in LSTART the read is of element 1: past the end unless the list holds two
        past_end = Mux(self.layer_start, count_src[1:] == 0, remaining == 0)
        m.d.comb += self.entry_read.eq(issue & ~past_end)
        m.d.sync += [s1.eq(issue), s2.eq(s1 & ~self.layer_start), s2_sent.eq(s1_sent),
                     data2.eq(l_rp.data), started.eq(self.compute)]
        with m.If(issue):
            m.d.sync += s1_sent.eq(past_end)
        with m.If(self.layer_start):
            m.d.sync += [rd_ptr.eq(Mux(past_end, 1, 2)),
                         remaining.eq(Mux(past_end, 0, count_src - 2))]
        with m.Elif(issue & ~past_end):
            m.d.sync += [rd_ptr.eq(rd_ptr + 1), remaining.eq(remaining - 1)]

        head = Signal(p.nz_item)
        sentinel = Signal()
        pop = Signal()
        slot_head = Signal(p.nz_item)
        m.d.comb += [
            slot_head.eq(Cat(*(sl.as_value() for sl in slots)).word_select(rp, p.nz_item.size)),
            head.eq(Mux(use_first, Mux(self.src_bank, firsts[1].as_value(), firsts[0].as_value()),
                         slot_head.as_value())),
            sentinel.eq(Mux(use_first, first_sent, slot_sent.bit_select(rp, 1))),
            self.nz.valid.eq(self.compute & started & (use_first | (level != 0))),
            self.nz.payload.sentinel.eq(sentinel),
            # past the end the list memory holds nothing written: send zeros (4-state safe)
            self.nz.payload.idx.eq(Mux(sentinel, 0, head.idx)),
            self.nz.payload.value.eq(Mux(sentinel, 0, head.value)),
            pop.eq(self.nz.valid & self.nz.ready & ~sentinel),
        ]
        arrive = s2 & ~self.layer_start
        pop_slot = pop & ~use_first
        for n, slot in enumerate(slots):
            with m.If(arrive & (wp == n)):
                m.d.sync += [slot.eq(data2), slot_sent[n].eq(s2_sent)]
        with m.If(self.layer_start):
            m.d.sync += [use_first.eq(1), first_sent.eq(Mux(self.src_bank, emptys[1], emptys[0])),
                         wp.eq(0), rp.eq(0), level.eq(0)]
        with m.Else():
            m.d.sync += [wp.eq(wp + arrive), rp.eq(rp + pop_slot),
                         level.eq(level + arrive - pop_slot)]
            with m.If(pop):
                m.d.sync += use_first.eq(0)
        return m


class ActivationRW(wiring.Component):
    """Ports:
        acc: the arithmetic unit's accumulator access (:func:`hw.signatures.accumulator_signature`).
        nz: the head of the source bank's non-zero list (:class:`NonZeroList`), a leaf of the
            LNZD tree.
        layer_start, compute: as :class:`NonZeroList`'s, registered here with ``ctl.src_bank``
            (``LEAF_CONTROL_STAGES``).
        ctl: the running layer's parameters (``src_bank``, ``bias_base``, ``shift``, ``relu``;
            all but ``src_bank`` registered here before use, WB_ROW_STAGES).
        wb: a write-back or clear row (:class:`WriteBack`), registered here (WB_ROW_STAGES):
            W0 is the cycle after it arrives.
        in_wr / in_clear: host input writes into bank 0 (appended to its list when
            ``in_wr.nonzero``, which the PE registers with the write;
            write in ascending address after ``in_clear``; never while a write-back row is in
            flight, as the host writes only while idle).
        bias_wr: host bias writes.
        rd_addr / rd_data: host read of ``dense[rd_addr >> local_bits][rd_addr & mask]``, one
            cycle later.
    """

    def __init__(self, params: HWParams, init_bias: Sequence[int] = ()):
        self._p = params
        self._init_bias = list(init_bias)
        ab = signed(params.act_bits)
        super().__init__({
            "acc": In(accumulator_signature(params)),
            "nz": Out(stream.Signature(params.leaf(0))),
            "layer_start": In(1),
            "compute": In(1),
            "ctl": In(params.ctl),
            "wb": In(params.wb),
            "in_wr": In(write_signature(params.local_bits, ab, nonzero=True)),
            "in_clear": In(1),
            "bias_wr": In(write_signature(params.bias_addr_bits, ab)),
            "rd_addr": In(params.rd_addr_bits),
            "rd_data": Out(ab),
            # for access counters: a source non-zero list entry read, a write-back write
            "list_read": Out(1),
            "act_write": Out(1),
        })

    def elaborate(self, platform) -> Module:
        m = Module()
        p = self._p
        c = p.config
        lb, ab, accb = p.local_bits, p.act_bits, p.acc_bits
        m.submodules.write_back = writeback = WriteBack(p)
        m.submodules.nz_list = nzl = NonZeroList(p)

        # accumulators: the arithmetic unit's during compute, the write-back's otherwise (W0
        # reads a row, W1 clears it)
        m.submodules.acc = acc = memory.Memory(shape=signed(accb), depth=c.act_depth, init=[])
        acc_rp = acc.read_port()
        acc_wp = acc.write_port()
        m.submodules.bias = bias = memory.Memory(shape=signed(ab), depth=c.bias_depth,
                                                 init=self._init_bias, attrs=HOST_LOADED_MEMORY)
        bias_rp = bias.read_port()
        bias_wp = bias.write_port()
        au = self.acc
        # the rows and the parameters registered as they arrive from across the chip
        wb = Signal(p.wb)
        bias_base = Signal.like(self.ctl.bias_base)
        shift = Signal.like(self.ctl.shift)
        relu = Signal()
        layer_start, compute, src_bank = Signal(), Signal(), Signal()
        m.d.sync += [wb.eq(self.wb), bias_base.eq(self.ctl.bias_base), shift.eq(self.ctl.shift),
                     relu.eq(self.ctl.relu), layer_start.eq(self.layer_start),
                     compute.eq(self.compute), src_bank.eq(self.ctl.src_bank)]
        m.d.comb += [
            bias_wp.en.eq(self.bias_wr.en), bias_wp.addr.eq(self.bias_wr.addr),
            bias_wp.data.eq(self.bias_wr.data),
            acc_rp.addr.eq(Mux(wb.valid, wb.row, au.rd_addr)),
            bias_rp.addr.eq(bias_base + wb.row),
            au.rd_data.eq(acc_rp.data),
            writeback.i.eq(wb),
            writeback.shift.eq(shift), writeback.relu.eq(relu),
            writeback.acc_data.eq(acc_rp.data), writeback.bias_data.eq(bias_rp.data),
            acc_wp.en.eq(writeback.clear_valid | au.wr.en),
            acc_wp.addr.eq(Mux(writeback.clear_valid, writeback.clear_row, au.wr.addr)),
            acc_wp.data.eq(Mux(writeback.clear_valid, 0, au.wr.data)),
        ]

        # The two banks' dense files, one memory (bank 1 at 1 << local_bits). At most one bank
        # is written in any cycle: the write-back writes the destination bank, the host writes
        # bank 0 only while the control unit is idle, when no write-back row is in flight (TAIL
        # waits for W4). Only the host reads them, its address's MSB being the bank.
        depth = (1 << lb) + c.act_depth
        attrs = {"ram_style": "distributed"} if depth <= LUTRAM_MAX_DEPTH else None
        m.submodules.dense = dense = memory.Memory(shape=signed(ab), depth=depth, init=[],
                                                   attrs=attrs)
        d_wp, d_rp = dense.write_port(), dense.read_port()
        # the writer: the write-back (W4, into the destination bank) or the host (bank 0)
        wb_o, host = writeback.o, self.in_wr
        m.d.comb += [
            d_wp.en.eq(wb_o.en | host.en),
            d_wp.addr.eq(Cat(Mux(wb_o.en, wb_o.addr, host.addr), wb_o.en & ~src_bank)),
            d_wp.data.eq(Mux(wb_o.en, wb_o.data, host.data)),
            d_rp.addr.eq(self.rd_addr),
            self.rd_data.eq(d_rp.data),
            # every dense write goes into the bank's non-zero list too
            nzl.wr.en.eq(d_wp.en), nzl.wr.addr.eq(d_wp.addr), nzl.wr.data.eq(d_wp.data),
            nzl.wr.nonzero.eq(Mux(wb_o.en, wb_o.nonzero, host.nonzero)),
            nzl.in_clear.eq(self.in_clear), nzl.layer_start.eq(layer_start),
            nzl.compute.eq(compute), nzl.src_bank.eq(src_bank),
        ]
        wiring.connect(m, nzl.nz, wiring.flipped(self.nz))
        m.d.comb += [self.list_read.eq(nzl.entry_read), self.act_write.eq(wb_o.en)]
        return m


def _window(t, shift, ab: int, shift_max: int):
    """W2 of the write-back: ``(win, over)`` for ``s = t >> shift`` (arithmetic).

    ``win`` (``ab + 1`` bits) is bits ``shift - 1 .. shift + ab - 1`` of ``t`` (bit -1 is 0):
    the rounding bit, then the low ``ab`` bits of ``s``. ``over`` is high when ``s`` does not
    fit ``ab`` signed bits, i.e. when a bit of ``t`` from ``shift + ab - 1`` up differs from
    the sign bit. ``shift`` may be anything up to ``shift_max`` (the field's largest value).
    """
    width = len(t)
    sign = t[-1]
    # t with its bit -1 below and sign bits above, so that the window never runs off the top
    pad = max(0, shift_max + ab - width)
    x = Cat(Const(0, 1), t, sign.replicate(pad))[:shift_max + ab + 1]
    # a shifter that narrows: the largest step first, each stage keeping only the bits that
    # the remaining steps can still bring into the window (a generic shifter, smallest step
    # first, carries the full width through every stage)
    for i in reversed(range(len(shift))):
        step = 1 << i
        keep = ab + step  # ab + 1 window bits + up to step - 1 more positions
        x = Mux(shift[i], x[step:step + keep], x[:keep])
    # bit i of t counts when shift + ab - 1 <= i: a compare with a constant per bit (none
    # where it always holds), rather than a second shifter over the upper bits
    differs = [t[i] ^ sign for i in range(width - 1)]
    over = Cat(differs[i] if i - (ab - 1) >= shift_max else differs[i] & (shift <= i - (ab - 1))
               for i in range(ab - 1, width - 1)).any()
    return x, over


def _round_saturate(s, r, over, neg, relu):
    """W3 of the write-back: ``y = s + r`` (round half up) saturated to ``len(s)`` signed bits,
    then ReLU, from :func:`_window`'s low bits ``s`` (signed), rounding bit ``r``, ``over`` and
    the sign ``neg`` of the whole shifted value. Returns ``(y, y != 0)``, the second from the
    inputs directly (not after the adder): in range, ``s + r`` is zero exactly when ``s`` is 0
    and ``r`` is 0 or ``s`` is -1 and ``r`` is 1; saturated values are never zero.

    In range, ``s + r`` is at most ``hi + 1`` (saturates to ``hi``) and never below ``lo``;
    out of range, ``s + r`` saturates by the sign (``s < lo`` gives ``s + r <= lo``) and is
    negative exactly when ``s`` is.
    """
    ab = len(s)
    y = s + r  # ab + 1 bits: cannot wrap
    zero = relu & Mux(over, neg, y[ab])  # ReLU of a negative y
    to_lo = ~zero & over & neg
    to_hi = ~zero & Mux(over, ~neg, y[ab - 1] & ~y[ab])  # y = hi + 1 when in range
    # 0, lo = 100..0 and hi = 011..1 as bits forced on or off (measured: 32 LUTs fewer than
    # the equivalent chain of multiplexers with constants)
    low = (y[:ab - 1] | to_hi.replicate(ab - 1)) & ~(zero | to_lo).replicate(ab - 1)
    top = (y[ab - 1] | to_lo) & ~(zero | to_hi)
    sum_zero = Mux(r, s.all(), ~s.any())
    nonzero = ~zero & (over | ~sum_zero)
    return Cat(low, top).as_signed(), nonzero
