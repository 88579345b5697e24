"""Does the model fit the board? Decided at conversion time, from the plan and the weights.

Flash holds the weights, folded biases, requantization constants, the schedule and the runtime
code. RAM holds the whole firmware's data (app_ram_bytes): the arena, the stack, the protocol's
buffers and the rest of .data + .bss. The arena goes in internal SRAM when all of it fits, else
in PSRAM when the board has it (and the rest must still fit the SRAM).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import BudgetError
from ..ir.steps import InputStep, Lowered
from ..targets import Target
from .memory import Layout
from .pack import encodings

# An estimate of the flash the code takes, for the budget check before anything is built:
# runtime kernels, executor, protocol application and port, plus the schedule (layer structs,
# step entries, names) per step. sqz-bench measured 18,230 B for SqueezeNet 1.1 (30 steps) in a
# Cortex-M4 -Os build; these constants give 19,136 B there, erring on the safe side.
RUNTIME_CODE_BYTES = 14 * 1024
SCHEDULE_BYTES_PER_STEP = 160
SCHEDULE_BYTES_PER_RUN = 2  # an sqz_run_entry of a streamed segment's order

# The protocol application's buffers in .bss (firmware/src/app/app.c, frame.h), mirrored here
# byte for byte for a 32-bit target; tests/test_budget_ram.py reads each symbol's size from a
# linked Cortex-M4 ELF and holds these to it.
PROTO_FRAME_OVERHEAD = 32  # SQZ_PROTO_FRAME_OVERHEAD (protocol.h): rx_buf = payload + this
FRAME_TX_BYTES = 272       # sizeof(sqz_frame_tx): write, ctx, crc, n, block[255], padding
FRAME_RX_BYTES = 20        # sizeof(sqz_frame_rx): buf, cap, len, raw and four flags
COUNT_BYTES_PER_STEP = 8   # layer_counts: one uint64_t per step (at least one)
# sizeof(sqz_exec) on a 32-bit core (firmware/include/sqz/runtime.h): 8 pointers and counters,
# segment/entry/call/finished/failed_node, and one int32 per node of a segment (64).
EXEC_BYTES = 8 * 4 + 8 + 4 * 64


@dataclass(frozen=True)
class RamUse:
    """The whole firmware's RAM, by part (app_ram_bytes). `arena` is 0 in `internal` when the
    arena is in PSRAM."""

    arena: int
    stack: int
    # the receive frame, the encoder's block, the decoder, the layer counts, the executor's
    # place, and a camera model's frame ring
    buffers: int
    static: int   # the rest of .data + .bss: the profile's static_bytes
    arena_in_psram: bool = False

    @property
    def internal(self) -> int:
        """What the internal SRAM holds."""
        return (0 if self.arena_in_psram else self.arena) + self.stack + self.buffers + \
            self.static

    @property
    def total(self) -> int:
        return self.arena + self.stack + self.buffers + self.static

    def text(self) -> str:
        where = " in PSRAM" if self.arena_in_psram else ""
        return (f"arena {self.arena:,} B{where}, stack {self.stack:,} B, buffers "
                f"{self.buffers:,} B, static {self.static:,} B")


def protocol_buffer_bytes(max_frame_payload: int, n_steps: int, frame_ring: int = 0) -> int:
    """The application's buffers (app.c): rx_buf[SQZ_MAX_FRAME_PAYLOAD +
    SQZ_PROTO_FRAME_OVERHEAD], the frame encoder and decoder, layer_counts[max(steps, 1)], the
    executor's place (ex) and a camera model's frame_ring (SQZ_MODEL_FRAME_RING_ROWS rows)."""
    return (max_frame_payload + PROTO_FRAME_OVERHEAD + FRAME_TX_BYTES + FRAME_RX_BYTES
            + COUNT_BYTES_PER_STEP * max(n_steps, 1) + EXEC_BYTES + frame_ring)


def frame_ring_bytes(lw: Lowered) -> int:
    """A camera model's frame ring in the serial application: ring_rows frame rows."""
    cam = next((s.camera for s in lw.steps if isinstance(s, InputStep)), None)
    return 0 if cam is None else cam.ring_rows * cam.row_bytes


def app_ram_bytes(t: Target, lw: Lowered, layout: Layout, *,
                  arena_in_psram: bool = False) -> RamUse:
    """Everything the firmware of this model keeps in RAM on board `t`: the arena, the stack the
    port reserves (t.stack_bytes), the protocol's buffers and the rest of its static data
    (t.static_bytes)."""
    return RamUse(arena=layout.arena_bytes, stack=t.stack_bytes,
                  buffers=protocol_buffer_bytes(t.max_frame_payload, len(lw.steps),
                                                frame_ring_bytes(lw)),
                  static=t.static_bytes, arena_in_psram=arena_in_psram)


def arena_room(t: Target, lw: Lowered, ram_budget: int | None = None) -> int:
    """What board `t`'s internal SRAM (or `ram_budget`) leaves the arena of `lw` once the stack,
    the protocol's buffers and the static data have theirs: --packing auto's bound."""
    sram = ram_budget if ram_budget is not None else t.sram_bytes
    return sram - t.stack_bytes - t.static_bytes - protocol_buffer_bytes(
        t.max_frame_payload, len(lw.steps), frame_ring_bytes(lw))


