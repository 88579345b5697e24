"""Does Deep Compression keep the ImageNet SqueezeNet 1.1's answers? Top-1 and top-5 agreement
of the compressed int8 model with the uncompressed int8 model on the five photos in
../shared/pretrained (photos/ and cat.jpeg), both run in LiteRT with its reference kernels
(BUILTIN_REF, the kernels sqz's C is bit-exact with).

    python examples/deep_compression/imagenet_agreement.py [--bits 6] [--codebook tensor]

Post-training (no data to fine-tune on here): the paper's sparsity (Table 1), --bits codebooks.
Both models are calibrated on the same ten images (the five photos and their mirror images).
Classes are ranked by the int8 tensor that feeds the softmax (its int8 output has too many
ties at 1/256 resolution to rank five classes); ties go to the lower class index.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
PRETRAINED = ROOT.parent / "shared" / "pretrained"
WEIGHTS = "squeezenet1_1_imagenet.npz"


def photos(pretrained: Path) -> list[Path]:
    return sorted((pretrained / "photos").glob("*.jpg")) + [pretrained / "cat.jpeg"]


def _ranked(buf: bytes, x: np.ndarray) -> np.ndarray:
    """Class indices of each input, best first, from the int8 pre-softmax tensor."""
    from sqz_mcu.frontend import reference
    from sqz_mcu.frontend.preprocess import quantize_input
    from sqz_mcu.frontend.tflite_reader import read_model_bytes

    g = read_model_bytes(buf)
    scale, zp = g.tensor(g.inputs[0]).quant.single()
    ref = reference.run_reference(buf, quantize_input(x, scale, zp), want_logits=True)
    logits = ref.logits.reshape(len(x), -1).astype(np.int64)
    return np.argsort(-logits, axis=1, kind="stable")


def agreement(pretrained: Path, work: Path, bits: int = 6, codebook: str = "tensor",
              sparsity: str = "paper") -> dict:
    """Compress, quantize both models, run them; per-photo top-5 lists and the agreements."""
    from sqz_mcu import atomic
    from sqz_mcu.compress.algorithm import compress_model, plan_layers
    from sqz_mcu.compress.options import LayerValues, parse_sparsity
    from sqz_mcu.compress.sidecar import sidecar_record
    from sqz_mcu.frontend import sources
    from sqz_mcu.frontend.compression import sidecar_path
    from sqz_mcu.frontend.preprocess import Preprocessing, load_image

    pre = Preprocessing.imagenet()
    files = photos(pretrained)
    x = np.stack([load_image(f, pre) for f in files]).astype(np.float32)
    calib = work / "calib.npy"
    np.save(calib, np.concatenate([x, x[:, :, ::-1]]))
    weights = str(pretrained / WEIGHTS)

    km, *_ = sources.float_model("squeezenet1_1", weights=weights)
    plans = plan_layers(km, parse_sparsity(sparsity), LayerValues(bits))
    codes = compress_model(km, plans, per_channel=codebook == "channel")
    model = work / "compressed.keras"
    with atomic.replacing(model) as tmp:
        km.save(tmp)
    atomic.write_bytes(sidecar_path(model),
                       json.dumps(sidecar_record(codes, bits=str(bits),
                                                          codebook=codebook)).encode())
    base = sources.resolve("squeezenet1_1", weights=weights, calib=str(calib))
    comp = sources.resolve(str(model), calib=str(calib))  # checks the structure survived
    a, b = _ranked(base.tflite, x), _ranked(comp.tflite, x)
    rows = [{"photo": f.name, "uncompressed_top5": a[i, :5].tolist(),
             "compressed_top5": b[i, :5].tolist(), "top1_same": bool(a[i, 0] == b[i, 0]),
             "top5_overlap": len(set(a[i, :5]) & set(b[i, :5]))}
            for i, f in enumerate(files)]
    kept = sum(int(np.count_nonzero(c.kernel())) for c in codes)
    return {"bits": bits, "codebook": codebook, "sparsity": sparsity, "photos": rows,
            "weights": sum(c.size for c in codes), "kept": kept,
            "top1_agreement": sum(r["top1_same"] for r in rows),
            "top5_overlap": sum(r["top5_overlap"] for r in rows)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bits", type=int, default=6)
    p.add_argument("--codebook", choices=["tensor", "channel"], default="tensor")
    p.add_argument("--sparsity", default="paper", help="as sqz-compress (default: paper)")
    p.add_argument("--pretrained", type=Path, default=PRETRAINED)
    args = p.parse_args(argv)
    if not (args.pretrained / WEIGHTS).is_file():
        print(f"{args.pretrained / WEIGHTS} not found", file=sys.stderr)
        return 1
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from sqz_mcu.frontend.quantize import captured_output

    with tempfile.TemporaryDirectory() as tmp, captured_output():
        result = agreement(args.pretrained, Path(tmp), args.bits, args.codebook, args.sparsity)
    n = len(result["photos"])
    print(f"SqueezeNet 1.1 (ImageNet), sparsity {args.sparsity}, {args.bits}-bit {args.codebook} "
          f"codebooks: {result['kept']:,} of {result['weights']:,} weights kept")
    print("| photo | uncompressed int8 top 5 | compressed int8 top 5 | top-1 same | top-5 shared |")
    print("|---|---|---|---|---:|")
    for r in result["photos"]:
        print(f"| {r['photo']} | {', '.join(map(str, r['uncompressed_top5']))} | "
              f"{', '.join(map(str, r['compressed_top5']))} | "
              f"{'yes' if r['top1_same'] else 'no'} | {r['top5_overlap']}/5 |")
    print(f"top-1 agreement {result['top1_agreement']}/{n}, top-5 agreement "
          f"{result['top5_overlap']}/{5 * n} classes shared")
    return 0


if __name__ == "__main__":
    sys.exit(main())
