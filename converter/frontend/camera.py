"""On-device camera preprocessing: a raw camera frame -> the model's int8 input, one row at a time.

The converter computes every constant here (floats allowed); the device (firmware/src/runtime/
camera_s8.c) does only integer work with them, one model input row at a time from at most two
frame rows.  :func:`mirror` is the host reference of the device: the same integer arithmetic in
numpy, bit for bit (docs/camera.md describes the arithmetic).

The pipeline for one output pixel, all integer:

1. decode each source pixel to 8-bit channels (YUYV: its Y and its pair's U and V; RGB565 for
   3 channels: its 5/6/5-bit fields, scaled to levels by 255/31 and 255/63 inside the
   multipliers, for 1 channel bit replication); a colour pixel for a 1-channel model becomes luma
   ``(77*R + 150*G + 29*B + 128) >> 8`` (YUYV: Y), a gray pixel for a 3-channel model is
   replicated;
2. interpolate: nearest takes one pixel, bilinear mixes four with 8-bit fractions; the result
   ``v`` is exact, in units of 1/65536 of a pixel level (0 .. 255*65536); YUYV's interpolated
   Y, U, V then become RGB by limited-range BT.601 (``298*(Y-16) + 409*(V-128)`` etc. in 1/256,
   clamped), once per output pixel instead of once per source pixel;
3. normalize and quantize: ``t = ((((v*M) >> 32) + bias) >> shift) - QUANT_OFFSET`` (the high
   word of an unsigned 32x32-bit product, then 32-bit), ``q = clamp(t, -128, 127)``, where
   M/2^(32+shift) and bias/2^shift approximate the float formula
   ``round((v/65536 * scale - mean) / std / input_scale) + zero_point`` (+ QUANT_OFFSET, which
   keeps every intermediate unsigned).

Geometry: output pixel ``o`` samples the source at ``start + (o + 0.5) * len / n_out`` (pixel
centres, like Pillow and OpenCV's ``align_corners=False``); bilinear rounds that position to
1/256 pixel and clamps at the frame edge.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ..errors import InputFileError, UsageError
from .preprocess import Preprocessing

FORMATS = ("rgb565le", "rgb565be", "rgb888", "gray8", "yuyv")
RESIZES = ("nearest", "bilinear")
FITS = ("crop", "letterbox", "stretch")
OPTION = "--camera"
MAX_SIDE = 16384  # keeps every byte offset and table entry far inside 32 bits

_BPP = {"rgb565le": 2, "rgb565be": 2, "rgb888": 3, "gray8": 1, "yuyv": 2}
# Luma weights (BT.601, sum 256) for a colour pixel feeding a 1-channel model.
LUMA = (77, 150, 29)
# Channel constants of frame_gradient: channel c of pixel (x, y) is
# (x * GRADIENT_X[c] + y * GRADIENT_Y[c] + seed * GRADIENT_SEED[c]) & 0xff.
GRADIENT_X = (3, 5, 7)
GRADIENT_Y = (2, 1, 3)
GRADIENT_SEED = (17, 31, 47)
# Levels per unit of an RGB565 field (R, G, B): a 3-channel model interpolates the fields and
# folds this exact scale into its multipliers, instead of widening every source pixel.
RGB565_LEVELS = (Fraction(255, 31), Fraction(255, 63), Fraction(255, 31))


def bytes_per_pixel(format: str) -> int:
    """Bytes per pixel of a frame format (YUYV: 2, a pair of pixels shares 4 bytes)."""
    if format not in _BPP:
        raise UsageError(
            f"{OPTION}: pixel format {format!r} is not supported; use one of {', '.join(FORMATS)}"
        )
    return _BPP[format]


def _is_int(value: Any) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


@dataclass(frozen=True)
class Camera:
    """What the camera delivers: pixel format, frame size, and how it is fitted to the model."""

    format: str
    width: int
    height: int
    resize: str = "bilinear"
    fit: str = "crop"

    def __post_init__(self) -> None:
        bytes_per_pixel(self.format)
        for name in ("width", "height"):
            value = getattr(self, name)
            if not _is_int(value) or not 1 <= value <= MAX_SIDE:
                raise UsageError(
                    f"{OPTION}: frame {name} {value!r} is invalid; give an integer from 1 to "
                    f"{MAX_SIDE}"
                )
            object.__setattr__(self, name, int(value))
        if self.format == "yuyv" and self.width % 2:
            raise UsageError(
                f"{OPTION}: a yuyv frame needs an even width (two pixels share U and V), got "
                f"{self.width}; use the sensor's even width"
            )
        if self.resize not in RESIZES:
            raise UsageError(
                f"{OPTION}: resize {self.resize!r} is not supported; use one of "
                f"{', '.join(RESIZES)}"
            )
        if self.fit not in FITS:
            raise UsageError(
                f"{OPTION}: fit {self.fit!r} is not supported; use one of {', '.join(FITS)}"
            )

    @property
    def bytes_per_pixel(self) -> int:
        return _BPP[self.format]

    @property
    def row_bytes(self) -> int:
        return self.width * self.bytes_per_pixel

    @property
    def frame_bytes(self) -> int:
        return self.row_bytes * self.height

    def __str__(self) -> str:
        return f"{self.format}:{self.width}x{self.height}:{self.resize}:{self.fit}"

    @classmethod
    def parse(cls, spec: str) -> Camera:
        """``FORMAT:WxH[:RESIZE][:FIT]``, e.g. ``rgb565le:320x240:bilinear:crop``; RESIZE and FIT
        may come in either order (their names differ)."""
        example = "e.g. rgb565le:320x240:bilinear:crop"
        if not isinstance(spec, str) or not spec.strip():
            raise UsageError(f"{OPTION}: give FORMAT:WxH[:RESIZE][:FIT], {example}")
        parts = [p.strip().lower() for p in spec.strip().split(":")]
        if len(parts) < 2 or len(parts) > 4:
            raise UsageError(
                f"{OPTION} {spec!r}: expected FORMAT:WxH[:RESIZE][:FIT], {example}"
            )
        size = re.fullmatch(r"(\d+)x(\d+)", parts[1])
        if not size:
            raise UsageError(
                f"{OPTION} {spec!r}: frame size {parts[1]!r} is not WxH (two positive "
                f"integers, e.g. 320x240)"
            )
        options: dict[str, str] = {}
        for word in parts[2:]:
            key = "resize" if word in RESIZES else "fit" if word in FITS else None
            if key is None:
                raise UsageError(
                    f"{OPTION} {spec!r}: {word!r} is neither a resize ({', '.join(RESIZES)}) "
                    f"nor a fit ({', '.join(FITS)})"
                )
            if key in options:
                raise UsageError(f"{OPTION} {spec!r}: {key} is given twice")
            options[key] = word
        return cls(parts[0], int(size.group(1)), int(size.group(2)), **options)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> Camera:
        fields = {f.name for f in dataclasses.fields(cls)}
        if not isinstance(data, dict):
            raise UsageError(f"camera must be a JSON object with keys {', '.join(sorted(fields))}")
        unknown = sorted(set(data) - fields)
        if unknown:
            raise UsageError(
                f"unknown camera key(s) {', '.join(unknown)}; valid keys: "
                f"{', '.join(sorted(fields))}"
            )
        missing = sorted({"format", "width", "height"} - set(data))
        if missing:
            raise UsageError(f"camera needs the key(s) {', '.join(missing)}")
        return cls(**data)


@dataclass(frozen=True)
class CameraParams:
    """Everything the device needs, as plain integers (what templates/_camera.j2 renders).

    Tables per output column x: ``x_off0``/``x_off1`` byte offsets in a frame row of the left and
    right source pixel (equal when the fraction is 0), ``x_frac`` the right pixel's weight in
    1/256.  Per output row y: ``y_first``/``y_last`` the frame rows read ((0, -1) for a pad row),
    ``y_frac`` the weight of row ``y_last`` in 1/256.  Columns outside ``[x_lo, x_hi)`` and rows
    outside ``[y_lo, y_hi)`` are letterbox padding and get ``pad`` (black, quantized).  Per
    model channel c: ``multiplier`` and ``bias`` of the quantization
    ``clamp(((((v*multiplier) >> 32) + bias) >> shift) - QUANT_OFFSET, -128, 127)``, ``shift``
    shared by the channels.
    ``swap_rb`` = 1 for a BGR model.
    """

    format: int
    frame_width: int
    frame_height: int
    row_bytes: int
    out_h: int
    out_w: int
    out_c: int
    resize: int  # index into RESIZES: 0 nearest, 1 bilinear
    swap_rb: int
    ring_rows: int
    x_lo: int
    x_hi: int
    y_lo: int
    y_hi: int
    x_off0: tuple[int, ...]
    x_off1: tuple[int, ...]
    x_frac: tuple[int, ...]
    y_first: tuple[int, ...]
    y_last: tuple[int, ...]
    y_frac: tuple[int, ...]
    multiplier: tuple[int, ...]
    bias: tuple[int, ...]
    shift: int
    pad: tuple[int, ...]

    @property
    def format_name(self) -> str:
        return FORMATS[self.format]

    @property
    def frame_bytes(self) -> int:
        return self.row_bytes * self.frame_height

    def row_span(self, y: int) -> tuple[int, int]:
        """The frame rows (first, last) model row y reads; (0, -1) for none (a pad row)."""
        if not 0 <= y < self.out_h:
            raise IndexError(f"model row {y} outside 0..{self.out_h - 1}")
        return self.y_first[y], self.y_last[y]

    def to_template(self) -> dict[str, Any]:
        """Plain data for templates/_camera.j2; per-channel entries padded to 3."""
        data: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            data[f.name] = list(value) if isinstance(value, tuple) else value
        for name in ("multiplier", "bias", "pad"):
            data[name] = data[name] + [0] * (3 - self.out_c)
        return data


def _round_half_up(x: Fraction) -> int:
    return math.floor(x + Fraction(1, 2))


def _axis(n_out: int, n_src: int, src_start: Fraction, src_len: Fraction, out_start: int,
          out_len: int, bilinear: bool) -> list[tuple[int, int, int] | None]:
    """(i0, i1, frac/256) per output index, None outside [out_start, out_start + out_len)."""
    out: list[tuple[int, int, int] | None] = []
    for o in range(n_out):
        if not out_start <= o < out_start + out_len:
            out.append(None)
            continue
        # Continuous source coordinate of the output pixel's centre (pixel i covers [i, i+1)).
        pos = src_start + (o - out_start + Fraction(1, 2)) * src_len / out_len
        if not bilinear:
            i = min(max(math.floor(pos), 0), n_src - 1)
            out.append((i, i, 0))
            continue
        p256 = min(max(_round_half_up((pos - Fraction(1, 2)) * 256), 0), (n_src - 1) * 256)
        i0, f = divmod(p256, 256)
        out.append((i0, i0 + 1 if f else i0, f))
    return out


def _geometry(camera: Camera, out_h: int, out_w: int, pre: Preprocessing | None = None):
    """Per axis: (source start, source length, output start, output length)."""
    W, H = camera.width, camera.height
    if camera.fit == "stretch":
        return (Fraction(0), Fraction(W), 0, out_w), (Fraction(0), Fraction(H), 0, out_h)
    if camera.fit == "crop" and pre is not None and pre.resize_mode == "short_side_crop":
        # The model's own framing: the host scales the short side to resize_short and takes
        # the centred out_h x out_w, so the frame's region is that crop scaled back.
        zoom = Fraction(min(W, H), pre.resize_short)
        sw, sh = out_w * zoom, out_h * zoom
        return ((W - sw) / 2, sw, 0, out_w), ((H - sh) / 2, sh, 0, out_h)
    if camera.fit == "crop":
        # The largest centred frame region with the model's aspect ratio.
        if out_w * H >= out_h * W:  # model relatively wider: full width, rows cropped
            sh = Fraction(out_h * W, out_w)
            return (Fraction(0), Fraction(W), 0, out_w), ((H - sh) / 2, sh, 0, out_h)
        sw = Fraction(out_w * H, out_h)
        return ((W - sw) / 2, sw, 0, out_w), (Fraction(0), Fraction(H), 0, out_h)
    # letterbox: the whole frame inside the model input, centred, aspect kept.
    if out_w * H <= out_h * W:  # frame relatively wider: full model width, pad rows
        dh = min(out_h, max(1, _round_half_up(Fraction(H * out_w, W))))
        return (Fraction(0), Fraction(W), 0, out_w), (Fraction(0), Fraction(H),
                                                      (out_h - dh) // 2, dh)
    dw = min(out_w, max(1, _round_half_up(Fraction(W * out_h, H))))
    return (Fraction(0), Fraction(W), (out_w - dw) // 2, dw), (Fraction(0), Fraction(H), 0, out_h)


V_MAX = 255 << 16  # the largest interpolated value, 1/65536 pixel units
# Added to every quantized value so the bias and the sums stay unsigned; subtracted before the
# clamp (SQZ_CAMERA_OFFSET in sqz/camera.h). Larger than any b + a*v that does not saturate.
QUANT_OFFSET = 1 << 17
MIN_SHIFT = 8  # the truncations cost at most 2^-MIN_SHIFT each, in quantization steps


def _quantizers(lines: list[tuple[float, float, float]]
                ) -> tuple[tuple[int, ...], tuple[int, ...], int]:
    """(multipliers, biases, shift) for the lines q = a*levels*v + b of the channels (v in
    units of 1/levels of a pixel level, at most V_MAX / levels).

    q_int = ((((v*M) >> 32) + bias) >> shift) - QUANT_OFFSET with M ~ a*2^(32+shift) and
    bias ~ (b + 0.5 + QUANT_OFFSET) * 2^shift, i.e. floor(a*v + b + 0.5) up to two truncations
    of 2^-shift steps each: within 1 LSB of round(a*v + b). One shift for all channels, the
    largest that keeps M and the sum in 32 bits.
    """
    for a, _, _ in lines:
        if a * 65536 >= 256:
            raise UsageError(
                f"{OPTION}: the preprocessing and input quantization make one pixel level "
                f"{a * 65536:.3g} input steps (at most 256 are supported); check the "
                "preprocessing scale and std and the model's input scale"
            )
    fitted: list[tuple[float, float, int] | None] = []
    for a, b, levels in lines:
        if a * V_MAX + b < -129:  # always -128: M = 0, bias = 0 gives -QUANT_OFFSET
            fitted.append(None)
        else:  # b > 2^11 with a >= 0 always saturates at 127 anyway
            fitted.append((a * levels, min(b, float(1 << 11)), math.ceil(V_MAX / levels)))
    for shift in range(24, MIN_SHIFT - 1, -1):
        mults, biases = [], []
        for line in fitted:
            if line is None:
                mults.append(0)
                biases.append(0)
                continue
            a, b, vmax = line
            m = round(a * 2.0 ** (32 + shift))
            bias = math.floor((b + 0.5 + QUANT_OFFSET) * 2.0**shift)
            if m >= 2**32 or bias < 0 or ((vmax * m) >> 32) + bias >= 2**32:
                break
            mults.append(m)
            biases.append(bias)
        else:
            return tuple(mults), tuple(biases), shift
    raise UsageError(  # only rgb565 (a field step is 8.2 levels) gets here past the check above
        f"{OPTION}: the preprocessing and input quantization make one pixel level too many "
        "input steps for an integer form; check the preprocessing scale and std and the "
        "model's input scale"
    )


def camera_params(camera: Camera, pre: Preprocessing, input_scale: float, input_zero_point: int,
                  out_h: int, out_w: int, out_c: int) -> CameraParams:
    """The device constants turning frames of ``camera`` into the model's int8 input."""
    if out_c not in (1, 3):
        raise UsageError(
            f"{OPTION}: the model input has {out_c} channels; camera input supports 1 (gray) "
            "or 3 (colour)"
        )
    if pre.channels != out_c:
        raise UsageError(
            f"{OPTION}: the preprocessing is {pre.color_mode} ({pre.channels} channel(s)) but "
            f"the model input has {out_c}; fix the model's preprocessing"
        )
    if tuple(pre.size) != (out_h, out_w):
        raise UsageError(
            f"{OPTION}: the preprocessing size {pre.size[0]}x{pre.size[1]} (HxW) differs from "
            f"the model input {out_h}x{out_w}; fix the model's preprocessing"
        )
    if not (math.isfinite(input_scale) and input_scale > 0):
        raise UsageError(f"{OPTION}: model input scale {input_scale!r} must be positive")
    if not -128 <= input_zero_point <= 127:
        raise UsageError(f"{OPTION}: model input zero point {input_zero_point} is not int8")
    bilinear = camera.resize == "bilinear"
    (xs, xl, xo, xn), (ys, yl, yo, yn) = _geometry(camera, out_h, out_w, pre)
    cols = _axis(out_w, camera.width, xs, xl, xo, xn, bilinear)
    rows = _axis(out_h, camera.height, ys, yl, yo, yn, bilinear)
    bpp = camera.bytes_per_pixel
    x_off0 = tuple(c[0] * bpp if c else 0 for c in cols)
    x_off1 = tuple(c[1] * bpp if c else 0 for c in cols)
    x_frac = tuple(c[2] if c else 0 for c in cols)
    y_first = tuple(r[0] if r else 0 for r in rows)
    y_last = tuple(r[1] if r else -1 for r in rows)
    y_frac = tuple(r[2] if r else 0 for r in rows)
    ring = max([1, *(r[1] - r[0] + 1 for r in rows if r)])
    # x = (v/65536 * scale - mean) / std;  q = x / input_scale + zp  =  a*v + b. An rgb565
    # model channel's v counts field units: a includes the field's levels per unit.
    swap = out_c == 3 and pre.channel_order == "bgr"
    rgb565 = camera.format in ("rgb565le", "rgb565be") and out_c == 3
    levels = (RGB565_LEVELS[::-1] if swap else RGB565_LEVELS) if rgb565 else (1,) * out_c
    mult, bias, shift = _quantizers([
        (pre.scale / (pre.std[c] * input_scale * 65536.0),
         input_zero_point - pre.mean[c] / (pre.std[c] * input_scale),
         float(levels[c])) for c in range(out_c)])
    pad = tuple(_quantize(np.zeros(1, dtype=np.int64), m, b, shift)[0].item()
                for m, b in zip(mult, bias, strict=True))
    return CameraParams(
        format=FORMATS.index(camera.format), frame_width=camera.width,
        frame_height=camera.height, row_bytes=camera.row_bytes, out_h=out_h, out_w=out_w,
        out_c=out_c, resize=RESIZES.index(camera.resize),
        swap_rb=int(swap), ring_rows=ring,
        x_lo=xo, x_hi=xo + xn, y_lo=yo, y_hi=yo + yn, x_off0=x_off0, x_off1=x_off1,
        x_frac=x_frac, y_first=y_first, y_last=y_last, y_frac=y_frac, multiplier=mult,
        bias=bias, shift=shift, pad=pad)


