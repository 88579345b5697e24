"""The cycle estimator (converter/cycles.py): known instruction mixes in synthetic QEMU traces
give the cycles the Cortex-M4 TRM's table says, by hand; the region, the per-layer segments,
abandoned and rewound blocks; the timing tables; and on the emulated Cortex-M4, a traced run
whose instruction count is the firmware's exact count."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from converter.device import cycles
from converter.errors import BuildError, InputFileError

TABLES = Path(__file__).resolve().parents[1] / "targets" / "cycles"
M4 = cycles.load_timing("cortex-m4", TABLES)


class Trace:
    """Writes a -d in_asm,exec,nochain log: blocks are defined once (IN:) at their first
    execution, then only their Trace line is repeated, as QEMU does."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.blocks: dict[str, tuple[int, str, list[str]]] = {}
        self.seen: set[str] = set()

    def block(self, name: str, symbol: str, pc: int, insns: list[str]) -> None:
        """insns: "MNEMONIC OPERANDS" (4-byte encodings when the mnemonic ends in .w)."""
        self.blocks[name] = (pc, symbol, insns)

    def run(self, *names: str) -> Trace:
        for name in names:
            pc, symbol, insns = self.blocks[name]
            if name not in self.seen:
                self.seen.add(name)
                self.lines += ["----------------", f"IN: {symbol}"]
                addr = pc
                for text in insns:
                    mn, _, ops = text.partition(" ")
                    wide = mn.endswith(".w") or mn in ("bl", "ldrd", "strd", "smlad", "sxtb16")
                    code = "f000 f000" if wide else "0000"
                    self.lines.append(f"0x{addr:08x}:  {code}  {mn:<8} {ops.strip()}")
                    addr += 4 if wide else 2
                self.lines.append("")
            host = 0x7F0000000000 + pc * 0x40
            self.lines.append(f"Trace 0: 0x{host:x} [00800408/{pc:08x}/00000110/ff020200] "
                              f"{symbol}")
        return self

    def raw(self, line: str) -> Trace:
        self.lines.append(line)
        return self

    def estimate(self, timing: cycles.Timing = M4) -> cycles.Estimate:
        return cycles.estimate(cycles.read_trace(self.lines), timing)


def _region(body: list[str], loop: int = 1) -> Trace:
    """caller -> sqz_app_compute (entry block, `body` run `loop` times, a return) -> caller."""
    t = Trace()
    t.block("call", "sqz_app_poll", 0x100, ["bl #0x200"])
    t.block("entry", "sqz_app_compute", 0x200, ["push {r4, lr}", "b #0x210"])
    t.block("body", "sqz_app_compute", 0x210, body)
    t.block("ret", "sqz_app_compute", 0x300, ["pop {r4, pc}"])
    t.block("after", "sqz_app_poll", 0x104, ["movs r0, #0"])
    return t.run("call", "entry", *["body"] * loop, "ret", "after")


# Cycles of the fixed frame of _region: PUSH {r4, lr} 1+2, B taken 1+1, the body's own closing
# branch as given, POP {r4, pc} 1+2 and the refill of a load to the PC (3).
FRAME_BASE = 3 + 2 + 3 + 3


def test_a_dsp_loop_costs_one_cycle_per_instruction_and_two_per_taken_branch() -> None:
    # 4 SMLADs, SUBS, BNE back: TRM 3.3.1, 1 cycle each, BNE 1+P (P=1) when taken.
    body = ["smlad r8, r4, r12, r8", "smlad r9, r5, r12, r9", "smlad r10, r6, lr, r10",
            "smlad r11, r7, lr, r11", "subs r2, r2, #1", "bne #0x210"]
    e = _region(body, loop=10).estimate()
    # The body runs 10 times and its BNE is taken every time: 9 times back to 0x210, then to
    # the return at 0x300 (in this synthetic layout not its fall-through either).
    assert e.instructions == 1 + 1 + 10 * 6 + 1
    assert e.cycles["base"] == FRAME_BASE + 10 * 6 + 10 * 1
    assert e.cycles["optimistic"] == e.cycles["base"]
    assert e.cycles["pessimistic"] == e.cycles["base"] + 10 + 1  # refill 2, +1 per taken B
    top = {m: (n, c) for m, n, c in e.top}
    assert top["smlad"] == (40, 40.0)


