"""Estimated Cortex-M cycles of one inference, from an exact QEMU trace and a timing table.

QEMU counts executed instructions, not cycles: it has no timing model. An instruction count
flatters code that moves several words per instruction (LDM, LDRD: one instruction, 1+N cycles
on a Cortex-M4) and is blind to branch refills. This module turns the *exact* per-instruction
execution counts of a traced run into an *estimate* of cycles, under a documented timing table
per core (targets/cycles/<core>.toml, each figure with its Technical Reference Manual source).

The trace: qemu-system-arm with ``-d in_asm,exec,nochain``. ``in_asm`` logs each translation
block (TB) once, when QEMU translates it (``IN: symbol`` then one line per instruction);
``exec`` with ``nochain`` logs every execution of a TB (``Trace 0: HOST [../PC/..] symbol``).
The first ``Trace`` line after an ``IN`` block is that TB's first execution, which names its
key. Inside the region (from the entry of ``region`` until control comes back to its caller)
every transition (previous TB, TB) is counted. From these:

- each instruction's execution count is exact (QEMU's icount exits can log a TB execution that
  is then abandoned, a few hundredths of a percent: ``Estimate.instructions`` says how many were
  traced, to set beside the firmware's own exact count);
- whether a TB's closing branch was taken is exact: the next TB does not start at its
  fall-through address;
- the instruction before each instruction is known, which the load pipelining and
  address-interlock rules need.

Per layer: the firmware's per-layer hook (``step_hook``) is called after every kernel call; each
entry into it closes one segment of the trace, which belongs to the step the schedule says that
call ran (``ticks``). The hook's own instructions (and the counter it reads, and the SysTick
wrap handler, which the firmware's count also leaves out) are not charged.

A static model: each instruction is costed from its class and the one instruction before it.
No memory system (zero wait states, no flash latency, no bus contention), no interrupts beyond
what the trace shows. The three assumptions (optimistic, base, pessimistic) bracket what the
manuals leave to context. It is an estimate and every output says so.
"""

from __future__ import annotations

import re
import tomllib
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import BuildError, InputFileError

ASSUMPTIONS = ("optimistic", "base", "pessimistic")
CORES = ("cortex-m4", "cortex-m7", "cortex-m55")
#: Interrupt handlers the firmware's own count leaves out, so the estimate does too: the SysTick
#: wrap handler of firmware/ports/mps2_an386/. (The per-layer hook and everything it calls are
#: left out by HOOK_SYMBOL.)
EXCLUDED_SYMBOLS = frozenset({"sqz_mps2_systick"})
HOOK_SYMBOL = "step_hook"
# The application's bursts of computing (firmware/src/app/app.c): one per RUN on an input stored
# whole, one per arriving row on a ring input; everything between them (the serial link) is
# not counted, as the firmware's own counter does not count it.
REGION_SYMBOL = "sqz_app_compute"
TRACE_OPTIONS = ("-d", "in_asm,exec,nochain")
PARAMS = ("alu", "div", "load", "load_pipelined", "store_imm", "store_reg", "ldrd", "strd",
          "ldm_base", "ldm_per_reg", "branch", "refill", "refill_pc", "tbb", "it", "agu_stall",
          "fp", "fp_mac", "fp_div", "vldr")

# ---- the timing tables --------------------------------------------------------------------


@dataclass(frozen=True)
class Timing:
    """One core's table: ``params[assumption][name]`` cycles (see targets/cycles/*.toml)."""

    key: str
    core: str
    reference: str
    params: dict[str, dict[str, float]]