# ---- the host mirror: exactly the device's integer arithmetic ----

def _u8_from_q8(t: np.ndarray) -> np.ndarray:
    """A value in 1/256 units -> 0..255, clamped (the device tests the sign before shifting)."""
    return np.clip(t >> 8, 0, 255)


def _decode(row: np.ndarray, offs: np.ndarray, fmt: str, gray_out: bool) -> np.ndarray:
    """Pixels at byte offsets ``offs`` of one frame row -> int64 (n, 3) RGB or (n, 1) gray;
    for yuyv (n, 3) Y, U, V or (n, 1) Y, converted by _yuv_to_rgb after the interpolation; for
    rgb565 to 3 channels the 5/6/5-bit fields, scaled to levels by the quantization."""
    row = row.astype(np.int64)
    if fmt == "gray8":
        return row[offs][:, None]
    if fmt == "rgb888":
        rgb = np.stack([row[offs], row[offs + 1], row[offs + 2]], axis=1)
    elif fmt in ("rgb565le", "rgb565be"):
        lo, hi = (row[offs], row[offs + 1]) if fmt == "rgb565le" else (row[offs + 1], row[offs])
        u = lo | (hi << 8)
        r5, g6, b5 = u >> 11, (u >> 5) & 63, u & 31
        if not gray_out:  # the fields themselves; RGB565_LEVELS scales them in the multipliers
            return np.stack([r5, g6, b5], axis=1)
        rgb = np.stack([(r5 << 3) | (r5 >> 2), (g6 << 2) | (g6 >> 4), (b5 << 3) | (b5 >> 2)],
                       axis=1)
    else:  # yuyv: Y of this pixel, U and V of its pair; converted after interpolation
        if gray_out:
            return row[offs][:, None]
        pair = offs & ~3
        return np.stack([row[offs], row[pair + 1], row[pair + 3]], axis=1)
    if gray_out:
        return ((rgb @ np.asarray(LUMA, dtype=np.int64)) + 128)[:, None] >> 8
    return rgb