def test_loads_pipeline_only_back_to_back_and_multi_word_loads_cost_one_plus_n() -> None:
    body = ["ldr r2, [r0]", "ldr r3, [r1]",            # 2 + 1 (pipelined)
            "ldr r4, [r4]",                             # after a load whose result it
                                                        # does not address with: 1
            "ldr r5, [r4, #4]",                         # addressed by the previous load's
                                                        # result: 2
            "smlad r8, r2, r3, r8",                     # 1
            "ldm r0!, {r4, r5, r6, r7}",                # 1 + 4
            "ldrd r12, lr, [r1], #8",                   # 3
            "b #0x300"]                                 # 1 + refill 1
    e = _region(body).estimate()
    own = 2 + 1 + 1 + 2 + 1 + 5 + 3 + 2
    assert e.cycles["base"] == FRAME_BASE + own
    # optimistic: every single load 1; pessimistic: every single load 2, direct refills 2.
    assert e.cycles["optimistic"] == e.cycles["base"] - 2
    assert e.cycles["pessimistic"] == e.cycles["base"] + 2 + 2  # 2 loads, 2 taken Bs


def test_an_address_written_by_the_previous_alu_instruction_stalls_in_base_and_pessimistic():
    body = ["add r0, r0, #4", "ldr r1, [r0]", "str r1, [r2, #4]", "b #0x300"]
    e = _region(body).estimate()
    own = 1 + (2 + 1) + 1 + 2
    assert e.cycles["base"] == FRAME_BASE + own
    assert e.cycles["optimistic"] == e.cycles["base"] - 2  # no stall, a pipelined load


def test_it_blocks_and_the_cores_tables_differ_where_their_manuals_do() -> None:
    body = ["cmp r0, #0", "it eq", "moveq r1, #1", "ldrd r2, r3, [r4]",
            "ldm r5!, {r0, r1, r2, r3}", "b #0x300"]
    m4 = _region(body).estimate()
    m7 = _region(body).estimate(cycles.load_timing("cortex-m7", TABLES))
    assert m4.cycles["base"] == FRAME_BASE + (1 + 1 + 1 + 3 + 5 + 2)
    assert m4.cycles["optimistic"] == m4.cycles["base"] - 1  # IT folded
    # The Cortex-M7's 64-bit path: LDRD 1, LDM 1 + N/2; a predicted branch, no refill.
    assert m7.cycles["base"] < m4.cycles["base"]
    assert m7.core == "Cortex-M7" and "DDI 0489" in m7.reference


def test_hook_calls_split_the_run_into_layers_and_are_not_charged() -> None:
    t = Trace()
    t.block("call", "sqz_app_poll", 0x100, ["bl #0x200"])
    t.block("entry", "sqz_app_compute", 0x200, ["blx r3"])  # a kernel
    t.block("k0", "sqz_kernel_a", 0x400, ["smlad r8, r4, r12, r8", "bx lr"])
    t.block("k1", "sqz_kernel_b", 0x500, ["movs r0, #0", "movs r1, #0", "bx lr"])
    t.block("back", "sqz_app_compute", 0x204, ["blx r6"])  # the hook
    t.block("hook", "step_hook", 0x600, ["push {r4, lr}", "bl #0x700"])
    t.block("counter", "sqz_port_counter", 0x700, [*["nop"] * 50, "bx lr"])
    t.block("hook2", "step_hook", 0x608, ["pop {r4, pc}"])
    t.block("next", "sqz_app_compute", 0x206, ["blx r3"])
    t.block("ret", "sqz_app_compute", 0x300, ["pop {r4, pc}"])
    t.block("after", "sqz_app_poll", 0x104, ["movs r0, #0"])
    t.run("call", "entry", "k0", "back", "hook", "counter", "hook2",
          "next", "k1", "back", "hook", "counter", "hook2",
          "next", "k0", "back", "hook", "counter", "hook2", "ret", "after")
    e = t.estimate()
    assert len(e.segment_instructions) == 4  # three hook calls, then the return
    # segment: the kernel call's BLX, the kernel, the BLX to the hook; none of the hook's 54.
    assert e.segment_instructions[:3] == [1 + 2 + 1, 1 + 3 + 1, 1 + 2 + 1]
    assert e.segment_instructions[3] == 1
    assert e.instructions == sum(e.segment_instructions)
    # calls 0 and 2 ran step 1 (kernel a), call 1 step 0 (kernel b); the return goes to the last
    instr, cyc = e.per_step([1, 0, 1], 2)
    assert instr == [5, 4 + 4 + 1]
    assert sum(c["base"] for c in cyc) == e.cycles["base"]
    with pytest.raises(BuildError, match="hook calls"):
        e.per_step([0, 1], 2)


