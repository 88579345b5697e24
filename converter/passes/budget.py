"""Does the model fit the board? Decided at conversion time, from the plan and the weights.

Flash holds the weights, folded biases, requantization constants, the schedule and the runtime
code. RAM holds the arena: in internal SRAM when it fits, else in PSRAM when the board has it.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import BudgetError
from ..ir.steps import Lowered
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
                 input_size_option: bool = True, packing: str = "ram") -> Budget:
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
    in_psram = arena > sram and psram > 0
    if arena > sram and (psram == 0 or arena > psram):
        smaller = ("A smaller --input-size shrinks every activation" if input_size_option else
                   "A smaller input shrinks every activation: build or export the model for a "
                   "smaller input size (--input-size applies to builtin models only)")
        live = layout.live_bytes
        peak = layout.step_at(max(range(len(live)), key=lambda i: live[i])) if live else 0
        steps = lw.steps
        step_live = [layout.step_live_bytes(i) for i in range(len(steps))]
        worst = sorted(range(len(steps)), key=lambda i: -step_live[i])[:3]
        layers = ", ".join(f"{steps[i].name} ({_kib(step_live[i])} live)" for i in worst)
        where = "SRAM" if psram == 0 else "SRAM and PSRAM"
        unpacked = ("; --packing ram keeps the arena of plain int8 filters"
                    if packing == "flash" and lw.any_packed else "")
        limit = max(sram, psram)
        problems.append(
            f"RAM: the arena needs {_kib(arena)}, {t.name} has {_kib(sram)} of {where}"
            f"{'' if psram == 0 else f' (PSRAM {_kib(psram)})'}: over by "
            f"{_kib(arena - limit)}. Peak at step {peak} ({steps[peak].name}); largest: "
            f"{layers}. {smaller}{unpacked}; or pick a board with more RAM or PSRAM")
    if problems:
        raise BudgetError(f"the model does not fit {t.name}:\n  - " + "\n  - ".join(problems))
    return Budget(flash_used=flash_used, flash_limit=flash_limit, weight_bytes=wb,
                  code_bytes=code, arena_bytes=arena, sram_limit=sram, psram_limit=psram,
                  arena_in_psram=in_psram)
