"""Activation read/write unit: the PE's register files, its non-zero list and the write-back.

Han et al., EIE (ISCA 2016), Section IV "Activation Read/Write": a source and a destination
activation register file that swap roles between layers, so a layer's outputs are in place as
the next layer's inputs; ReLU on write-back; each PE's leading-non-zero detection over its
source activations feeds the LNZD tree.

What this unit holds, per PE (docs/hardware.md):

- the accumulator file (``act_depth`` x ``acc_bits``): the destination file during compute,
  read and written by the arithmetic unit;
- two activation banks, each a dense file (``act_depth`` x ``act_bits``: what the host reads)
  and a *non-zero list* of ``(local index, value)`` pairs in ascending index with its length.
  The list is built as the bank is written -- by host input writes (bank 0) and by the
  write-back -- so the leading-non-zero detection is a read pointer into the source bank's
  list: zeros never cost a cycle and the next non-zero is ready every cycle;
- the bias file (``bias_depth`` x ``act_bits``).

Write-back (one row per cycle, rows 0 .. rows-1, driven by the central control unit in every PE
at once), docs/format.md "Arithmetic", bit-exact with ``sw.golden.requantize``:

- W0: read accumulator[row] and bias[bias_base + row];
- W1: both registered as they are; accumulator[row] := 0 (ready for the next layer);
- W1b: t = (acc + (bias << w_frac)) mod 2**acc_bits;
- W2: u = t << 1 >> w_frac (one arithmetic shift gives both t >> w_frac and bit w_frac-1);
- W3: y = (u >> 1) + (u & 1) (round half up), saturated to act_bits, ReLU if the layer says so;
- W4: dense[dst][row] := y; if y != 0, append (row, y) to the destination list.

A ``clear`` row only zeroes the accumulator (the central control unit clears all of them after
reset, so a reset in the middle of a layer leaves no stale sums).
"""

from __future__ import annotations

from collections.abc import Sequence

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import memory, stream, wiring
from amaranth.lib.wiring import In, Out

from .params import HOST_LOADED_MEMORY, HWParams

WB_STAGES = 5  # W0 (read) .. W4 (write): a row's result is written 5 cycles after its read


