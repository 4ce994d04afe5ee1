"""k nearest uncertain regions (paper 3.3, "KNN extraction").

Distances are Euclidean between integer cell coordinates, within the same image only, self excluded.
Two implementations with one contract: a KD-tree (``scipy.spatial.cKDTree``) for CPU inference, as the paper
says, and a dense pairwise distance + top-k on tensors for training and for the GPU (no host sync).
When an image has fewer than k+1 regions, the missing neighbours are filled with the region itself and
flagged invalid, so attention can mask them out.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from matting_core.kdtree_knn import kdtree_knn


@dataclass(frozen=True)
class Neighbours:
    """``index`` (N, k) LongTensor of neighbour rows; ``valid`` (N, k) bool (False = padding, masked out)."""

    index: torch.Tensor
    valid: torch.Tensor


def _empty(n: int, k: int, device: torch.device) -> Neighbours:
    own = torch.arange(n, device=device).unsqueeze(1).expand(n, k).clone()
    return Neighbours(own, torch.zeros(n, k, dtype=torch.bool, device=device))


def knn_pairwise(coords: torch.Tensor, batch: torch.Tensor, k: int, *, images: int | None = None) -> Neighbours:
    """Dense pairwise search on tensors, one distance matrix per image. ``coords`` (N, 2), ``batch`` (N,).

    Regions must be grouped by image (as the selectors return them). Each image's regions are laid into a
    padded (B, M, 2) block, so memory is O(B * M^2) rather than O(N^2) for the whole batch. With a fixed
    region budget every image has the same count; passing the number of ``images`` then says so up front,
    and the search makes no host sync at all (CUDA-graph safe).
    Equally distant neighbours are ranked by index: the sort key is the exact integer
    ``squared distance * M + slot``, so every device and the KD-tree pick the same cells.
    """
    n = coords.shape[0]
    if n == 0:
        return _empty(0, k, coords.device)
    if images is not None and n % images:
        raise ValueError(f"{n} regions do not split evenly over {images} images")
    bsz = images if images is not None else int(batch[-1].item()) + 1
    equal_counts = images is not None or (
        n % bsz == 0 and bool((batch.view(bsz, -1) == torch.arange(bsz, device=batch.device)[:, None]).all())
    )
    if equal_counts:
        m = n // bsz
        slot = torch.arange(n, device=coords.device) % m
    else:
        counts = torch.bincount(batch, minlength=bsz)
        m = int(counts.max().item())
        starts = torch.cumsum(counts, 0) - counts
        slot = torch.arange(n, device=coords.device) - starts[batch]
    kk = min(k, m - 1)
    out = _empty(n, k, coords.device)
    if kk <= 0:
        return out
    grid = torch.zeros((bsz, m, 2), device=coords.device, dtype=torch.long)
    rows = torch.full((bsz, m), -1, device=coords.device, dtype=torch.long)
    grid[batch, slot] = coords.round().long()
    rows[batch, slot] = torch.arange(n, device=coords.device)
    never = torch.iinfo(torch.long).max
    key = (grid[:, :, None, :] - grid[:, None, :, :]).square().sum(-1) * m + torch.arange(m, device=coords.device)
    key = key.masked_fill((rows < 0)[:, None, :], never)  # padding slots are never neighbours
    key.diagonal(dim1=1, dim2=2).fill_(never)  # nor is the region itself
    best, j = torch.topk(key, kk, dim=2, largest=False)  # (B, M, kk)
    best, j = best[batch, slot], j[batch, slot]  # (N, kk)
    valid = best < never
    nb_rows = rows[batch[:, None], j]
    own = torch.arange(n, device=coords.device)[:, None].expand(n, kk)
    out.index[:, :kk] = torch.where(valid, nb_rows, own)
    out.valid[:, :kk] = valid
    return out


def knn_kdtree(coords: torch.Tensor, batch: torch.Tensor, k: int) -> Neighbours:
    """KD-tree search per image (scipy, CPU). Same contract and tie-break as :func:`knn_pairwise`."""
    index, valid = kdtree_knn(coords.detach().cpu().numpy(), batch.detach().cpu().numpy(), k)
    return Neighbours(torch.from_numpy(index).to(coords.device), torch.from_numpy(valid).to(coords.device))


def find_neighbours(
    coords: torch.Tensor, batch: torch.Tensor, k: int, method: str = "auto", *, images: int | None = None
) -> Neighbours:
    """``method``: "pairwise", "kdtree", or "auto" (KD-tree on CPU outside autograd, pairwise otherwise).

    ``images``: the batch has that many images with equally many regions each (a fixed region budget); the
    pairwise search then needs no host sync.
    """
    if method == "auto":
        method = "kdtree" if coords.device.type == "cpu" and not torch.is_grad_enabled() else "pairwise"
    if method == "kdtree":
        return knn_kdtree(coords, batch, k)
    if method == "pairwise":
        return knn_pairwise(coords, batch, k, images=images)
    raise ValueError(f"unknown KNN method {method!r}; use 'auto', 'kdtree' or 'pairwise'")
