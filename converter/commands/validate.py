"""sqz-validate: run inputs on a device (a board, the host firmware or QEMU) and compare its int8
outputs bit for bit with LiteRT's reference kernels; exit 0 only when every byte matches."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from .. import __version__, atomic
from ..errors import MismatchError, ModelMismatchError, UsageError
from ..frontend import tflite_reader
from ..modeldir import load_model_dir
from ..validate import (
    compare,
    cosine,
    count_stats,
    dequantize,
    float_outputs,
    layer_macs,
    load_camera_inputs,
    load_inputs,
    per_layer_rows,
    run_device,
    write_junit,
)
from .common import Parser, consoles, positive_seconds, run_cli


def _validate_parser() -> argparse.ArgumentParser:
    p = Parser(prog="sqz-validate",
                description="Run inputs on a device (or simulator) and compare its int8 "
                            "outputs bit for bit with LiteRT's reference kernels.")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--sim", choices=["host", "qemu"],
                       help="build the firmware and run it on a simulated device")
    where.add_argument("--port", help="serial port or pyserial URL of a board (/dev/ttyACM0, "
                       "COM3, socket://host:port, loop://)")
    p.add_argument("--model", type=Path, default=None,
                   help="directory written by sqz-convert (default build/<target>)")
    p.add_argument("-n", type=int, default=None,
                   help="number of inputs (default 10 random, or all given inputs)")
    p.add_argument("--inputs", help="a .npy array (float, preprocessed; or int8) or an image "
                   "folder (preprocessed as at conversion; subfolders = labels). A model "
                   "converted with --camera takes raw frame files (a file or a folder of "
                   ".raw/.bin/...), a .npy of uint8 frames, or images, each made a frame of "
                   "the camera's format and size")
    p.add_argument("--tflite", type=Path, help="reference model (default MODEL/model.tflite)")
    p.add_argument("--keras", type=Path, help="float Keras model to compare against as well")
    p.add_argument("--report", type=Path, help="write a JSON report here")
    p.add_argument("--junit", type=Path, help="write JUnit XML here (for hardware CI)")
    p.add_argument("--baud", type=int, default=921600, help="serial baud rate (default 921600)")
    p.add_argument("--timeout", type=positive_seconds, default=None,
                   help="seconds to wait for one inference (default: from the model's MACs)")
    p.add_argument("--per-layer", action="store_true", help="print per-layer counts")
    p.add_argument("--seed", type=int, default=0, help="seed for random inputs (default 0)")
    p.add_argument("-q", "--quiet", action="store_true", help="print the verdict only")
    p.add_argument("-V", "--version", action="version", version=f"sqz {__version__}")
    return p


def _validate(argv: Sequence[str] | None) -> int:
    args = _validate_parser().parse_args(argv)
    return validate_command(args, *consoles(args.quiet))


def validate_main(argv: Sequence[str] | None = None) -> int:
    return run_cli(_validate, argv)


_NOT_SERIAL = {"/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom",
               "/dev/tty", "/dev/stdin", "/dev/stdout", "/dev/stderr"}
_PORT_ADVICE = ("give the board's serial port (Linux /dev/ttyACM0 or /dev/ttyUSB0, macOS "
                "/dev/cu.usbmodem..., Windows COM3; list them with 'python -m "
                "serial.tools.list_ports'), a pyserial URL (socket://host:port), or run without "
                "a board: --sim host or --sim qemu")


def check_port(port: str) -> None:
    """Up front, without opening it (opening resets many boards): a path that is surely not a
    serial port gets advice instead of pyserial's "Inappropriate ioctl for device"."""
    import os
    import stat

    if "://" in port or not port.startswith("/"):
        return  # a URL, or COM3 and the like: pyserial words its own errors
    real = os.path.realpath(port)
    try:
        mode = os.stat(real).st_mode
    except OSError:
        return  # missing: the opening error says so, with its own advice
    if real in _NOT_SERIAL or port in _NOT_SERIAL:
        raise UsageError(f"--port {port} is not a serial port ({real} is a system device that "
                         f"no board answers on); {_PORT_ADVICE}")
    if not stat.S_ISCHR(mode):
        kind = "a directory" if stat.S_ISDIR(mode) else "a file, not a device"
        raise UsageError(f"--port {port} is not a serial port (it is {kind}); {_PORT_ADVICE}")