def _yuv_to_rgb(v: np.ndarray, gray_out: bool) -> np.ndarray:
    """Interpolated Y, U, V (or Y) in 1/65536 levels -> RGB (or gray) in 1/65536 levels,
    limited-range BT.601: the 8-bit matrix (298, 409, -100, -208, 516)/256 applied at 1/256
    level precision, so the result stays in 1/65536 units without rounding."""
    q = v >> 8
    c = 298 * (q[:, :1] - (16 << 8))
    if gray_out:
        return np.clip(c, 0, V_MAX)
    d, e = q[:, 1:2] - (128 << 8), q[:, 2:3] - (128 << 8)
    return np.clip(np.concatenate([c + 409 * e, c - 100 * d - 208 * e, c + 516 * d], axis=1),
                   0, V_MAX)


def _quantize(v: np.ndarray, mult: int, bias: int, shift: int) -> np.ndarray:
    hi = (v.astype(np.uint64) * np.uint64(mult)) >> np.uint64(32)
    t = ((hi + np.uint64(bias)) >> np.uint64(shift)).astype(np.int64) - QUANT_OFFSET
    return np.clip(t, -128, 127).astype(np.int8)


def _frame_array(frame: bytes | np.ndarray, params: CameraParams) -> np.ndarray:
    data = np.frombuffer(frame, dtype=np.uint8) if isinstance(frame, bytes | bytearray) \
        else np.asarray(frame, dtype=np.uint8).reshape(-1)
    if data.size != params.frame_bytes:
        raise InputFileError(
            f"camera frame has {data.size} bytes; a {params.format_name} "
            f"{params.frame_width}x{params.frame_height} frame has {params.frame_bytes}"
        )
    return data.reshape(params.frame_height, params.row_bytes)