def test_every_burst_of_a_ring_input_run_is_counted_and_the_waits_are_not() -> None:
    """A ring input's run goes on as rows arrive: the region is entered once per row, from
    different callers, and the hook is called by the executor inside it. Everything between
    the bursts (the serial link) is left out; the hook is left out until it returns to the
    executor."""
    t = Trace()
    t.block("rx", "take_bytes", 0x100, ["bl #0x200"])
    t.block("rx2", "take_bytes", 0x104, [*["movs r0, #0"] * 30, "bl #0x200"])
    t.block("entry", "sqz_app_compute", 0x200, ["push {r4, lr}", "bl #0x800"])
    t.block("exec", "sqz_exec_continue", 0x800, ["blx r3"])
    t.block("kernel", "sqz_kernel_a", 0x400, ["smlad r8, r4, r12, r8", "bx lr"])
    t.block("exec2", "sqz_exec_continue", 0x804, ["blx r6"])  # the hook
    t.block("hook", "step_hook", 0x600, [*["nop"] * 40, "bx lr"])
    t.block("exec3", "sqz_exec_continue", 0x808, ["movs r0, #6", "bx lr"])  # waits for a row
    t.block("ret", "sqz_app_compute", 0x204, ["pop {r4, pc}"])
    t.block("after", "take_bytes", 0x108, ["movs r0, #0"])
    burst = ("entry", "exec", "kernel", "exec2", "hook", "exec3", "ret")
    t.run("rx", *burst, "after", "rx2", *burst, "after")
    e = t.estimate()
    # Per burst: PUSH+BL 2, BLX 1, the kernel 2, the BLX to the hook 1 | MOVS+BX 2, POP 1.
    assert len(e.segment_instructions) == 3  # two hook calls, then the end
    assert e.segment_instructions == [2 + 1 + 2 + 1, 2 + 1 + 2 + 2 + 1 + 1, 2 + 1]
    assert e.instructions == sum(e.segment_instructions)  # none of take_bytes' 31, the hook's


def test_abandoned_and_rewound_blocks_are_taken_back() -> None:
    body = ["movs r0, #1", "movs r1, #2", "ldr r2, [r3]", "movs r4, #3", "b #0x300"]
    plain = _region(body).estimate()
    t = Trace()
    t.block("call", "sqz_app_poll", 0x100, ["bl #0x200"])
    t.block("entry", "sqz_app_compute", 0x200, ["push {r4, lr}", "b #0x210"])
    t.block("body", "sqz_app_compute", 0x210, body)
    t.block("ret", "sqz_app_compute", 0x300, ["pop {r4, pc}"])
    t.block("after", "sqz_app_poll", 0x104, ["movs r0, #0"])
    t.run("call", "entry", "body")
    # Logged, then stopped before running (icount): it runs again right after.
    t.raw("Stopped execution of TB chain before 0x7f0000008400 [00000210] sqz_app_compute")
    t.run("body")
    # Rewound at the load (an I/O access): only its first two instructions ran; QEMU
    # translates the rest as a new block.
    t.raw("cpu_io_recompile: rewound execution of TB to 00000214")
    t.block("rest", "sqz_app_compute", 0x214, body[2:])
    t.run("rest", "ret", "after")
    e = t.estimate()
    assert e.instructions == plain.instructions
    assert e.cycles == plain.cycles


def test_a_trace_that_never_leaves_the_region_is_an_error() -> None:
    t = Trace()
    t.block("call", "sqz_app_poll", 0x100, ["bl #0x200"])
    t.block("entry", "sqz_app_compute", 0x200, ["b #0x200"])
    t.run("call", "entry", "entry")
    with pytest.raises(BuildError, match="never entered and left"):
        t.estimate()


