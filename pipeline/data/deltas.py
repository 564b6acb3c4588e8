"""Delta features with Kaldi's ``add-deltas`` semantics.

Order-1 deltas are a regression over ±window frames,
``d_t = Σ_{n=1..W} n (c_{t+n} − c_{t−n}) / (2 Σ_{n=1..W} n²)``; the order-k kernel is the
order-1 kernel convolved with the order-(k−1) kernel, and every kernel is applied to the
*original* features with frame indices clamped to ``[0, T−1]`` (edge frames replicated).
"""

from __future__ import annotations

from typing import List

import numpy as np


def delta_kernels(order: int = 2, window: int = 2) -> List[np.ndarray]:
    """Kernels for orders 0..order; kernel k has length 2·k·window + 1, centred."""
    denom = 2.0 * sum(n * n for n in range(1, window + 1))
    first = np.arange(-window, window + 1, dtype=np.float64) / denom
    kernels = [np.ones(1)]
    for _ in range(order):
        kernels.append(np.convolve(kernels[-1], first))
    return kernels


def add_deltas(feats: np.ndarray, order: int = 2, window: int = 2) -> np.ndarray:
    """Append delta and delta-delta features.

    Args:
        feats: (T, D) features.
        order: highest delta order (2 → Δ and ΔΔ).
        window: regression half-window.

    Returns:
        (T, D·(order+1)) float32: ``[c, Δc, ΔΔc]``.
    """
    x = np.asarray(feats, dtype=np.float64)
    T = x.shape[0]
    out = [x]
    for kernel in delta_kernels(order, window)[1:]:
        half = len(kernel) // 2
        idx = np.clip(np.arange(T)[:, None] + np.arange(-half, half + 1)[None, :], 0, T - 1)
        out.append(np.einsum("tkd,k->td", x[idx], kernel))
    return np.concatenate(out, axis=1).astype(np.float32)