def _field_levels(params: CameraParams) -> tuple[float, ...]:
    """Pixel levels per unit of each model channel's interpolated value (rgb565 to 3 channels
    interpolates its 5/6/5-bit fields: 255/31, 255/63; everything else: 1)."""
    if params.format_name in ("rgb565le", "rgb565be") and params.out_c == 3:
        levels = RGB565_LEVELS[::-1] if params.swap_rb else RGB565_LEVELS
        return tuple(float(v) for v in levels)
    return (1.0,) * params.out_c


def interpolated_row(frame: bytes | np.ndarray, params: CameraParams, y: int) -> np.ndarray:
    """Model row y before normalization: float64 (out_w, out_c) in 1/65536 pixel levels,
    channels in the model's order; pad pixels are 0 (black). Integers (exact) except for
    rgb565 to 3 channels, whose interpolated fields are scaled by 255/31 and 255/63."""
    return _raw_row(frame, params, y) * np.asarray(_field_levels(params))


def _raw_row(frame: bytes | np.ndarray, params: CameraParams, y: int) -> np.ndarray:
    """interpolated_row as the device has it: int64, rgb565 fields not scaled."""
    data = _frame_array(frame, params)
    first, last = params.row_span(y)
    v = np.zeros((params.out_w, params.out_c), dtype=np.int64)
    if last < first:
        return v
    lo, hi = params.x_lo, params.x_hi
    fmt = params.format_name
    gray_out = params.out_c == 1
    o0 = np.asarray(params.x_off0[lo:hi], dtype=np.int64)
    top = data[first]
    if params.resize == 0:
        p = _decode(top, o0, fmt, gray_out) << 16
    else:
        o1 = np.asarray(params.x_off1[lo:hi], dtype=np.int64)
        fx = np.asarray(params.x_frac[lo:hi], dtype=np.int64)[:, None]
        bot = data[last]
        fy = params.y_frac[y]
        p00, p01 = _decode(top, o0, fmt, gray_out), _decode(top, o1, fmt, gray_out)
        p10, p11 = _decode(bot, o0, fmt, gray_out), _decode(bot, o1, fmt, gray_out)
        t = (p00 << 8) + (p01 - p00) * fx
        b = (p10 << 8) + (p11 - p10) * fx
        p = (t << 8) + (b - t) * fy
    if fmt == "yuyv":
        p = _yuv_to_rgb(p, gray_out)
    if params.swap_rb:
        p = p[:, ::-1]
    v[lo:hi] = p  # a gray pixel for a 3-channel model broadcasts (replicates)
    return v


