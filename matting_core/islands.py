"""Dropping unsure islands: separate patches of alpha with almost no solid foreground in them.

A weak coarse network's worst error is scenery kept as person: a door, a wardrobe or a plant gets a grey
alpha of 0.4-0.8 that neither clearing (``regions.clear_faint_background``: it keeps alpha above 0.3) nor
refinement removes. On the default model's held-out 1080p room composites such patches are 37% of the SAD,
and they look alike: apart from the person, and with almost no cell of alpha near 1 in them, while a person,
even a second or a half-hidden one, has a solid core. So the final alpha is split into islands (8-connected
cells of the 1/8 grid with mean alpha above ``PRESENT``), and every island except the largest whose share of
solid cells (mean alpha above ``SOLID``) is under ``min_solid`` is set to 0, with its one-cell rim of faint
alpha. The largest island is always kept: a small or blurred person may have no solid cell at all.

Connected components need the host: the grid is 1/64 of the frame (8 KiB at 1080p), so one small download
and upload per frame, done with OpenCV's labelling (``cv2.connectedComponents``).
"""

from __future__ import annotations

import cv2
import numpy as np

#: A cell whose mean alpha is above this belongs to an island.
PRESENT = 0.1
#: A cell whose mean alpha is above this is solid foreground.
SOLID = 0.95


def unsure_island_cells(cells: np.ndarray, min_solid: float) -> np.ndarray:
    """Cells to clear on one (h, w) grid of mean alpha per cell: the islands other than the largest (by alpha
    mass) whose share of solid cells is under ``min_solid``, each grown by one cell into the empty cells around
    it (its faint rim). ``min_solid`` <= 0 clears nothing."""
    out = np.zeros(cells.shape, bool)
    if min_solid <= 0 or cells.size == 0:
        return out
    count, labels = cv2.connectedComponents((cells > PRESENT).astype(np.uint8), connectivity=8)
    if count <= 2:  # background and at most one island: nothing to choose between
        return out
    flat = labels.ravel()
    size = np.bincount(flat, minlength=count)
    solid = np.bincount(flat, weights=(cells > SOLID).ravel(), minlength=count) / np.maximum(size, 1)
    mass = np.bincount(flat, weights=cells.ravel().astype(np.float64), minlength=count)
    mass[0] = -1.0
    drop = solid < min_solid
    drop[0] = False
    drop[int(mass.argmax())] = False
    if not drop.any():
        return out
    islands = drop[labels]
    rim = cv2.dilate(islands.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool) & (labels == 0)
    return islands | rim


def cell_means(alpha: np.ndarray, r: int) -> np.ndarray:
    """(H, W) float32 -> (ceil(H / r), ceil(W / r)) mean of each r x r cell; partial cells at the bottom/right
    average what they hold (as ``avg_pool2d(..., ceil_mode=True)`` does). OpenCV's area resize of the
    zero-padded frame is the exact box mean for a whole-number factor, and ~7x faster than a numpy reshape."""
    h, w = alpha.shape
    hc, wc = -(-h // r), -(-w // r)
    padded = cv2.copyMakeBorder(alpha, 0, hc * r - h, 0, wc * r - w, cv2.BORDER_CONSTANT, value=0.0)
    means = cv2.resize(padded, (wc, hc), interpolation=cv2.INTER_AREA)
    if (hc * r, wc * r) != (h, w):
        rows = np.minimum(r, h - np.arange(hc) * r)
        cols = np.minimum(r, w - np.arange(wc) * r)
        means = means * np.float32(r * r) / np.outer(rows, cols).astype(np.float32)
    return means


def drop_unsure_islands_numpy(alpha: np.ndarray, min_solid: float, r: int = 8) -> np.ndarray:
    """``alpha`` (B, 1, H, W) float32 with each image's unsure islands (:func:`unsure_island_cells`) set to 0:
    what ``regions.drop_unsure_islands`` does to a tensor, for the ONNX runtime."""
    if min_solid <= 0:
        return alpha
    h, w = alpha.shape[-2:]
    clear = np.stack([unsure_island_cells(cell_means(np.ascontiguousarray(a[0], np.float32), r), min_solid)
                      for a in alpha])
    if not clear.any():
        return alpha
    out = alpha.astype(np.float32, copy=True)
    out[clear.repeat(r, axis=1).repeat(r, axis=2)[:, None, :h, :w]] = 0.0
    return out


__all__ = ["PRESENT", "SOLID", "cell_means", "drop_unsure_islands_numpy", "unsure_island_cells"]