@dataclass(frozen=True)
class Budget:
    flash_used: int
    flash_limit: int
    weight_bytes: int
    code_bytes: int
    arena_bytes: int
    sram_limit: int
    psram_limit: int
    arena_in_psram: bool
    ram: RamUse | None = None  # the whole firmware's RAM (app_ram_bytes)

    @property
    def ram_place(self) -> str:
        return "PSRAM" if self.arena_in_psram else "internal SRAM"


def _kib(n: int) -> str:
    return f"{n / 1024:,.1f} KiB ({n:,} B)"


def weight_bytes(lw: Lowered) -> int:
    return sum(s.weight_bytes for s in lw.steps)


def _packing_advice(lw: Lowered, packing: str) -> str:
    """What packing (passes.PACKING_MODES) could still do for the flash."""
    kept = [s.kept_plain for s in lw.steps if getattr(s, "kept_plain", None)]
    if kept:
        saving = sum(k.flash_saving for k in kept)
        return (f"; --packing flash packs {len(kept)} more filter(s), {_kib(saving)} less, "
                "for a larger arena")
    if packing == "off":
        packable = len(encodings(lw))
        if packable:
            return (f"; without --packing off, {packable} filter(s) with few distinct values "
                    "would be stored packed")
    if lw.any_packed:
        return ", as do fewer --bits or more --sparsity in sqz-compress"
    return ", as does sqz-compress (pruning and weight sharing, stored packed)"


def check_budget(lw: Lowered, layout: Layout, t: Target, *, ram_budget: int | None = None,
                 psram_budget: int | None = None, flash_budget: int | None = None,
                 input_size_option: bool = True, packing: str = "auto") -> Budget:
    """ram_budget overrides the board's internal SRAM for data, psram_budget its PSRAM (0: do
    not use PSRAM) and flash_budget its flash. input_size_option: the model came from a builtin
    name, so --input-size can be advised (a .keras or .tflite model has its own shape).
    packing: the --packing the conversion used, for the advice."""
    wb = weight_bytes(lw)
    runs = sum(len(seg.order) for seg in layout.schedule.segments)
    code = (RUNTIME_CODE_BYTES + SCHEDULE_BYTES_PER_STEP * len(lw.steps)
            + SCHEDULE_BYTES_PER_RUN * runs)
    flash_used = wb + code
    flash_limit = flash_budget if flash_budget is not None else t.flash_bytes
    sram = ram_budget if ram_budget is not None else t.sram_bytes
    psram = psram_budget if psram_budget is not None else t.psram_bytes
    arena = layout.arena_bytes
    problems = []
    if flash_used > flash_limit:
        heavy = sorted(lw.steps, key=lambda s: -s.weight_bytes)[:3]
        layers = ", ".join(f"{s.name} {_kib(s.weight_bytes)}" for s in heavy)
        problems.append(
            f"flash: needs {_kib(flash_used)} (weights {_kib(wb)} + code {_kib(code)}), "
            f"{t.name} has {_kib(flash_limit)}: over by {_kib(flash_used - flash_limit)}. "
            f"Largest layers: {layers}. Fewer classes or a smaller base_e/incr_e shrink the "
            f"weights{_packing_advice(lw, packing)}; or pick a board with more flash")
    ram = app_ram_bytes(t, lw, layout)
    others = ram.internal - arena  # stack, buffers and static data: always internal SRAM
    in_psram = ram.internal > sram and psram > 0 and arena <= psram and others <= sram
    if in_psram:
        ram = app_ram_bytes(t, lw, layout, arena_in_psram=True)
    elif ram.internal > sram:
        smaller = ("A smaller --input-size shrinks every activation" if input_size_option else
                   "A smaller input shrinks every activation: build or export the model for a "
                   "smaller input size (--input-size applies to builtin models only)")
        live = layout.live_bytes
        peak = layout.step_at(max(range(len(live)), key=lambda i: live[i])) if live else 0
        steps = lw.steps
        step_live = [layout.step_live_bytes(i) for i in range(len(steps))]
        worst = sorted(range(len(steps)), key=lambda i: -step_live[i])[:3]
        layers = ", ".join(f"{steps[i].name} ({_kib(step_live[i])} live)" for i in worst)
        unpacked = ("; --packing ram keeps the arena of plain int8 filters"
                    if packing == "flash" and lw.any_packed else "")
        room = sram - others
        if psram and arena > psram:
            where = f"; the arena is also over the {_kib(psram)} of PSRAM"
        else:
            where = ""
        frame = (f"; a smaller max_frame_payload in {t.name}'s profile shrinks the buffers"
                 if t.max_frame_payload > 1024 and others > sram // 8 else "")
        problems.append(
            f"RAM: the arena needs {_kib(arena)}, the whole firmware needs "
            f"{_kib(ram.internal)} of RAM ({ram.text()}); {t.name} has {_kib(sram)} of SRAM: "
            f"over by {_kib(ram.internal - sram)}{where}. The arena may take at most "
            f"{_kib(max(room, 0))} there. Peak at step {peak} ({steps[peak].name}); largest: "
            f"{layers}. {smaller}{unpacked}{frame}; or pick a board with more RAM"
            f"{' or PSRAM' if psram else ''}")
    if problems:
        raise BudgetError(f"the model does not fit {t.name}:\n  - " + "\n  - ".join(problems))
    return Budget(flash_used=flash_used, flash_limit=flash_limit, weight_bytes=wb,
                  code_bytes=code, arena_bytes=arena, sram_limit=sram, psram_limit=psram,
                  arena_in_psram=in_psram, ram=ram)