def mirror_row(frame: bytes | np.ndarray, params: CameraParams, y: int) -> np.ndarray:
    """Model row y as the device computes it: int8 (out_w, out_c)."""
    v = _raw_row(frame, params, y)
    out = np.empty((params.out_w, params.out_c), dtype=np.int8)
    for c in range(params.out_c):
        out[:, c] = _quantize(v[:, c], params.multiplier[c], params.bias[c], params.shift)
    first, last = params.row_span(y)
    if last < first:
        out[:] = params.pad
    else:
        out[: params.x_lo] = params.pad
        out[params.x_hi:] = params.pad
    return out


def mirror(frame: bytes | np.ndarray, params: CameraParams) -> np.ndarray:
    """The whole model input as the device computes it: int8 (out_h, out_w, out_c)."""
    return np.stack([mirror_row(frame, params, y) for y in range(params.out_h)])


# ---- frames on the host ----

def _encode(rgb: np.ndarray, gray: np.ndarray, fmt: str) -> bytes:
    """uint8 (H, W, 3) RGB (and its (H, W) gray) -> frame bytes in ``fmt``."""
    if fmt == "gray8":
        return gray.astype(np.uint8).tobytes()
    if fmt == "rgb888":
        return rgb.astype(np.uint8).tobytes()
    c = rgb.astype(np.int64)
    r, g, b = c[..., 0], c[..., 1], c[..., 2]
    if fmt in ("rgb565le", "rgb565be"):
        u = ((r >> 3) << 11) | ((g >> 2) << 5) | (b >> 3)
        return u.astype("<u2" if fmt == "rgb565le" else ">u2").tobytes()
    # yuyv, limited-range BT.601 (the inverse of the decoder's matrix); U and V from the mean
    # of the pair's two pixels.
    y = ((66 * r + 129 * g + 25 * b + 128) >> 8) + 16
    rp = (r[:, 0::2] + r[:, 1::2] + 1) >> 1
    gp = (g[:, 0::2] + g[:, 1::2] + 1) >> 1
    bp = (b[:, 0::2] + b[:, 1::2] + 1) >> 1
    u = ((-38 * rp - 74 * gp + 112 * bp + 128) >> 8) + 128
    v = ((112 * rp - 94 * gp - 18 * bp + 128) >> 8) + 128
    out = np.empty((y.shape[0], y.shape[1] * 2), dtype=np.int64)
    out[:, 0::4], out[:, 1::4], out[:, 2::4], out[:, 3::4] = y[:, 0::2], u, y[:, 1::2], v
    return np.clip(out, 0, 255).astype(np.uint8).tobytes()