def load_timing(key: str, directory: Path) -> Timing:
    """The table targets/cycles/<key>.toml, checked: every assumption gives every figure."""
    path = Path(directory) / f"{key}.toml"
    try:
        data = tomllib.loads(path.read_text())
    except OSError as exc:
        raise InputFileError(f"no timing table for core '{key}': {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise InputFileError(f"{path}: not valid TOML ({exc})") from None
    params: dict[str, dict[str, float]] = {}
    for a in ASSUMPTIONS:
        table = data.get(a)
        if not isinstance(table, dict):
            raise InputFileError(f"{path}: no [{a}] table")
        missing = [p for p in PARAMS if p not in table]
        unknown = sorted(set(table) - set(PARAMS))
        if missing or unknown:
            raise InputFileError(f"{path} [{a}]: missing {missing or '-'}, "
                                 f"unknown {unknown or '-'}")
        bad = [p for p in PARAMS if not isinstance(table[p], int | float) or table[p] < 0]
        if bad:
            raise InputFileError(f"{path} [{a}]: not a non-negative number: {', '.join(bad)}")
        params[a] = {p: float(table[p]) for p in PARAMS}
    for k in ("core", "reference"):
        if not isinstance(data.get(k), str):
            raise InputFileError(f"{path}: '{k}' must be a string")
    return Timing(key, data["core"], data["reference"], params)


# ---- instructions ---------------------------------------------------------------------------

_CONDS = ("eq", "ne", "cs", "hs", "cc", "lo", "mi", "pl", "vs", "vc", "hi", "ls", "ge", "lt",
          "gt", "le", "al")
_LOADS = {"ldr", "ldrb", "ldrh", "ldrsb", "ldrsh", "ldrex", "ldrexb", "ldrexh", "ldrt", "ldrbt",
          "ldrht", "ldrsbt", "ldrsht", "ldaex", "lda", "ldab", "ldah"}
_STORES = {"str", "strb", "strh", "strex", "strexb", "strexh", "strt", "strbt", "strht", "stl",
           "stlb", "stlh"}
_LDM = {"ldm", "ldmia", "ldmdb", "ldmfd", "ldmea", "pop"}
_STM = {"stm", "stmia", "stmdb", "stmfd", "stmea", "push"}
_BRANCH = {"b", "bl", "bx", "blx", "cbz", "cbnz"}
_FP_MAC = {"vmla", "vmls", "vnmla", "vnmls", "vfma", "vfms", "vfnma", "vfnms"}
_FP_DIV = {"vdiv", "vsqrt"}
_FP_LDM = {"vldm", "vldmia", "vldmdb", "vstm", "vstmia", "vstmdb", "vpush", "vpop"}
_NO_DEST = {"cmp", "cmn", "tst", "teq", "nop", "dsb", "dmb", "isb", "cpsid", "cpsie", "msr",
            "bkpt", "svc", "wfi", "wfe", "sev", "pld", "pli", "udf", "yield"}
_LONG_MUL = {"smull", "umull", "smlal", "umlal", "umaal", "smlald", "smlaldx", "smlsld",
             "smlsldx", "smlalbb", "smlalbt", "smlaltb", "smlaltt"}
_REG = re.compile(r"\b(r1[0-5]|r[0-9]|sb|sl|fp|ip|sp|lr|pc)\b")
_ALIAS = {"sb": "r9", "sl": "r10", "fp": "r11", "ip": "r12", "r13": "sp", "r14": "lr",
          "r15": "pc"}
_FP_REGS = re.compile(r"\b([sd])(\d+)\b")


def _regs(text: str) -> frozenset[str]:
    return frozenset(_ALIAS.get(r, r) for r in _REG.findall(text))


def _reg_list(ops: str) -> str:
    return ops[ops.find("{") + 1:ops.find("}")] if "{" in ops else ""


def _base_mnemonic(mn: str, known: set[str]) -> str:
    """The mnemonic without width qualifier (.w/.n, .f32 ...), condition code or S flag."""
    m = mn.lower().split(".")[0]
    if m in known:
        return m
    if len(m) > 2 and m[-2:] in _CONDS and m[:-2] in known:
        return m[:-2]
    if m.endswith("s") and m[:-1] in known:
        return m[:-1]
    if len(m) > 3 and m[-2:] in _CONDS and m[-3] == "s" and m[:-3] in known:
        return m[:-3]
    return m


#: ALU mnemonics that take an S (set flags) suffix, reported without it.
_FLAG_SETTING = {"add", "adc", "sub", "sbc", "rsb", "mov", "mvn", "and", "orr", "orn", "eor",
                 "bic", "lsl", "lsr", "asr", "ror", "rrx", "mul", "mla", "neg", "smull", "umull",
                 "smlal", "umlal"}
_KNOWN = (_FLAG_SETTING | _LOADS | _STORES | _LDM | _STM | _BRANCH | _FP_MAC | _FP_DIV | _FP_LDM
          | _LONG_MUL
          | {"ldrd", "strd", "tbb", "tbh", "sdiv", "udiv", "vldr", "vstr", "it"})


@dataclass(frozen=True)
class Insn:
    """One decoded instruction: its cost class and the registers the rules look at."""

    addr: int
    size: int
    mnemonic: str  # the base mnemonic (report key)
    cls: str  # alu div load store_imm store_reg ldrd strd ldm stm branch tbb it fp ...
    nregs: int = 0  # LDM/STM/VLDM: registers (words) moved
    dests: frozenset[str] = frozenset()
    addr_regs: frozenset[str] = frozenset()
    writes_pc: bool = False


def decode(addr: int, size: int, mnemonic: str, operands: str) -> Insn:
    """Classifies one disassembled Thumb instruction (QEMU's in_asm syntax)."""
    raw = mnemonic.lower()
    if re.fullmatch(r"it[te]{0,3}", raw.split(".")[0]):
        return Insn(addr, size, "it", "it")
    b = _base_mnemonic(raw, _KNOWN)
    ops = operands
    if b in _LOADS or b in _STORES or b in ("ldrd", "strd"):
        before, _, rest = ops.partition("[")
        inside = rest.split("]")[0]
        areg = _regs(inside)
        dests = _regs(before) if (b in _LOADS or b == "ldrd") else frozenset()
        writes_pc = "pc" in dests
        if b in ("ldrd", "strd"):
            cls = b
        elif b in _LOADS:
            cls = "ldr_pc" if writes_pc else "load"
        else:
            offset = inside.split(",", 1)[1] if "," in inside else ""
            cls = "store_reg" if _REG.search(offset) else "store_imm"
        return Insn(addr, size, b, cls, 0, dests, areg, writes_pc)
    if b in _LDM or b in _STM:
        lst = _regs(_reg_list(ops))
        areg = frozenset({"sp"}) if b in ("push", "pop") else _regs(ops.split("{")[0])
        if b in _LDM:
            return Insn(addr, size, b, "ldm", len(lst), lst, areg, "pc" in lst)
        return Insn(addr, size, b, "stm", len(lst), frozenset(), areg)
    if b in _BRANCH:
        return Insn(addr, size, b, "branch", dests=frozenset({"lr"}) if b.startswith("bl") else
                    frozenset())
    if b in ("tbb", "tbh"):
        return Insn(addr, size, b, "tbb", addr_regs=_regs(ops), writes_pc=True)
    if b in ("sdiv", "udiv"):
        return Insn(addr, size, b, "div", dests=_regs(ops.split(",")[0]))
    if b in ("vldr", "vstr"):
        return Insn(addr, size, b, "vldr", 1, addr_regs=_regs(ops.partition("[")[2]))
    if b in _FP_LDM:
        n = 0
        lst = _reg_list(ops)
        rng = re.search(r"\b([sd])(\d+)\s*-\s*[sd](\d+)", lst)
        if rng:
            n = (int(rng.group(3)) - int(rng.group(2)) + 1) * (2 if rng.group(1) == "d" else 1)
        else:
            n = sum(2 if k == "d" else 1 for k, _ in _FP_REGS.findall(lst))
        areg = frozenset({"sp"}) if b in ("vpush", "vpop") else _regs(ops.split("{")[0])
        return Insn(addr, size, b, "vldm", max(n, 1), addr_regs=areg)
    if b.startswith("v"):
        cls = "fp_mac" if b in _FP_MAC else "fp_div" if b in _FP_DIV else "fp"
        first = ops.split(",")[0].strip()
        dests = _regs(first) if _REG.fullmatch(first) else frozenset()
        return Insn(addr, size, b, cls, dests=dests)
    parts = [p.strip() for p in ops.split(",")]
    if b in _LONG_MUL:
        dests = _regs(",".join(parts[:2]))
    elif b in _NO_DEST or not parts or not parts[0]:
        dests = frozenset()
    else:
        dests = _regs(parts[0])
    return Insn(addr, size, b, "alu", dests=dests, writes_pc="pc" in dests)


_MEM = {"load", "ldr_pc", "store_imm", "store_reg", "ldrd", "strd", "ldm", "stm", "vldr",
        "vldm", "tbb"}


def insn_cycles(ins: Insn, prev: Insn | None, p: dict[str, float]) -> float:
    """Cycles of ``ins`` after ``prev`` (None: unknown), without the refill of a taken branch
    (which depends on the successor: ``branch_refill``)."""
    c = ins.cls
    stall = 0.0
    if (c in _MEM and prev is not None and prev.cls in ("alu", "div", "fp")
            and prev.dests & ins.addr_regs):
        stall = p["agu_stall"]
    after_load = (prev is not None and prev.cls == "load"
                  and not (prev.dests & ins.addr_regs))
    if c == "alu":
        return p["alu"]
    if c == "load":
        return stall + (p["load_pipelined"] if after_load else p["load"])
    if c == "ldr_pc":
        return stall + p["load"]
    if c == "store_imm":
        return stall + p["store_imm"]
    if c == "store_reg":
        return stall + (min(p["store_reg"], p["load_pipelined"]) if after_load
                        else p["store_reg"])
    if c in ("ldrd", "strd"):
        return stall + p[c]
    if c in ("ldm", "stm", "vldm"):
        return stall + p["ldm_base"] + p["ldm_per_reg"] * ins.nregs
    if c == "branch":
        return p["branch"]
    if c == "tbb":
        return stall + p["tbb"]
    if c == "it":
        return p["it"]
    if c == "vldr":
        return stall + p["vldr"]
    return p[c]  # div fp fp_mac fp_div


def branch_refill(last: Insn, next_pc: int | None, p: dict[str, float]) -> float:
    """The refill after a TB's last instruction when control did not fall through to the next
    address (next_pc None: not known, charged as taken)."""
    if next_pc is not None and next_pc == last.addr + last.size:
        return 0.0
    if last.writes_pc or last.cls == "tbb":
        return p["refill_pc"]
    if last.cls == "branch":
        return p["refill"]
    return 0.0  # a TB that ended without a branch (QEMU's size limit, an I/O access)


# ---- the trace ----------------------------------------------------------------------------

#: Pseudo block ids in the transition counts: the region's entry, its exit, and a skipped
#: stretch (the per-layer hook, an excluded interrupt handler).
START, END, SKIPPED = -1, -2, -3
_INSN_LINE = re.compile(r"^0x([0-9a-f]+):\s+([0-9a-f]{4})(?: ([0-9a-f]{4}))?\s+(\S+)\s*(.*)$")


@dataclass
class Block:
    """A translation block: its first address, symbol and instructions."""

    pc: int
    symbol: str
    insns: list[Insn]

    @property
    def end(self) -> int:
        return self.insns[-1].addr + self.insns[-1].size if self.insns else self.pc


@dataclass
class TraceProfile:
    """Transition counts (previous TB, TB) per segment of the region. Segment k ends with the
    k-th call of the per-layer hook; the last one runs from the last call to the return."""

    blocks: list[Block]
    segments: list[Counter] = field(default_factory=list)
    # Per segment, (block, address) -> times QEMU rewound the block there (an I/O access under
    # -icount): the block's instructions from that address on did not run then.
    cuts: list[Counter] = field(default_factory=list)
    found: bool = False  # the region was entered and left
    undefined: int = 0  # TB executions logged without their instructions (must be 0)


def _parse_trace_line(line: str) -> tuple[int, str]:
    """PC and symbol of a ``Trace 0: HOST [cs_base/PC/flags/cflags] symbol`` line."""
    head, _, sym = line.partition("] ")
    return int(head.split("/", 2)[1], 16), sym.strip()


def read_trace(lines: Iterable[str], region: str = REGION_SYMBOL,
               hook: str | None = HOOK_SYMBOL,
               excluded: frozenset[str] = EXCLUDED_SYMBOLS) -> TraceProfile:
    """Reads a ``-d in_asm,exec,nochain`` log (a file or a FIFO, line by line, to the end) into
    the region's transition counts. The region may be entered and left many times (a ring
    input's run goes on as rows arrive): every visit is counted. Not counted: everything from
    an entry into ``hook`` until control is back in the function that called it (the hook and
    whatever it calls), everything outside the region, and the blocks of the
    ``excluded`` symbols (interrupt handlers the firmware's own count leaves out): a transition
    into them is recorded as (block, SKIPPED), out of them as (SKIPPED, block)."""
    blocks: list[Block] = []
    key_to_id: dict[str, int] = {}
    pending: list[Insn] | None = None
    collecting: list[Insn] | None = None
    prof = TraceProfile(blocks, [Counter()], [Counter()])
    state = 0  # 0 before the region, 1 inside, 2 after
    in_hook = False
    hook_caller = ""
    visits = 0
    caller = ""
    prev = -1
    seg = prof.segments[0]
    last: tuple[int, int] | None = None  # the transition just counted, and the one before it
    last_prev = -1
    for line in lines:
        if line.startswith("Trace"):
            tid = key_to_id.get(line)
            if pending is not None:
                pc, sym = _parse_trace_line(line)
                if not pending or pending[0].addr == pc:
                    tid = len(blocks)
                    blocks.append(Block(pc, sym, pending))
                    key_to_id[line] = tid
                pending = None
            if tid is None:  # logged before we saw its instructions: costed as unknown
                pc, sym = _parse_trace_line(line)
                tid = len(blocks)
                blocks.append(Block(pc, sym, []))
                key_to_id[line] = tid
                if state == 1:
                    prof.undefined += 1
            if state == 1:
                sym = blocks[tid].symbol
                if in_hook:
                    if sym != hook_caller:
                        continue
                    in_hook = False
                elif sym == hook:
                    hook_caller = blocks[prev].symbol if prev >= 0 else region
                    seg[(prev, SKIPPED)] += 1
                    seg = Counter()
                    prof.segments.append(seg)
                    prof.cuts.append(Counter())
                    last = None
                    in_hook = True
                    prev = SKIPPED
                    continue
                if sym in excluded:
                    if prev != SKIPPED:
                        seg[(prev, SKIPPED)] += 1
                    prev = SKIPPED
                    last = None
                    continue
                if sym == caller and (prev < 0 or blocks[prev].symbol == region
                                      or prev == SKIPPED):
                    seg[(prev, END)] += 1  # the region's last block: its return is charged
                    state = 2
                    visits += 1
                    continue
                seg[(prev, tid)] += 1
                last, last_prev = (prev, tid), prev
                prev = tid
            else:
                if blocks[tid].symbol == region and (prev < 0 or blocks[prev].symbol != region):
                    state = 1
                    caller = blocks[prev].symbol if prev >= 0 else ""
                    seg[(START, tid)] += 1
                prev = tid
        elif line.startswith("0x"):
            if collecting is not None:
                m = _INSN_LINE.match(line.rstrip("\n"))
                if m:
                    size = 4 if m.group(3) else 2
                    collecting.append(decode(int(m.group(1), 16), size, m.group(4),
                                             m.group(5)))
        elif line.startswith("IN:"):
            collecting = []
            pending = collecting
        elif line.startswith("----"):
            collecting = None
        elif state == 1 and last is not None:
            if line.startswith("Stopped execution of TB chain"):
                # The block just logged did not run (an icount or interrupt exit at its start).
                seg[last] -= 1
                prev = last_prev
                last = None
            elif line.startswith("cpu_io_recompile: rewound execution of TB to "):
                addr = int(line.rsplit(" ", 1)[1], 16)
                prof.cuts[-1][(last[1], addr)] += 1
                last = None
    prof.found = state == 2 and visits > 0
    return prof


# ---- costing ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Estimate:
    """Cycles of one traced region under one core's table."""

    core: str
    reference: str
    instructions: int  # traced, outside the excluded symbols
    cycles: dict[str, float]  # per assumption
    segment_instructions: list[int]
    segment_cycles: list[dict[str, float]]
    top: list[tuple[str, int, float]]  # mnemonic, executions, base cycles

    def per_step(self, ticks: Sequence[int], n_steps: int) -> tuple[list[int], list[dict]]:
        """Per layer: segment k belongs to step ticks[k]; the segment after the last hook call
        (the run's return) is added to the last step."""
        instr = [0] * n_steps
        cyc = [dict.fromkeys(ASSUMPTIONS, 0.0) for _ in range(n_steps)]
        if len(self.segment_cycles) != len(ticks) + 1:
            raise BuildError(f"the trace has {len(self.segment_cycles) - 1} per-layer hook calls "
                             f"but the schedule {len(ticks)}: the firmware and the model differ")
        owners = [*ticks, ticks[-1] if ticks else 0]
        for k, step in enumerate(owners):
            if n_steps == 0:
                break
            instr[step] += self.segment_instructions[k]
            for a in ASSUMPTIONS:
                cyc[step][a] += self.segment_cycles[k][a]
        return instr, cyc


def estimate(prof: TraceProfile, timing: Timing) -> Estimate:
    """Applies ``timing`` to every transition of the profile, in each assumption."""
    if not prof.found:
        raise BuildError("the trace never entered and left the measured region "
                         f"({REGION_SYMBOL}): no inference ran, or QEMU stopped early")
    blocks = prof.blocks
    # Inside a block the costs do not depend on the transition: computed once per block.
    inner: dict[tuple[int, str], float] = {}
    seg_instr: list[int] = []
    seg_cyc: list[dict[str, float]] = []
    mix: Counter = Counter()
    mix_cycles: Counter = Counter()
    base = timing.params["base"]
    for seg, cuts in zip(prof.segments, prof.cuts, strict=True):
        n_instr = 0
        cyc = dict.fromkeys(ASSUMPTIONS, 0.0)
        for (prev, tid), count in seg.items():
            # The previous block's closing branch: taken unless this block is its fall-through;
            # a successor starting inside it means QEMU abandoned it there (I/O, icount).
            pb = blocks[prev] if prev >= 0 else None
            tb = blocks[tid] if tid >= 0 else None
            if pb is not None and pb.insns:
                next_pc = tb.pc if tb is not None else None
                for a in ASSUMPTIONS:
                    cyc[a] += count * branch_refill(pb.insns[-1], next_pc, timing.params[a])
            if tb is None or not tb.insns:
                continue
            n_instr += count * len(tb.insns)
            last = pb.insns[-1] if pb is not None and pb.insns else None
            for a in ASSUMPTIONS:
                p = timing.params[a]
                key = (tid, a)
                if key not in inner:
                    inner[key] = sum(insn_cycles(i, j, p)
                                     for j, i in zip(tb.insns, tb.insns[1:], strict=False))
                cyc[a] += count * (insn_cycles(tb.insns[0], last, p) + inner[key])
            prev_i = last
            for i in tb.insns:
                mix[i.mnemonic] += count
                mix_cycles[i.mnemonic] += count * insn_cycles(i, prev_i, base)
                prev_i = i
        for (tid, addr), count in cuts.items():  # the part of a rewound block that did not run
            tail = [i for i in blocks[tid].insns if i.addr >= addr]
            n_instr -= count * len(tail)
            for a in ASSUMPTIONS:
                p = timing.params[a]
                # and the refill charged for "jumping" to the rewound rest, which did not happen
                cyc[a] -= count * (sum(insn_cycles(i, None, p) for i in tail)
                                   + branch_refill(blocks[tid].insns[-1], addr, p))
        seg_instr.append(n_instr)
        seg_cyc.append(cyc)
    total = {a: sum(s[a] for s in seg_cyc) for a in ASSUMPTIONS}
    top = [(m, mix[m], mix_cycles[m]) for m, _ in mix_cycles.most_common(12)]
    return Estimate(timing.core, timing.reference, sum(seg_instr), total, seg_instr, seg_cyc,
                    top)


def estimate_lines(lines: Iterable[str], timing: Timing) -> Estimate:
    """A whole listing (a synthetic trace, a saved log) costed at once."""
    return estimate(read_trace(lines), timing)