def validate_command(args, out: Console, err: Console) -> int:
    started = time.monotonic()
    if args.model is None:
        default = {"host": "build/host", "qemu": "build/mps2-an386"}.get(args.sim or "", None)
        args.model = Path(default) if default else None
        if args.model is None or not args.model.is_dir():
            raise UsageError("give the directory written by sqz-convert with --model")
    if args.n is not None and args.n < 1:
        raise UsageError("-n must be at least 1")
    if args.port:
        check_port(args.port)
    # Checked (and their directories made) now, not after a passing run that then cannot be
    # recorded: hardware CI relies on these files.
    for option, value in (("--report", args.report), ("--junit", args.junit)):
        if value is not None:
            atomic.check_writable_file(value, option)
    md = load_model_dir(args.model, args.tflite)
    # Read once as given, so a file that is not a TFLite model is named in the error.
    tflite_reader.read_model_bytes(md.tflite, source=md.tflite_path.name)
    from ..frontend import tflite_edit

    g_int8 = tflite_reader.read_model_bytes(tflite_edit.strip_float_edges(md.tflite))
    in_t = g_int8.tensor(g_int8.inputs[0])
    out_t = g_int8.tensor(g_int8.outputs[0])
    s_in, zp_in = in_t.quant.single()
    s_out, zp_out = out_t.quant.single()

    n_outputs = int(out_t.shape[-1]) if out_t.shape else 1
    if md.class_names is not None and len(md.class_names) != n_outputs:
        raise ModelMismatchError(
            f"{md.path / 'classes.json'} names {len(md.class_names)} classes, but the model "
            f"has {n_outputs} outputs: the class names belong to another model. Convert "
            "again into this directory (sqz-convert replaces it as a whole)")
    if (md.camera is None and args.inputs is not None and Path(args.inputs).is_file()
            and Path(args.inputs).suffix.lower() == ".npy"):
        # The data gate: NaN, inf or absurd values would otherwise pass as "cosine nan".
        from ..errors import InputFileError
        from ..frontend import datagate

        datagate.validation_inputs(
            datagate.load_npy(Path(args.inputs), InputFileError, "--inputs"),
            f"--inputs {args.inputs}")
    if md.camera is not None:
        from ..frontend.camera import camera_params
        from ..ir.steps import Dims

        if md.preprocessing is None:
            raise ModelMismatchError(f"{md.path / 'camera.json'} is there but no "
                                     "preprocess.json: convert again")
        d = Dims.of(in_t.shape)
        params = camera_params(md.camera, md.preprocessing, s_in, zp_in, d.h, d.w, d.c)
        inputs = load_camera_inputs(args.inputs, args.n, args.seed, md.camera, params,
                                    md.preprocessing, md.class_names, n_outputs)
    else:
        inputs = load_inputs(args.inputs, args.n, args.seed, in_t.shape, s_in, zp_in,
                             md.preprocessing, md.class_names, n_outputs)
    if (inputs.class_names is not None and md.class_names is None
            and len(inputs.class_names) != n_outputs):
        err.print(f"[bold yellow]warning:[/] {args.inputs}: {len(inputs.class_names)} class "
                  f"folders ({', '.join(inputs.class_names)}) but the model has {n_outputs} "
                  "outputs and "
                  "records no class names (classes.json): folder k is taken as output k in "
                  "sorted order, so the accuracy below means something only if that is the "
                  "model's order. Convert from a model with its .classes.json (sqz-train "
                  "writes one) to match by name", soft_wrap=True)
    out.print(f"Model [bold]{md.name or md.path.name}[/] ({md.sha256[:12]}...), "
              f"{inputs.kind}")
    devrun, ref = run_device(args, md, inputs, out)
    if ref.softmax_aborted:
        err.print(f"[bold yellow]note:[/] {ref.note}", soft_wrap=True)
    n = len(inputs.int8)
    names = inputs.names
    if ref.softmax_aborted:
        if devrun.logits is None:
            raise MismatchError("the reference softmax aborted and the device returned no "
                                "logits to compare instead")
        cmp = compare(devrun.logits, ref.logits.reshape(n, -1), names, "logits")
        sane = bool(np.all(devrun.outputs == -128))
    else:
        cmp = compare(devrun.outputs, ref.outputs.reshape(n, -1), names, "output")
        sane = True

    info = devrun.info
    hz = info.counter_hz or 1
    lat = count_stats(devrun.counts, hz)
    report = {
        "model": md.name, "model_sha256": md.sha256, "device": info.target_name,
        "firmware": info.firmware_version, "inputs": inputs.kind, "n": n,
        "compared": cmp.compared, "bit_exact": cmp.exact, "max_abs_diff": cmp.max_abs_diff,
        "top1_agreement": cmp.top1_agree, "softmax_reference_aborted": ref.softmax_aborted,
        "device_softmax_saturated": not sane if ref.softmax_aborted else None,
        "counter_unit": info.counter_unit, "counter_hz": info.counter_hz,
        "latency": lat, "per_input": cmp.per_input,
    }

    table = Table(title="sqz-validate", show_header=False)
    what = "logits" if cmp.compared == "logits" else "outputs"
    table.add_row("bit-exact", f"{cmp.exact}/{n} {what} identical to LiteRT BUILTIN_REF")
    table.add_row("largest |difference|", str(cmp.max_abs_diff))
    table.add_row("top-1 agreement", f"{cmp.top1_agree}/{n}")
    unit = info.counter_unit
    note = " (executed instructions, not cycles)" if unit == "instructions" else ""
    table.add_row(f"device {unit}{note}",
                  f"min {lat['min']:,}  median {lat['median']:,.0f}  max {lat['max']:,}")
    table.add_row("device time", f"min {lat['min_ms']:.2f} ms  median {lat['median_ms']:.2f} ms"
                  f"  max {lat['max_ms']:.2f} ms at {hz / 1e6:g} MHz counter")
    if info.macs:
        table.add_row(f"{unit} per MAC", f"{lat['median'] / info.macs:.2f}")

    fl = float_outputs(md, args.keras, inputs, s_in, zp_in)
    if fl is not None:
        dev_real = dequantize(devrun.outputs, s_out, zp_out).reshape(n, -1)
        fl = fl.reshape(n, -1)
        agree = int(sum(int(np.argmax(a)) == int(np.argmax(b)) for a, b in zip(dev_real, fl,
                                                                               strict=True)))
        cos = float(np.mean([cosine(a, b) for a, b in zip(dev_real, fl, strict=True)]))
        table.add_row("vs float Keras model", f"top-1 agreement {agree}/{n}, mean cosine "
                      f"similarity {cos:.4f}")
        report["float_top1_agreement"] = agree
        report["float_cosine_similarity"] = cos
    if inputs.labels is not None:
        acc = {}
        if fl is not None:
            acc["float Keras"] = float(np.mean(np.argmax(fl, 1) == inputs.labels))
        if not ref.softmax_aborted:
            acc["int8 reference"] = float(np.mean(
                np.argmax(ref.outputs.reshape(n, -1), 1) == inputs.labels))
        acc["device"] = float(np.mean(np.argmax(devrun.outputs, 1) == inputs.labels))
        report["accuracy"] = acc
        acc_table = Table(title=f"accuracy on {n} labelled images")
        for k in acc:
            acc_table.add_column(k)
        acc_table.add_row(*(f"{100 * v:.1f}%" for v in acc.values()))
        out.print(acc_table)
    out.print(table)
    if devrun.layer_counts is not None:
        report["per_layer"] = per_layer_rows(devrun, out, layer_macs(md.path, devrun.step_names))

    if args.report:
        atomic.write_text(args.report, json.dumps(report, indent=2) + "\n")
    if args.junit:
        write_junit(args.junit, cmp, md.name or "model", time.monotonic() - started)

    if cmp.exact != n:
        bad = [r["input"] for r in cmp.per_input if not r["bit_exact"]][:5]
        raise MismatchError(f"{n - cmp.exact} of {n} inputs differ from the reference "
                            f"(largest |difference| {cmp.max_abs_diff}); first: "
                            f"{', '.join(bad)}")
    if not sane:
        raise MismatchError("the reference softmax aborted and the device's softmax output is "
                            "not the saturated all -128 it should be")
    out.quiet = False  # -q prints the verdict only: this line
    out.print(f"[bold green]PASS[/]: all {n} {what} bit-exact")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(validate_main())
