"""Many models in one firmware on an emulated board, one boot per batch.

The kernels' golden and hypothesis cases are one-op models; building and booting a firmware for
each would take the test suite hours on QEMU. Here each case is converted for the board with
its own symbol prefix (codegen.symbols), all of them are linked into one firmware with a small
application (tests/templates/batch_app.c.j2) that runs every case on its inputs and prints the
outputs on the serial link, and QEMU boots it once.

    batch = QemuBatch("mps2-an386", tmp_path)
    i = batch.add(tflite_bytes, inputs)        # inputs: (n, *input shape) int8
    outputs = batch.run()                       # outputs[i]: (n, output bytes) int8
"""

from __future__ import annotations

import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import jinja2
import numpy as np

from converter import arch, convert, targets
from converter.codegen import symbols
from converter.device import build, qemu
from converter.paths import FIRMWARE

TEMPLATES = Path(__file__).resolve().parent / "templates"
ROW = 24  # values per line in the generated input arrays
READ_TIMEOUT = 600.0


def missing_tools(target: str) -> list[str]:
    return qemu.BOARDS[target].missing_tools()


@dataclass
class _Case:
    conv: convert.Conversion
    inputs: np.ndarray


class BatchError(AssertionError):
    pass


class QemuBatch:
    def __init__(self, target: str, workdir: Path, *, arch_override: str | None = None):
        self.board = qemu.BOARDS[target]
        self.target = targets.load(target)
        self.arch = arch_override or self.target.arch
        self.workdir = Path(workdir)
        self.cases: list[_Case] = []

    def add(self, buf: bytes, inputs: np.ndarray, **convert_kw) -> int:
        i = len(self.cases)
        conv = convert.convert_tflite(buf, self.target, model_name=f"case{i}",
                                      source_name=f"case{i}.tflite", prefix=f"b{i}_",
                                      arch=self.arch, psram_budget=0, **convert_kw)
        inputs = np.ascontiguousarray(inputs, np.int8)
        self.cases.append(_Case(conv, inputs.reshape(len(inputs), -1)))
        return i

    def _sources(self, d: Path) -> list[Path]:
        files = [d / "batch_app.c"]
        for i in range(len(self.cases)):
            sym = symbols(f"b{i}_")
            files += [d / sym["source"], d / sym["data"]]
        port = sorted(self.board.port_dir().glob("*.c")) + sorted(
            self.board.port_dir().glob("*.S"))
        return [*build.runtime_sources(), *arch.sources(self.arch), *port, *files]

    def _write(self, d: Path) -> None:
        env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)),
                                 undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
                                 trim_blocks=True, lstrip_blocks=True)
        if d.exists():
            shutil.rmtree(d)
        d.mkdir(parents=True)
        for c in self.cases:
            for name, text in c.conv.files.items():
                (d / name).write_text(text)
        # The port's sqz_target.h: the board profile, the same in every case.
        (d / "sqz_target.h").write_text(self.cases[0].conv.files[symbols("b0_")["target"]])
        cases = []
        for i, c in enumerate(self.cases):
            x = c.inputs
            cases.append({"model": symbols(f"b{i}_")["model"], "count": len(x),
                          "bytes": x.shape[1],
                          "inputs": [[row.tolist() for row in np.array_split(
                              v, max(1, -(-v.size // ROW)))] for v in x]})
        arena = max(c.conv.layout.arena_bytes for c in self.cases)
        (d / "batch_app.c").write_text(env.get_template("batch_app.c.j2").render(cases=cases))
        (d / "model.h").write_text(env.get_template("batch_model.h.j2").render(
            arena_bytes=(arena + 15) // 16 * 16))

    def _link(self, d: Path) -> Path:
        board = self.board
        elf = d / "batch.elf"
        cmd = [board.tool(board.cc), *board.cpu_flags, "-O2", *qemu.C_FLAGS,
               "-I", str(FIRMWARE / "include"), "-I", str(d),
               *(str(s) for s in self._sources(d)),
               "-T", str(board.linker_script_path()), *board.link_flags, *board.libs,
               "-o", str(elf)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise BatchError(f"building the batch firmware failed:\n{proc.stderr[-4000:]}")
        if board.flash_image is not None:
            qemu._write_flash_image(board, elf, qemu.kernel_path(elf),
                                    qemu.flash_image_path(elf))
        return elf

    def run(self, timeout: float = READ_TIMEOUT) -> list[np.ndarray]:
        d = self.workdir / f"batch-{self.board.target}-{len(self.cases)}"
        self._write(d)
        elf = self._link(d)
        fw = qemu.QemuFirmware(elf)
        fw.start()
        try:
            text = _read_until_done(fw.port, timeout)
        finally:
            fw.close()
        outs = [np.zeros((len(c.inputs), c.conv.lowered.graph.tensor(
            c.conv.lowered.output).nbytes), np.int8) for c in self.cases]
        seen = set()
        for line in text.splitlines():
            parts = line.split()
            if not parts or parts[0] not in ("R", "F"):
                continue
            c, i = int(parts[1]), int(parts[2])
            if parts[0] == "F":
                raise BatchError(f"case {c} input {i}: sqz_run failed with status {parts[3]} "
                                 f"at node {parts[4]}")
            outs[c][i] = np.frombuffer(bytes.fromhex(parts[3]), np.int8)
            seen.add((c, i))
        expected = {(c, i) for c, case in enumerate(self.cases) for i in range(len(case.inputs))}
        if seen != expected:
            raise BatchError(f"the firmware reported {len(seen)} of {len(expected)} outputs:\n"
                             f"{text[-2000:]}")
        return outs


def _read_until_done(port, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    data = bytearray()
    while b"DONE\n" not in data:
        if time.monotonic() > deadline:
            raise BatchError(f"no DONE from the batch firmware within {timeout:.0f} s: "
                             f"{bytes(data[-500:])!r}")
        data += port.read(65536)
    return data.decode("ascii", errors="replace")