def frame_from_image(image: Image.Image | str | Path, camera: Camera) -> bytes:
    """An ordinary image as ``camera`` would deliver it: resized (Pillow bilinear) so it covers
    camera.width x camera.height with its aspect kept, centre-cropped, then encoded (gray8 with
    Pillow's "L" conversion, yuyv with limited-range BT.601). An image already of the frame's
    size is not resampled."""
    if not isinstance(image, Image.Image):
        path = Path(image)
        if not path.is_file():
            raise InputFileError(f"image {path} does not exist or is not a file; check the path")
        try:
            with Image.open(path) as im:
                image = im.convert("RGB")
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
            raise InputFileError(f"image {path} cannot be read ({exc}); replace it") from None
    image = image.convert("RGB")
    W, H = camera.width, camera.height
    iw, ih = image.size
    if (iw, ih) != (W, H):
        scale = max(Fraction(W, iw), Fraction(H, ih))
        nw, nh = max(W, math.ceil(iw * scale)), max(H, math.ceil(ih * scale))
        image = image.resize((nw, nh), Image.Resampling.BILINEAR)
        left, top = (nw - W) // 2, (nh - H) // 2
        image = image.crop((left, top, left + W, top + H))
    rgb = np.asarray(image, dtype=np.uint8)
    gray = np.asarray(image.convert("L"), dtype=np.uint8)
    return _encode(rgb, gray, camera.format)