def test_every_table_gives_every_figure_under_each_assumption(tmp_path) -> None:
    for key in cycles.CORES:
        t = cycles.load_timing(key, TABLES)
        assert set(t.params) == set(cycles.ASSUMPTIONS)
        for a in cycles.ASSUMPTIONS:
            assert set(t.params[a]) == set(cycles.PARAMS)
        # the assumptions are ordered: optimistic <= base <= pessimistic, figure by figure
        for p in cycles.PARAMS:
            assert t.params["optimistic"][p] <= t.params["base"][p] <= \
                t.params["pessimistic"][p], (key, p)
    bad = tmp_path / "cortex-m4.toml"
    bad.write_text((TABLES / "cortex-m4.toml").read_text().replace("ldrd = 3\n", "", 1))
    with pytest.raises(InputFileError, match=r"\[base\]: missing \['ldrd'\]"):
        cycles.load_timing("cortex-m4", tmp_path)
    with pytest.raises(InputFileError, match="no timing table for core 'cortex-m3'"):
        cycles.load_timing("cortex-m3", TABLES)


def test_decode_reads_conditions_widths_and_register_lists() -> None:
    d = cycles.decode
    assert d(0, 4, "ldr.w", "r3, [r2, #0xd88]").cls == "load"
    assert d(0, 2, "ldrne", "r3, [r2, r1]").addr_regs == {"r2", "r1"}
    assert d(0, 4, "str.w", "r3, [r2, r1, lsl #2]").cls == "store_reg"
    assert d(0, 4, "pop.w", "{r4, r5, r6, r7, r8, sb, sl, fp, pc}").nregs == 9
    assert d(0, 4, "pop.w", "{r4, r5, r6, r7, r8, sb, sl, fp, pc}").writes_pc
    assert d(0, 2, "itte", "ne").cls == "it"
    assert d(0, 4, "smlad", "r8, r4, r12, r8").cls == "alu"
    assert d(0, 4, "smull", "r0, r1, r2, r3").dests == {"r0", "r1"}
    assert d(0, 2, "adds", "r0, #1").mnemonic == "add"
    assert d(0, 4, "bne.w", "#0x246").cls == "branch"
    assert d(0, 4, "vpush", "{d8, d9}").nregs == 4


# ---- on the emulated Cortex-M4 ---------------------------------------------------------------

needs_qemu = pytest.mark.skipif(
    any(shutil.which(t) is None for t in ("qemu-system-arm", "arm-none-eabi-gcc")),
    reason="qemu-system-arm or arm-none-eabi-gcc not installed")


@needs_qemu
def test_a_traced_run_counts_what_the_firmware_counts(tmp_path) -> None:
    """The tiny fixture on mps2-an386: the traced instructions of sqz_app_compute are the firmware's
    exact count (the counter's own fixed part aside), per layer too, and the estimate is
    ordered and at least one cycle per instruction on the Cortex-M4."""
    from test_qemu import _mps2_model_dir

    from converter.bench import trace_profile
    from converter.device import DeviceClient
    from converter.qemu import start_qemu_firmware

    model = _mps2_model_dir(tmp_path / "tiny")
    x = np.random.default_rng(0).integers(-128, 128, size=(1, 32, 32, 3), dtype=np.int8)
    with start_qemu_firmware(model) as fw:
        dev = DeviceClient(fw.port)
        dev.hello()
        exact = dev.infer(x.tobytes()).run.total_count
    whole = cycles.estimate(trace_profile(model, x, per_layer=False), M4)
    assert abs(whole.instructions - exact) < 1e-4 * exact
    prof = trace_profile(model, x)
    e = cycles.estimate(prof, M4)
    assert abs(e.instructions - exact) < 1e-4 * exact
    assert e.cycles["base"] == pytest.approx(whole.cycles["base"], rel=1e-3)
    # the fixture's schedule: conv1 in 32 row calls, then pool and requantize, 16 rows each
    ticks = [0] * 32 + [1] * 16 + [2] * 16
    instr, cyc = e.per_step(ticks, 3)
    assert sum(instr) == e.instructions and min(instr) > 0
    assert e.cycles["optimistic"] <= e.cycles["base"] <= e.cycles["pessimistic"]
    assert e.cycles["optimistic"] >= e.instructions
    assert sum(c["base"] for c in cyc) == pytest.approx(e.cycles["base"])
