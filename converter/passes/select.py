"""Kernel selection: each conv and pool gets the C row kernel of the board's architecture that
handles it best (converter.arch), which also fixes its weight layout."""

from __future__ import annotations

import dataclasses

from ..arch import select_conv, select_pool
from ..ir.steps import ConvStep, Lowered, PoolStep


def select_kernels(lw: Lowered, arch: str) -> Lowered:
    steps = []
    for s in lw.steps:
        if isinstance(s, ConvStep):
            s = dataclasses.replace(s, kernel=select_conv(s, arch).symbol)
        elif isinstance(s, PoolStep):
            s = dataclasses.replace(s, kernel=select_pool(s, arch).symbol)
        steps.append(s)
    return dataclasses.replace(lw, steps=tuple(steps))
