"""The KD-tree neighbour search on numpy arrays (no torch import: the ONNX Runtime path uses it too).

k nearest regions of the same image by Euclidean distance between integer cell coordinates, self
excluded; equally distant cells are ranked by index (as ``matting_core.neighbours.knn_pairwise`` does on
tensors), so every backend picks exactly the same neighbours.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

#: Extra candidates fetched so that cells tied with the k-th one can be re-ranked by index (an integer
#: grid has at most 12 cells at one distance within the radii a k of 8-16 reaches).
TIE_SPARE = 16


def kdtree_knn(coords: np.ndarray, batch: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """``coords`` (N, 2) cells, ``batch`` (N,) image of each -> (index (N, k) int64, valid (N, k) bool).

    Missing neighbours (an image with <= k regions) point at the region itself and are flagged invalid.
    """
    n = coords.shape[0]
    index = np.repeat(np.arange(n, dtype=np.int64)[:, None], k, axis=1)
    valid = np.zeros((n, k), dtype=bool)
    c = np.rint(coords).astype(np.int64)
    for image in np.unique(batch):
        rows = np.flatnonzero(batch == image)
        m = rows.shape[0]
        kk = min(k, m - 1)
        if kk <= 0:
            continue
        q = min(m, kk + 1 + TIE_SPARE)
        _, nn_idx = cKDTree(c[rows]).query(c[rows], k=q)
        nn_idx = np.asarray(nn_idx).reshape(m, q)
        d2 = ((c[rows][nn_idx] - c[rows][:, None, :]) ** 2).sum(-1)
        d2[nn_idx == np.arange(m)[:, None]] = np.iinfo(np.int64).max // (2 * m)  # self ranks last
        order = np.argsort(d2 * m + nn_idx, axis=1, kind="stable")[:, :kk]
        index[rows, :kk] = rows[np.take_along_axis(nn_idx, order, axis=1)]
        valid[rows, :kk] = True
    return index, valid
