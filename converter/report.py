"""The conversion report: per-layer table, totals, memory plot (report.json/.md/.png)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from . import __version__, arch, atomic
from .atomic import Staging, checkpoint
from .convert import Conversion
from .ir.steps import (
    AddStep,
    ConcatPartStep,
    ConstStep,
    ConvStep,
    FullyConnectedStep,
    InputStep,
    MeanStep,
    PoolStep,
    RequantizeStep,
    SoftmaxStep,
    Step,
)
from .passes import planner
from .passes.stream import rows_of


@dataclass(frozen=True)
class LayerRow:
    index: int
    name: str
    op: str
    inputs: list[list[int]]
    output: list[int]
    macs: int
    weight_bytes: int
    arena_offset: int
    arena_bytes: int
    scratch_bytes: int
    live_bytes: int
    kernel: str = ""
    segment: int = 0
    ring_rows: int | None = None  # rows kept of the output, when it is a ring
    weights: str = ""  # how the filter is stored: int8, packed or sparse (converter.packing)
    filter_bytes: int = 0
    filter_dense_bytes: int = 0  # the same filter as plain int8
    rows_per_call: int = 1  # output rows per kernel call (passes.choose_rows)
    decode_block: int = 0  # packed: channels decoded per block, 0 = the kernel's least
    # Kept plain int8 although packing shrinks it (--packing ram or auto): what packing would have
    # saved, and what it would have added to the peak arena (passes.pack_within).
    kept_plain_saving: int = 0
    kept_plain_arena_growth: int = 0
    # Runs a portable kernel on an architecture with variants of its kind: why each declined.
    fallback: str = ""


@dataclass(frozen=True)
class SegmentRow:
    index: int
    layers: list[str]
    calls: int
    first_tick: int
    last_tick: int


@dataclass(frozen=True)
class RingRow:
    tensor: str
    rows: int  # of the tensor's rows
    slots: int  # kept in the ring
    bytes: int
    whole_bytes: int


def _op_text(s: Step) -> str:
    if isinstance(s, ConvStep):
        f = s.filter_dims
        kind = ("depthwise conv" if f.c == 1 and s.groups == s.input_dims.c
                else f"conv in {s.groups} groups" if s.grouped else "conv")
        return f"{kind} {f.h}x{f.w}/{s.stride[0]}"
    if isinstance(s, PoolStep):
        return f"{s.kind}pool {s.filter_hw[0]}x{s.filter_hw[1]}/{s.stride[0]}"
    names = {MeanStep: "mean", ConcatPartStep: "concat", AddStep: "add",
             SoftmaxStep: "softmax", FullyConnectedStep: "fully connected",
             RequantizeStep: "requantize", ConstStep: "load constant",
             InputStep: "input rows"}
    return names.get(type(s), type(s).__name__)


def _output(s: Step) -> int:
    return s.writes[0]


def _encoding_text(s: Step) -> str:
    if not isinstance(s, ConvStep):
        return "int8" if s.weight_bytes else ""
    e = s.packed
    if e is None:
        return "int8"
    book = "per channel" if e.per_channel else "per tensor"
    if e.kind == "sparse":
        return f"sparse {e.bits}-bit, {book}, Rice k={e.rice_k}"
    return f"packed {e.bits}-bit, {book}"


def _dense_bytes(s: Step) -> int:
    if isinstance(s, ConvStep):
        f = s.filter_dims
        return f.n * f.h * f.w * f.c
    return 0


@dataclass
class Report:
    tool_version: str
    model: str
    model_sha256: str
    target: str
    calibration: str
    layers: list[LayerRow]
    macs: int
    weight_bytes: int
    code_bytes_estimate: int
    flash_bytes: int
    flash_limit: int
    arena_bytes: int
    arena_lower_bound: int
    arena_naive_bytes: int
    arena_strategy: str
    arena_place: str
    ram_limit: int
    input_shape: list[int]
    output_shape: list[int]
    plan_ascii: str
    stream: str = "off"
    packing: str = "auto"  # sqz-convert --packing
    # The arena with every filter plain int8 (0: packing was not weighed against it), and
    # --packing auto's bound (0 for the other modes): what packing added, and what it could.
    plain_arena_bytes: int = 0
    packing_room: int = 0
    # Packed layers on the portable packed kernel where the board's architecture has no packed
    # variant or its variant refused them: slower than plain.
    portable_packed: list[str] = field(default_factory=list)
    input: str = "whole"  # how the input arrives: "whole", or "ring of N rows" (--input)
    scratch: str = "full"  # the convs' scratch: full or least (--scratch)
    segments: list[SegmentRow] = field(default_factory=list)
    rings: list[RingRow] = field(default_factory=list)
    live_curve: list[int] = field(default_factory=list)  # live bytes per kernel call
    image: dict | None = None  # arm-none-eabi-size of the built firmware, where one is built
    # The picture written beside report.md: live bytes per kernel call and the arena layout.
    picture: str = "report.png"
    # The whole firmware's RAM as the budget check counted it (passes.budget.app_ram_bytes):
    # arena, stack, buffers, static, internal (what the SRAM holds) and limit (the SRAM).
    ram: dict | None = None
    image_note: str = ""

    def to_json(self) -> dict:
        return asdict(self)

    def summary_text(self) -> str:
        streamed = (f", {sum(len(x.layers) for x in self.segments if len(x.layers) > 1)} "
                    f"layers streamed row by row in "
                    f"{sum(1 for x in self.segments if len(x.layers) > 1)} segment(s)"
                    if self.stream == "full" else "")
        return (
            f"[bold]{self.model}[/] for [bold]{self.target}[/]: "
            f"{self.macs / 1e6:,.1f} M MACs, {len(self.layers)} steps{streamed}\n"
            f"  flash {self.flash_bytes:,} B (weights {self.weight_bytes:,} B + code "
            f"~{self.code_bytes_estimate:,} B) of {self.flash_limit:,} B\n"
            f"  arena {self.arena_bytes:,} B in {self.arena_place} (lower bound "
            f"{self.arena_lower_bound:,} B, no reuse {self.arena_naive_bytes:,} B)\n"
            + (f"  whole firmware's RAM ~{self.ram['internal']:,} B of {self.ram['limit']:,} B "
               f"(stack {self.ram['stack']:,} B, buffers {self.ram['buffers']:,} B, static "
               f"{self.ram['static']:,} B)\n" if self.ram else "") +
            f"  calibration: {self.calibration}"
            + (f"\n  {self.image_note}" if self.image_note else "")
        )

    def _packing_text(self) -> str:
        """The mode, and what packing did to the arena where it was weighed."""
        packable = any(r.weights not in ("", "int8") or r.kept_plain_saving
                       for r in self.layers)
        if self.packing != "auto" or not self.plain_arena_bytes or not packable:
            return self.packing  # ram keeps plain filters' arena; flash does not weigh it
        grew = self.arena_bytes - self.plain_arena_bytes
        plain = f"plain int8 filters' {self.plain_arena_bytes:,} B"
        what = (f"the arena grew by {grew:,} B over {plain}" if grew > 0 else
                f"the arena is {-grew:,} B below {plain}" if grew < 0 else
                "the arena is that of plain int8 filters")
        if self.packing_room < self.plain_arena_bytes:
            return (f"auto: {what} (the board's SRAM leaves the arena {self.packing_room:,} B, "
                    "less than plain filters take: packing kept to their arena)")
        return f"auto: {what} (the board's RAM leaves it {self.packing_room:,} B)"

    def _kept_plain_why(self) -> str:
        """Why packing kept filters plain: the bound pack_within held the arena to."""
        if self.packing != "auto":
            return ("would raise the peak arena, and `--packing ram` keeps it that of plain "
                    "filters")
        if self.packing_room < self.plain_arena_bytes:
            return ("would raise the peak arena, and `--packing auto` keeps it that of plain "
                    "filters when the board's SRAM cannot hold even that")
        return (f"would take the arena past the {self.packing_room:,} B the board's RAM leaves "
                "it (`--packing auto`)")

    def _ram_row(self) -> str:
        r = self.ram
        arena = f"arena {r['arena']:,} B" + (" (in PSRAM, not counted)"
                                             if r["arena_in_psram"] else "")
        return (f"| whole firmware's RAM (estimate: arena, stack, buffers, static data) | "
                f"{r['internal']:,} B of {r['limit']:,} B: {arena}, stack {r['stack']:,} B, "
                f"buffers {r['buffers']:,} B, static {r['static']:,} B |")

    def markdown(self) -> str:
        lines = [
            f"# sqz conversion report: {self.model} for {self.target}",
            "",
            f"Generated by sqz {self.tool_version}. Model SHA-256 `{self.model_sha256}`. "
            f"Calibration: {self.calibration}.",
            "",
            "| total | value |",
            "|---|---|",
            f"| MACs per inference | {self.macs:,} |",
            f"| flash (weights + code estimate) | {self.flash_bytes:,} B of "
            f"{self.flash_limit:,} B |",
            f"| weights, biases, requantization constants | {self.weight_bytes:,} B |",
            f"| peak RAM (arena, in {self.arena_place}) | {self.arena_bytes:,} B |",
            *([self._ram_row()] if self.ram else []),
            f"| arena lower bound (peak live bytes of this schedule) | "
            f"{self.arena_lower_bound:,} B |",
            f"| arena without reuse (naive sum) | {self.arena_naive_bytes:,} B |",
            f"| row streaming | {self.stream} |",
            f"| packing (`--packing`) | {self._packing_text()} |",
            f"| input (`--input`) | {self.input} |",
            f"| conv scratch (`--scratch`) | {self.scratch} |",
            *([f"| firmware image flash (text + data) | {self.image['flash']:,} B |",
               f"| firmware image RAM (data + bss) | {self.image['ram']:,} B |"]
              if self.image else []),
            "",
            *([self.image_note, ""] if self.image_note else []),
            "| # | layer | op | kernel | input | output | MACs | weight B | arena offset | "
            "out B | ring rows | scratch B | live B |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in self.layers:
            ins = ", ".join("x".join(map(str, s)) for s in r.inputs)
            ring = "" if r.ring_rows is None else str(r.ring_rows)
            kernel = f"{r.kernel} (portable fallback: {r.fallback})" if r.fallback else r.kernel
            lines.append(
                f"| {r.index} | {r.name} | {r.op} | {kernel} | {ins} | "
                f"{'x'.join(map(str, r.output))} | {r.macs:,} | {r.weight_bytes:,} | "
                f"{r.arena_offset:,} | {r.arena_bytes:,} | {ring} | {r.scratch_bytes:,} | "
                f"{r.live_bytes:,} |")
        packed = [r for r in self.layers if r.weights not in ("", "int8")]
        kept = [r for r in self.layers if r.kept_plain_saving]
        if packed or kept:
            dense = sum(r.filter_dense_bytes for r in self.layers)
            stored = sum(r.filter_bytes for r in self.layers)
            lines += ["", "## Packed weights", "",
                      f"Filters stored as codebook indices (decoded inside the kernels): "
                      f"{stored:,} B against {dense:,} B as plain int8." if packed else
                      "No filter is stored as codebook indices.", "",
                      "Each call of a packed kernel decodes the whole filter, a block of "
                      "output channels at a time: rows per call and larger blocks are chosen "
                      "where the arena has room for them.", ""]
            if kept:
                lines += [f"{len(kept)} filter(s) stay plain int8 although packing shrinks "
                          f"them ({', '.join(r.name for r in kept)}): their decoded block "
                          f"{self._kept_plain_why()}. `--packing flash` packs them "
                          f"({sum(r.kept_plain_saving for r in kept):,} B less flash) and "
                          "lets the arena grow (by what each added when tried, below).", ""]
            slow = self.portable_packed
            if slow:
                # Flash bought with speed: say so where the choice is made, not only per row.
                lines += [f"{len(slow)} packed filter(s) run on the portable packed kernel "
                          f"({', '.join(slow)}): this board's own kernels do not "
                          "take them packed (the layer table says why where one refused), "
                          "so these layers are slower than plain int8 (`sqz-bench` measures "
                          "by how much; `--packing off` keeps every filter plain).", ""]
            lines += ["| # | layer | stored as | filter B | as int8 B | rows per call | "
                      "decoded block |", "|---|---|---|---|---|---|---|"]
            for r in self.layers:
                if r.filter_dense_bytes:
                    block = ("-" if r.weights == "int8" else
                             f"{r.decode_block} channels" if r.decode_block else "least")
                    how = r.weights
                    if r.kept_plain_saving:
                        how += (f" (packed: {r.kept_plain_saving:,} B less, arena "
                                f"+{r.kept_plain_arena_growth:,} B)")
                    lines.append(f"| {r.index} | {r.name} | {how} | {r.filter_bytes:,} | "
                                 f"{r.filter_dense_bytes:,} | {r.rows_per_call} | {block} |")
        lines += ["", "## Segments", "",
                  "Layers of a segment run row by row, interleaved; a segment of one layer "
                  "runs on whole tensors.", "",
                  "| # | layers | kernel calls | ticks |", "|---|---|---|---|"]
        for g in self.segments:
            names = g.layers[0] if len(g.layers) == 1 else \
                f"{g.layers[0]} .. {g.layers[-1]} ({len(g.layers)} layers)"
            lines.append(f"| {g.index} | {names} | {g.calls:,} | {g.first_tick}-{g.last_tick} |")
        if self.rings:
            lines += ["", "## Rings", "",
                      "Tensors never stored whole: their rows go through a ring of slots.", "",
                      "| tensor | rows | slots | ring B | whole tensor B |",
                      "|---|---|---|---|---|"]
            for ring in self.rings:
                lines.append(f"| {ring.tensor} | {ring.rows} | {ring.slots} | "
                             f"{ring.bytes:,} | {ring.whole_bytes:,} |")
        lines += ["", "## Arena map", "",
                  "One line per run of kernel calls (ticks) with the same picture.", "",
                  "```", self.plan_ascii.rstrip(), "```", "",
                  f"The same as a picture: [{self.picture}]({self.picture}), the live bytes "
                  "per kernel call against the lower bound (top; shaded: the row-streamed "
                  "spans) and where each buffer sits in the arena (bottom; tensors and "
                  "scratch or state in their own colours, as its legends say).",
                  "", f"![live bytes and arena layout]({self.picture})", ""]
        return "\n".join(lines)


def build_report(conv: Conversion, *, calibration: str) -> Report:
    lw, lay, b = conv.lowered, conv.layout, conv.budget
    g = lw.graph
    sched = lay.schedule
    seg_of = {i: si for si, seg in enumerate(sched.segments) for i in seg.nodes}
    rows = []
    for i, s in enumerate(lw.steps):
        out_t = _output(s)
        r = lay.rows[out_t]
        kept = getattr(s, "kept_plain", None)
        ring = r.slots if out_t in sched.slots else None
        rows.append(LayerRow(
            index=i, name=s.name, op=_op_text(s),
            inputs=[list(g.tensor(t).shape) for t in s.reads],
            output=list(g.tensor(out_t).shape), macs=s.macs, weight_bytes=s.weight_bytes,
            arena_offset=lay.offsets.get(out_t, 0),
            arena_bytes=r.slots * r.pitch if ring else g.tensor(out_t).nbytes,
            scratch_bytes=s.scratch_bytes(), live_bytes=lay.step_live_bytes(i),
            kernel=getattr(s, "kernel", ""), segment=seg_of[i], ring_rows=ring,
            weights=_encoding_text(s), filter_bytes=getattr(s, "filter_bytes", 0),
            filter_dense_bytes=_dense_bytes(s),
            rows_per_call=getattr(s, "rows_per_call", 1),
            decode_block=getattr(s, "decode_block", 0),
            kept_plain_saving=kept.flash_saving if kept else 0,
            kept_plain_arena_growth=kept.arena_growth if kept else 0,
            fallback=arch.fallback_reason(s, conv.arch) or "",
        ))
    segments = []
    for si, seg in enumerate(sched.segments):
        a = min(lay.step_ticks[i][0] for i in seg.nodes)
        z = max(lay.step_ticks[i][1] for i in seg.nodes)
        segments.append(SegmentRow(index=si, layers=[lw.steps[i].name for i in seg.nodes],
                                   calls=seg.ticks(), first_tick=a, last_tick=z))
    rings = [RingRow(tensor=g.tensor(t).name, rows=rows_of(lw, t), slots=n,
                     bytes=n * lay.rows[t].pitch, whole_bytes=g.tensor(t).nbytes)
             for t, n in sorted(sched.slots.items())]
    return Report(
        tool_version=__version__, model=g.source, model_sha256=g.sha256,
        target=conv.target.name, calibration=calibration, layers=rows,
        macs=sum(s.macs for s in lw.steps), weight_bytes=b.weight_bytes,
        code_bytes_estimate=b.code_bytes, flash_bytes=b.flash_used, flash_limit=b.flash_limit,
        arena_bytes=lay.arena_bytes, arena_lower_bound=lay.lower_bound,
        arena_naive_bytes=lay.naive_bytes, arena_strategy=lay.plan.strategy,
        arena_place=b.ram_place, ram_limit=b.psram_limit if b.arena_in_psram else b.sram_limit,
        input_shape=list(g.tensor(lw.input).shape), output_shape=list(g.tensor(lw.output).shape),
        plan_ascii=planner.ascii_dump(lay.plan), stream=sched.mode, packing=conv.packing,
        plain_arena_bytes=lw.plain_arena, packing_room=conv.packing_room,
        portable_packed=[s.name for s in lw.steps if getattr(s, "packed", None) is not None
                         and conv.arch != arch.PORTABLE
                         and arch.conv_kernel(s.kernel).arch == arch.PORTABLE],
        input=_input_text(lw, lay), scratch=conv.scratch,
        segments=segments,
        rings=rings, live_curve=list(lay.live_bytes), ram=_ram_row(b),
    )


def _input_text(lw, lay) -> str:
    slots = lay.rows[lw.input].slots
    rows = rows_of(lw, lw.input)
    if not any(isinstance(s, InputStep) for s in lw.steps) or slots >= rows:
        return "whole, in place before the run"
    cam = next(s.camera for s in lw.steps if isinstance(s, InputStep))
    source = (f"made on the device from {cam.format_name} camera frames"
              if cam is not None else "arriving row by row")
    return f"a ring of {slots} of its {rows} rows, {source}"


def _ram_row(b) -> dict | None:
    if b.ram is None:
        return None
    r = b.ram
    return {"arena": r.arena, "stack": r.stack, "buffers": r.buffers, "static": r.static,
            "arena_in_psram": r.arena_in_psram, "internal": r.internal, "limit": b.sram_limit}


def plot(report: Report, layout_plan: planner.Plan, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(10, 7), sharex=True,
                                   gridspec_kw={"height_ratios": [1, 2]})
    ticks = list(range(len(report.live_curve)))
    ax1.fill_between(ticks, [v / 1024 for v in report.live_curve], step="mid",
                     color="#4477aa", label="live bytes")
    ax1.axhline(report.arena_bytes / 1024, color="#cc3311", linestyle="--",
                label=f"arena {report.arena_bytes / 1024:,.1f} KiB")
    ax1.set_ylabel("live KiB")
    ax1.set_title(f"{Path(report.model).name} on {report.target}: arena use per kernel call "
                  f"(streaming {report.stream})")
    streamed = False
    for seg in report.segments:
        if len(seg.layers) > 1:
            ax1.axvspan(seg.first_tick - 0.5, seg.last_tick + 0.5, color="#ccddaa", alpha=0.4,
                        zorder=0, label=None if streamed else "layers streamed row by row")
            streamed = True
    ax1.legend(loc="upper right")  # again: the shaded segments joined the handles
    for b in layout_plan.buffers:
        off = layout_plan.offsets[b.name]
        color = "#66ccee" if b.name.startswith("t") else "#ee6677"
        if not b.dynamic:
            ax2.add_patch(Rectangle((b.first - 0.4, off / 1024), b.last - b.first + 0.8,
                                    b.size / 1024, facecolor=color, edgecolor="black",
                                    linewidth=0.4))
            continue
        # A tensor written or read row by row: draw its live part call by call.
        xs = list(range(b.first, b.last + 1))
        ax2.fill_between(xs, [(off + b.live(x)[0]) / 1024 for x in xs],
                         [(off + b.live(x)[1]) / 1024 for x in xs], step="mid",
                         facecolor=color, edgecolor="black", linewidth=0.4)
    ax2.set_xlim(-1, max(ticks, default=0) + 1)
    ax2.set_ylim(0, max(report.arena_bytes / 1024, 1))
    ax2.set_xlabel("kernel call (tick)")
    ax2.set_ylabel("arena offset (KiB)")
    # The bottom panel is the arena's map: each block a buffer at its offset, from the call
    # that writes it first to the one that reads it last; its colour says what it holds.
    from matplotlib.patches import Patch

    ax2.set_title("arena layout: each block is one buffer, at its offset, while it is live",
                  fontsize="medium")
    ax2.legend(handles=[Patch(facecolor="#66ccee", edgecolor="black", linewidth=0.4,
                              label="tensor (layer input or output)"),
                        Patch(facecolor="#ee6677", edgecolor="black", linewidth=0.4,
                              label="scratch or state (kernel working memory)")],
               loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=2, fontsize="small",
               frameon=False)  # below the axis: the blocks fill the panel
    fig.tight_layout()
    fig.savefig(path, dpi=100, metadata={"Software": None})
    plt.close(fig)


def write_reports(report: Report, conv: Conversion, out: Path | Staging) -> None:
    """report.json, report.md and report.png into a staging directory (or, given a path, each
    file atomically into that directory)."""
    files = {"report.json": json.dumps(report.to_json(), indent=2) + "\n",
             "report.md": report.markdown()}
    if isinstance(out, Staging):
        for name, text in files.items():
            out.write_text(name, text)
        plot(report, conv.layout.plan, out.file("report.png"))
        checkpoint("staged report.png")
        return
    out = Path(out)
    for name, text in files.items():
        atomic.write_text(out / name, text)
    with atomic.replacing(out / "report.png") as tmp:
        plot(report, conv.layout.plan, tmp)