class ActivationRW(wiring.Component):
    """Ports:
        acc_rd_addr / acc_rd_data / acc_wr_*: the arithmetic unit's accumulator access.
        nz: the head of the source bank's non-zero list (a leaf of the LNZD tree): valid while
            ``compute``; ``sentinel`` once the list is exhausted; ``ready`` pops it.
        layer_start: pulse before a layer: rewinds the source list (its first element is at
            the head when ``compute`` rises) and empties the destination list.
        compute: the layer is running (the leaf is valid).
        src_bank: which bank is the source (the destination is the other).
        wb: a write-back or clear row; bias_base, w_frac, relu: the layer's parameters.
        in_wr_en / in_clear / in_wr_addr / in_wr_data: host input writes into bank 0 (appended
            to its list when non-zero; write in ascending address after ``in_clear``).
        bias_wr_en / bias_wr_addr / bias_wr_data: host bias writes.
        rd_addr / rd_data: host read of ``dense[rd_addr >> local_bits][rd_addr & mask]``, one
            cycle later.
    """

    def __init__(self, params: HWParams, init_bias: Sequence[int] = ()):
        self._p = params
        self._init_bias = list(init_bias)
        lb = params.local_bits
        super().__init__({
            "acc_rd_addr": In(lb),
            "acc_rd_data": Out(signed(params.acc_bits)),
            "acc_wr_en": In(1),
            "acc_wr_addr": In(lb),
            "acc_wr_data": In(signed(params.acc_bits)),
            "nz": Out(stream.Signature(params.leaf(0))),
            "layer_start": In(1),
            "compute": In(1),
            "src_bank": In(1),
            "wb": In(params.wb),
            "bias_base": In(params.bias_addr_bits),
            "w_frac": In(params.w_frac_bits),
            "relu": In(1),
            "in_wr_en": In(1),
            "in_clear": In(1),
            "in_wr_addr": In(lb),
            "in_wr_data": In(signed(params.act_bits)),
            "bias_wr_en": In(1),
            "bias_wr_addr": In(params.bias_addr_bits),
            "bias_wr_data": In(signed(params.act_bits)),
            "rd_addr": In(params.rd_addr_bits),
            "rd_data": Out(signed(params.act_bits)),
        })

    def elaborate(self, platform) -> Module:
        m = Module()
        p = self._p
        c = p.config
        lb, ab, accb = p.local_bits, p.act_bits, p.acc_bits

        # -- accumulators: arithmetic unit during compute, write-back otherwise --------------
        m.submodules.acc = acc = memory.Memory(shape=signed(accb), depth=c.act_depth, init=[])
        acc_rp = acc.read_port()
        acc_wp = acc.write_port()
        m.submodules.bias = bias = memory.Memory(shape=signed(ab), depth=c.bias_depth,
                                                 init=self._init_bias, attrs=HOST_LOADED_MEMORY)
        bias_rp = bias.read_port()
        bias_wp = bias.write_port()
        m.d.comb += [
            bias_wp.en.eq(self.bias_wr_en), bias_wp.addr.eq(self.bias_wr_addr),
            bias_wp.data.eq(self.bias_wr_data),
            acc_rp.addr.eq(Mux(self.wb.valid, self.wb.row, self.acc_rd_addr)),
            bias_rp.addr.eq(self.bias_base + self.wb.row),
            self.acc_rd_data.eq(acc_rp.data),
        ]

        # -- write-back pipeline ---------------------------------------------------------------
        v1, clr1, row1 = Signal(), Signal(), Signal(lb)
        m.d.sync += [v1.eq(self.wb.valid), clr1.eq(self.wb.clear), row1.eq(self.wb.row)]
        # W1: the accumulator and the bias registered as they come out of their memories (the
        # bias is in block RAM: no logic fits after its clock-to-output delay); accumulator
        # cleared
        m.d.comb += [
            acc_wp.en.eq(v1 | self.acc_wr_en),
            acc_wp.addr.eq(Mux(v1, row1, self.acc_wr_addr)),
            acc_wp.data.eq(Mux(v1, 0, self.acc_wr_data)),
        ]
        v1b, row1b = Signal(), Signal(lb)
        acc1b, bias1b = Signal(signed(accb)), Signal(signed(ab))
        m.d.sync += [v1b.eq(v1 & ~clr1), row1b.eq(row1), acc1b.eq(acc_rp.data),
                     bias1b.eq(bias_rp.data)]
        # W1b: bias in
        t = Signal(signed(accb))
        m.d.comb += t.eq(acc1b + (bias1b << self.w_frac))  # mod 2**acc_bits
        v2, row2, t2 = Signal(), Signal(lb), Signal(signed(accb))
        m.d.sync += [v2.eq(v1b), row2.eq(row1b), t2.eq(t)]
        # W2: one shift gives t >> w_frac (u >> 1) and the rounding bit w_frac-1 (u & 1)
        u3 = Signal(signed(accb + 1))
        v3, row3 = Signal(), Signal(lb)
        m.d.sync += [v3.eq(v2), row3.eq(row2), u3.eq(Cat(Const(0, 1), t2).as_signed() >> self.w_frac)]
        # W3: round half up, saturate, ReLU
        y = Signal(signed(accb))
        y_sat = Signal(signed(ab))
        lo, hi = -(1 << (ab - 1)), (1 << (ab - 1)) - 1
        m.d.comb += y.eq(u3[1:].as_signed() + u3[0])
        with m.If(self.relu & y[-1]):
            m.d.comb += y_sat.eq(0)
        with m.Elif(y > hi):
            m.d.comb += y_sat.eq(hi)
        with m.Elif(y < lo):
            m.d.comb += y_sat.eq(lo)
        with m.Else():
            m.d.comb += y_sat.eq(y)
        v4, row4, y4 = Signal(), Signal(lb), Signal(signed(ab))
        m.d.sync += [v4.eq(v3), row4.eq(row3), y4.eq(y_sat)]
        # W4: write to the destination bank (below)

        # -- two banks: dense file + non-zero list ---------------------------------------------
        dst = ~self.src_bank
        # the source list is read ahead of the leaf (see "leading non-zero" below): ``rd_addr``
        # is the next element to read, ``ren`` reads it into the read ports' data registers
        rd_ptr = Signal(p.count_bits)
        rd_addr = Signal(p.count_bits)
        ren = Signal()
        heads, counts, dense_data = [], [], []
        for b in range(2):
            dense = memory.Memory(shape=signed(ab), depth=c.act_depth, init=[])
            lst = memory.Memory(shape=p.nz_item, depth=c.act_depth, init=[])
            m.submodules[f"dense{b}"] = dense
            m.submodules[f"list{b}"] = lst
            d_wp, d_rp = dense.write_port(), dense.read_port()
            l_wp = lst.write_port()
            l_rp = lst.read_port()  # non-transparent: the source list is not written in compute
            count = Signal(p.count_bits, name=f"count{b}")
            # writer: the write-back (destination bank) or the host (bank 0, inputs)
            is_dst = dst if b else ~dst
            wb_we = v4 & is_dst
            we, addr, val = Signal(name=f"we{b}"), Signal(lb, name=f"waddr{b}"), \
                Signal(signed(ab), name=f"wdata{b}")
            if b == 0:
                m.d.comb += [
                    we.eq(wb_we | self.in_wr_en),
                    addr.eq(Mux(wb_we, row4, self.in_wr_addr)),
                    val.eq(Mux(wb_we, y4, self.in_wr_data)),
                ]
            else:
                m.d.comb += [we.eq(wb_we), addr.eq(row4), val.eq(y4)]
            append = we & (val != 0)
            m.d.comb += [
                d_wp.en.eq(we), d_wp.addr.eq(addr), d_wp.data.eq(val),
                l_wp.en.eq(append), l_wp.addr.eq(count),
                l_wp.data.idx.eq(addr), l_wp.data.value.eq(val),
                l_rp.addr.eq(rd_addr), l_rp.en.eq(ren),
                d_rp.addr.eq(self.rd_addr[:lb]),
            ]
            empty = self.layer_start & is_dst
            if b == 0:
                empty = empty | self.in_clear
            with m.If(empty):
                m.d.sync += count.eq(0)
            with m.Elif(append):
                m.d.sync += count.eq(count + 1)
            heads.append(l_rp.data)
            counts.append(count)
            dense_data.append(d_rp.data)

        # -- leading non-zero of this PE: the head of the source list ----------------------------
        # The leaf is registered on both sides: its head is a register (the read ports' data, or
        # the skid register when the LNZD node did not take it), and what is read next depends
        # only on registers (read whenever the skid register is empty), never on the node's
        # ``ready`` -- so no combinational path runs from the LNZD tree into the list's address.
        # The layer's first element is read in LSTART and is the head when ``compute`` rises;
        # from then on a new head is ready every cycle. A read past the end of the list returns
        # the sentinel (its flag is computed when the read is issued; the pointer stops there).
        count_src = Mux(self.src_bank, counts[1], counts[0])
        rd_item = Signal(p.nz_item)
        rd_sent = Signal()  # the read ports hold the sentinel
        skid = Signal(p.nz_item)
        skid_sent = Signal()
        skid_valid = Signal()
        m.d.comb += [
            rd_item.eq(Mux(self.src_bank, heads[1].as_value(), heads[0].as_value())),
            ren.eq(self.layer_start | ~skid_valid),
            rd_addr.eq(Mux(self.layer_start, 0, rd_ptr)),
        ]
        past_end = rd_addr >= count_src
        with m.If(ren):
            m.d.sync += [rd_sent.eq(past_end), rd_ptr.eq(rd_addr + ~past_end)]
        head = Signal(p.nz_item)
        sentinel = Signal()
        pop = Signal()
        m.d.comb += [
            head.eq(Mux(skid_valid, skid, rd_item)),
            sentinel.eq(Mux(skid_valid, skid_sent, rd_sent)),
            self.nz.valid.eq(self.compute),
            self.nz.payload.sentinel.eq(sentinel),
            # past the end the list memory holds nothing written: send zeros (4-state safe)
            self.nz.payload.idx.eq(Mux(sentinel, 0, head.idx)),
            self.nz.payload.value.eq(Mux(sentinel, 0, head.value)),
            pop.eq(self.nz.valid & self.nz.ready & ~sentinel),
        ]
        with m.If(self.layer_start):
            m.d.sync += skid_valid.eq(0)
        with m.Elif(skid_valid):
            m.d.sync += skid_valid.eq(~pop)
        with m.Elif(self.compute & ~pop):  # the head was not taken: keep it, read on
            m.d.sync += [skid_valid.eq(1), skid.eq(rd_item), skid_sent.eq(rd_sent)]

        # -- host read of a dense file ------------------------------------------------------------
        rd_bank = Signal()
        m.d.sync += rd_bank.eq(self.rd_addr[lb])
        m.d.comb += self.rd_data.eq(Mux(rd_bank, dense_data[1], dense_data[0]))
        return m
