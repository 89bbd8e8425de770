"""A user's network through the RTL: host segments in PyTorch, each EIE segment on the
simulated accelerator (``eie sim --model FILE --inputs FILE``).

The network runs segment by segment (:meth:`sw.frontends.hybrid.HybridModel.run`); each EIE
segment's batch goes through the RTL as one case (its images loaded once, then one run per
input), every output checked bit for bit against the golden model and every cycle count
against the cycle model, and the RTL's outputs feed the host segments that follow, so the
RTL's accuracy is the whole network's on the hardware.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from sw.compression.data import Dataset, evaluate
from sw.errors import DataError
from sw.frontends.hybrid import HybridModel

from .design import eie_design
from .job import Job
from .regress import Log, Row, _entry, format_table, log_stderr
from .session import run_job


@dataclass
class HybridReport:
    model: HybridModel
    rows: list[Row] = field(default_factory=list)  # one per EIE segment
    outputs: dict[str, np.ndarray] = field(default_factory=dict)  # float / golden / rtl
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    same_prediction: int | None = None  # classification: RTL == golden argmax count

    @property
    def ok(self) -> bool:
        return bool(self.rows) and all(r.result is not None and r.result.ok for r in self.rows)

    def lines(self) -> list[str]:
        out = [format_table(self.rows), "", layer_table(self.rows)]
        for seg, row in zip(self.model.segments, self.rows, strict=False):
            if row.result is not None and not row.result.ok:
                out.append(f"FAIL EIE segment {seg.index}: {row.result.message}")
        sat = ", ".join(f"{k} {v}" for k, v in self.model.saturation.items())
        out.append(f"saturated outputs per layer (golden model, all inputs): {sat or 'none'}")
        for what, m in self.metrics.items():
            out.append(f"{what:7} " + ", ".join(f"{k} {_metric(k, v)}" for k, v in m.items()))
        if self.same_prediction is not None:
            n = len(self.outputs["rtl"])
            out.append(f"RTL == golden prediction on {self.same_prediction}/{n} inputs")
        if "rtl" in self.outputs and "golden" in self.outputs:
            exact = np.array_equal(self.outputs["rtl"], self.outputs["golden"])
            out.append(f"network outputs RTL == golden: {'yes' if exact else 'NO'}")
        return out


def _metric(name: str, v: float) -> str:
    return f"{v:.2%}" if name == "accuracy" else f"{v:.6g}"


def layer_table(rows: list[Row]) -> str:
    head = f"{'layer':14} {'cycles':>10} {'compute':>10} {'lower bound':>12} {'stalls':>8} {'efficiency':>10}"
    lines = [head, "-" * len(head)]
    for row in rows:
        for f in row.entry.extra.get("layers", []):
            lines.append(f"{f.name:14} {f.cycles:>10,.1f} {f.compute_cycles:>10,.1f} "
                         f"{f.lower_bound:>12,.1f} {f.stall_cycles:>8,.1f} {f.efficiency:>10.1%}")
    lines.append("(per input, means; cycles from the cycle model, whose sum per run the RTL's "
                 "counter matched)")
    return "\n".join(lines)


def simulate_network(model: HybridModel, x: np.ndarray, data: Dataset | None = None,
                     log: Log = log_stderr, keep: bool = False) -> HybridReport:
    """``x`` through float, the golden model and the RTL; metrics against ``data``'s targets
    (the first ``len(x)`` test targets) when given."""
    report = HybridReport(model)
    report.outputs.update(model.float_outputs(x))
    report.outputs["golden"] = model.run_golden(x)
    design = eie_design(model.config, log=log)

    def rtl(index: int, a: np.ndarray) -> np.ndarray:
        seg = model.segments[index]
        xq = seg.image.quantize_input(a)
        name = f"segment{index}"
        entry = _entry(f"EIE segment {index}", seg.image, seg.layers, xq, None, name,
                       golden_batch=True)
        log(f"EIE segment {index}: {len(xq)} input(s) through the RTL ...")
        result = run_job(design, Job([entry.case], stop_on_fail=False), keep=keep)
        case = result.cases[0]
        report.rows.append(Row(entry, case))
        last = len(seg.image.layers) - 1
        if len(case.runs) != len(xq) or any(last not in r.outputs for r in case.runs):
            raise DataError(f"EIE segment {index}: the RTL run stopped early ({case.message})")
        y = np.stack([seg.image.to_logical(last, r.outputs[last]) for r in case.runs])
        return seg.image.dequantize_output(y).astype(np.float32)

    report.outputs["rtl"] = model.run(x, rtl)
    if data is not None:
        y = data.y_test[: len(x)]
        report.metrics = {k: evaluate(data.task, v, y) for k, v in report.outputs.items()}
        if data.task == "classification":
            report.same_prediction = int(np.sum(report.outputs["rtl"].argmax(-1)
                                                == report.outputs["golden"].argmax(-1)))
    return report