def read_frame(path: str | Path, camera: Camera) -> bytes:
    """A raw frame file of exactly ``camera.frame_bytes`` bytes."""
    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"camera frame {path} does not exist or is not a file")
    data = path.read_bytes()
    if len(data) != camera.frame_bytes:
        raise InputFileError(
            f"camera frame {path} has {len(data)} bytes, expected {camera.width} x "
            f"{camera.height} x {camera.bytes_per_pixel} = {camera.frame_bytes} bytes for "
            f"{camera.format} {camera.width}x{camera.height}; check --camera or the file"
        )
    return data


def frame_gradient(camera: Camera, seed: int = 0) -> bytes:
    """A deterministic synthetic frame. Channel c of pixel (x, y) is
    ``(x*GRADIENT_X[c] + y*GRADIENT_Y[c] + seed*GRADIENT_SEED[c]) & 0xff``, used as the
    format's fields directly: rgb888 R, G, B; gray8 channel 0; rgb565 the top 5/6/5 bits of
    channels 0/1/2; yuyv Y = channel 0 of the pixel, U = channel 1 and V = channel 2 of the
    pair's first (even) pixel. sqz_camera_gradient_byte() in C gives the same bytes."""
    x = np.arange(camera.width, dtype=np.int64)[None, :]
    y = np.arange(camera.height, dtype=np.int64)[:, None]
    ch = [(x * GRADIENT_X[c] + y * GRADIENT_Y[c] + ((int(seed) * GRADIENT_SEED[c]) & 0xFF)) & 0xFF
          for c in range(3)]
    fmt = camera.format
    if fmt == "gray8":
        return ch[0].astype(np.uint8).tobytes()
    if fmt == "rgb888":
        return np.stack(ch, axis=-1).astype(np.uint8).tobytes()
    if fmt in ("rgb565le", "rgb565be"):
        u = ((ch[0] >> 3) << 11) | ((ch[1] >> 2) << 5) | (ch[2] >> 3)
        return u.astype("<u2" if fmt == "rgb565le" else ">u2").tobytes()
    out = np.empty((camera.height, camera.width * 2), dtype=np.uint8)
    out[:, 0::2] = ch[0]
    out[:, 1::4] = ch[1][:, 0::2]
    out[:, 3::4] = ch[2][:, 0::2]
    return out.tobytes()
