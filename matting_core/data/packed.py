"""Training batches composited on the GPU from a packed folder (``recipes/pack_data.py``).

A from-scratch Swin-T needs millions of samples, and on a GPU machine the CPU data pipeline, not the GPU,
is the limit. So everything is decoded once into GPU memory (people: RGB + teacher alpha + an estimated
foreground, letterboxed into square canvases; backgrounds: square tiles) and every batch is made there with
one ``grid_sample`` per layer: people at many scales and positions (bottom-anchored like a webcam user, or
anywhere), sometimes two people, on real room scenes, on person-free cut-outs of the photos' own
backgrounds, rarely on wallpapers, or the original photo with its own background; then lighting/colour
jitter, defocus blur and sensor noise.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from matting_core.data.batch import TrainBatch
from matting_core.data.trimap import trimap_from_alpha_torch


@dataclass(frozen=True)
class PackedMix:
    """Probabilities of each kind of sample (must sum to 1) and augmentation strengths."""

    scene: float = 0.50
    own_background: float = 0.15
    wallpaper: float = 0.07
    original_photo: float = 0.28
    second_person: float = 0.2
    # Of the composites (not the whole photos), the share left without a person: the room alone, alpha 0
    # everywhere. The model's worst failure is marking furniture as a person; a frame that always holds a
    # person lets it get away with "the most structured thing is the person".
    empty: float = 0.0
    person_height: tuple[float, float] = (0.35, 1.6)  # person height / frame height
    bottom_anchored: float = 0.65
    # Paste people whom the photographer's frame cut at the top or sides too (most head-and-shoulder crops:
    # 1,163 of the 1,300 in the pack), placed so that each cut edge stays outside the new frame, as in a
    # webcam picture whose shoulders run off its sides. Off, such people appear only as whole photos with
    # their own backgrounds, and room composites are ~73% full-body street photos.
    frame_cut_people: bool = False
    # ... but only those whose matte covers less than this share of their photo: a tight face crop (median
    # cover 0.73 among the cut people) pasted with its cuts outside fills the whole frame and shows no room.
    frame_cut_max_cover: float = 0.6
    noise_std: float = 0.03
    blur: float = 0.3
    # Share of batches drawn as wide frames (width / height = wide_aspect) instead of squares. A 1080p or
    # 720p webcam frame reaches the coarse network as 448 x 800 (28 x 50 tokens) with a person in the middle
    # and room on both sides; square training frames never show that much room beside a person.
    wide_share: float = 0.0
    wide_aspect: float = 16 / 9
    # (key, weight) pairs: a person whose ``source/stem`` contains ``key`` is drawn ``weight`` times as often,
    # as first person, second person and whole photo alike (several matching keys multiply). The largest
    # held-out error is a kind of person the pack holds few of (face masks: 9% of the first people, 8 of 40
    # 1080p composites averaged SAD 94 against 29 for the rest); this asks for more of them without repacking.
    oversample: tuple[tuple[str, float], ...] = ()

    def __post_init__(self) -> None:
        """Reject a mix the sampler would silently misread: it draws the kind from cumulative shares, so
        shares that do not sum to 1 starve or swell the last kind instead of failing."""
        kinds = {"scene": self.scene, "own_background": self.own_background, "wallpaper": self.wallpaper,
                 "original_photo": self.original_photo}
        if min(kinds.values()) < 0.0 or abs(sum(kinds.values()) - 1.0) > 1e-6:
            shown = ", ".join(f"{k}={v}" for k, v in kinds.items())
            raise ValueError(f"the sample-kind shares must be non-negative and sum to 1, got {shown}")
        for name in ("second_person", "empty", "bottom_anchored", "blur", "wide_share"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} is a probability and must be between 0 and 1, got {value}")
        if not 0.0 < self.frame_cut_max_cover <= 1.0:
            raise ValueError(f"frame_cut_max_cover is a share of the photo and must be in (0, 1], "
                             f"got {self.frame_cut_max_cover}")
        low, high = self.person_height
        if not 0.0 < low <= high:
            raise ValueError(f"person_height must be a (low, high) range with 0 < low <= high, got {self.person_height}")
        if self.noise_std < 0.0:
            raise ValueError(f"noise_std must not be negative, got {self.noise_std}")
        if self.wide_aspect < 1.0:
            raise ValueError(f"wide_aspect is width / height of a landscape frame and must be >= 1, "
                             f"got {self.wide_aspect}")
        for key, weight in self.oversample:
            if not key or not weight > 0.0:
                raise ValueError(f"oversample entries are (non-empty key, weight > 0), got ({key!r}, {weight})")

    def person_weights(self, names: list[str]) -> np.ndarray | None:
        """Draw weight of each person named ``source/stem`` (None: uniform, the draw every earlier run made).

        A key that matches nobody is an error, not a silent no-op: a typo would otherwise train a whole
        window on the mix it meant to change.
        """
        if not self.oversample:
            return None
        weights = np.ones(len(names))
        for key, weight in self.oversample:
            hit = np.array([key in name for name in names], dtype=bool)
            if not hit.any():
                example = f", e.g. {names[0]!r}" if names else ""
                raise ValueError(f"oversample key {key!r} matches no packed person (keys match 'source/stem'{example})")
            weights[hit] *= weight
        return weights

    def with_photo_share(self, share: float) -> PackedMix:
        """The same mix with ``share`` of the batch as whole photos, the difference taken from room scenes.

        Every coarse-only window has traded held-out photos for room composites; this is the knob that asks
        for more photos without touching the other kinds' proportions.
        """
        if share == self.original_photo:
            return self  # bit for bit the same thresholds, so a default run's batches are what they were
        scene = self.scene + self.original_photo - share
        if not 0.0 <= share <= 1.0 or scene < 0.0:
            raise ValueError(f"whole-photo share must be between 0 and {self.scene + self.original_photo:.2f} "
                             f"(the scene and photo shares together), got {share}")
        return replace(self, scene=scene, original_photo=share)


def write_blob(folder: Path, name: str, items: list[bytes]) -> list[list[int]]:
    """Concatenate encoded files into ``folder/name.bin``; returns their ``[offset, length]`` index entries.

    The writing half of the pack layout this module reads (``recipes/pack_data.py`` makes packs with it).
    """
    offsets, pos = [], 0
    with open(folder / f"{name}.bin", "wb") as f:
        for item in items:
            f.write(item)
            offsets.append([pos, len(item)])
            pos += len(item)
    return offsets


def _decode(blob: bytes, flags: int) -> np.ndarray:
    img = cv2.imdecode(np.frombuffer(blob, np.uint8), flags)
    if img is None:
        raise ValueError("undecodable image in pack")
    return img


def _letterbox(img: np.ndarray, size: int) -> tuple[np.ndarray, int, int]:
    """Centre ``img`` in a size x size canvas of zeros; returns the canvas and the content's h, w."""
    h, w = img.shape[:2]
    s = min(1.0, size / max(h, w))
    if s < 1.0:
        img = cv2.resize(img, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
        h, w = img.shape[:2]
    canvas = np.zeros((size, size) + img.shape[2:], img.dtype)
    y0, x0 = (size - h) // 2, (size - w) // 2
    canvas[y0 : y0 + h, x0 : x0 + w] = img
    return canvas, h, w


def _border_touch(alpha: np.ndarray, h: int, w: int, frac: float = 0.03) -> tuple[bool, bool, bool, bool]:
    """Whether the matte of a letterboxed photo reaches its top, left, right, bottom border."""
    c = alpha.shape[0]
    y0, x0 = (c - h) // 2, (c - w) // 2
    a = alpha[y0 : y0 + h, x0 : x0 + w] > 76
    edges = (a[:2].mean(), a[:, :2].mean(), a[:, -2:].mean(), a[-2:].mean())
    return tuple(bool(e > frac) for e in edges)


def _box_mean(x: torch.Tensor, k: int) -> torch.Tensor:
    """k x k zero-padded box mean, equal to ``avg_pool2d(x, k, 1, k // 2)``, as running sums along each axis.

    O(1) a pixel whatever k. On a 2-core CPU it took foreground estimation of the full pack (every CPU
    training window's set-up) from ~200 s to ~145 s; the rest is the memory traffic of the other passes.
    """
    for dim in (-1, -2):
        # One extra leading zero so that window i is c[i + k] - c[i].
        c = F.pad(x, (k // 2 + 1, k // 2) if dim == -1 else (0, 0, k // 2 + 1, k // 2)).cumsum(dim)
        n = x.shape[dim]
        x = (c.narrow(dim, k, n) - c.narrow(dim, 0, n)) / k
    return x


def estimate_foreground(rgb: torch.Tensor, alpha: torch.Tensor, iterations: int = 4) -> torch.Tensor:
    """Foreground colours where alpha is soft, by normalised convolution from confidently-foreground pixels.

    The raw photo's pixels at the edge of a person are mixed with the old background; pasting them onto a new
    one makes halos. A multi-scale normalised convolution of the confident-foreground colours (a fast
    approximation of the multilevel estimate pymatting computes on the CPU) gives edge pixels plausible pure
    foreground colours. rgb (N, 3, H, W), alpha (N, 1, H, W) in [0, 1].
    """
    conf = (alpha > 0.95).float()
    fg = rgb * conf
    est_num, est_den = fg.clone(), conf.clone()
    for i in range(iterations):
        k = 2 ** (i + 1) + 1
        est_num = est_num + _box_mean(fg, k) * 0.5**i
        est_den = est_den + _box_mean(conf, k) * 0.5**i
    est = est_num / est_den.clamp_min(1e-4)
    filled = torch.where(est_den > 1e-4, est, rgb)
    return torch.where(alpha > 0.95, rgb, filled).clamp(0, 1)


def _box_blur5(x: torch.Tensor) -> torch.Tensor:
    """5x5 box blur as a 5x1 then a 1x5 pass (exact: the valid window is a rectangle), ~2.5x cheaper."""
    x = F.avg_pool2d(x, (5, 1), stride=1, padding=(2, 0), count_include_pad=False)
    return F.avg_pool2d(x, (1, 5), stride=1, padding=(0, 2), count_include_pad=False)


def _jitter(img: torch.Tensor, gains: torch.Tensor, sat: torch.Tensor, gamma: torch.Tensor) -> torch.Tensor:
    """Saturation, per-channel gain and gamma of (n, 3, H, W) images, with (n, ., 1, 1) parameters."""
    gray = img.mean(1, keepdim=True)
    img = (gray + (img - gray) * sat) * gains
    return img.clamp(1e-4, 1).pow(gamma)


class PackedCompositeStream:
    """Endless iterator of :class:`TrainBatch` made on ``device`` from a packed folder."""

    def __init__(
        self,
        path: str | Path,
        size: int = 512,
        batch_size: int = 32,
        device: str | torch.device = "cuda",
        seed: int = 0,
        mix: PackedMix = PackedMix(),
        canvas: int = 384,
        rank: int = 0,
        limit: int | None = None,
    ) -> None:
        path = Path(path)
        index_file = path / "index.json"
        if not index_file.is_file():
            raise FileNotFoundError(f"{path}: no index.json (make the pack with recipes/pack_data.py)")
        index = json.loads(index_file.read_text())
        count = min(len(index["people"]), limit or 10**9)
        # Checked before minutes of decoding, so a bad oversample key fails at once.
        weights = mix.person_weights([f"{p['source']}/{p['stem']}" for p in index["people"][:count]])
        self.size, self.batch_size, self.mix = size, batch_size, mix
        self.width = size  # of the batch being made: size, or the wide width (next_batch sets it)
        # Wide frames are a whole number of 16-pixel tokens, as the engine pads its inputs to.
        self.wide_width = max(size, round(size * mix.wide_aspect / 16) * 16)
        self.device = torch.device(device)
        self.gen = torch.Generator(device=self.device).manual_seed(seed * 1000 + rank)
        self._frame_rng = np.random.default_rng(seed * 1000 + rank)
        rgb_blob = (path / "people_rgb.bin").read_bytes()
        alpha_blob = (path / "people_alpha.bin").read_bytes()
        bg_blob = (path / "backgrounds.bin").read_bytes()

        def person(i: int) -> tuple[np.ndarray, int, int]:
            o, n = index["people_rgb"][i]
            rgb = _decode(rgb_blob[o : o + n], cv2.IMREAD_COLOR)[:, :, ::-1]
            o, n = index["people_alpha"][i]
            alpha = _decode(alpha_blob[o : o + n], cv2.IMREAD_GRAYSCALE)
            return _letterbox(np.concatenate([rgb, alpha[:, :, None]], axis=2), canvas)

        def background(i: int) -> np.ndarray:
            o, n = index["backgrounds"][i]
            img = _decode(bg_blob[o : o + n], cv2.IMREAD_COLOR)[:, :, ::-1]
            return cv2.resize(img, (256, 256), interpolation=cv2.INTER_AREA)

        with ThreadPoolExecutor(8) as pool:
            people = list(pool.map(person, range(count)))
            bgs = list(pool.map(background, range(len(index["backgrounds"]))))
        rgba = torch.from_numpy(np.stack([p[0] for p in people])).permute(0, 3, 1, 2).contiguous()
        self.people = rgba.to(self.device)  # (N, 4, C, C) uint8
        self.everyone = torch.arange(len(people), device=self.device)
        self.people_hw = torch.tensor([[p[1], p[2]] for p in people], device=self.device, dtype=torch.float32)
        self.canvas = canvas
        self.weights = None if weights is None else torch.tensor(weights, dtype=torch.float32, device=self.device)
        # Where the matte runs into the photo's border the person was cut by the photographer's frame. Pasted
        # into a new frame, such a cut must stay outside it: people cut at the top/left/right are only used
        # as whole photos (unless PackedMix.frame_cut_people); people cut at the bottom are always
        # bottom-anchored past the frame's edge.
        touch = torch.tensor([_border_touch(p[0][:, :, 3], p[1], p[2]) for p in people], device=self.device)
        self.cut = touch  # (N, 4) bool: top, left, right, bottom
        cut_inside = touch[:, :3].any(1)  # cut where a new frame would show it: top, left or right
        self.pasteable = torch.nonzero(~cut_inside).flatten()
        if self.pasteable.numel() == 0:
            self.pasteable = torch.arange(len(people), device=self.device)
        # First person of a composite: with frame_cut_people also the cut people below the cover cap (the
        # placement keeps their cuts outside the frame); second people stay uncut ones, so a large framed
        # crop does not bury the first person.
        self.first_people = self.pasteable
        if self.mix.frame_cut_people:
            cover = torch.tensor([float(p[0][:, :, 3].sum()) / (255.0 * p[1] * p[2]) for p in people],
                                 device=self.device)
            framed = cut_inside & (cover < self.mix.frame_cut_max_cover)
            framed[self.pasteable] = False  # a pack with no uncut person pastes everyone already: list each once
            self.first_people = torch.cat([self.pasteable, torch.nonzero(framed).flatten()])
        # A person cut at both sides must be zoomed until they span the frame's width: in a 16:9 frame that
        # leaves a hand or a coat filling it, which no webcam shows. Wide batches paste the others.
        both_sides = touch[self.first_people, 1] & touch[self.first_people, 2]
        self.first_people_wide = self.first_people[~both_sides] if bool((~both_sides).any()) else self.first_people
        fgs = []
        for chunk in self.people.split(256):
            c = chunk.float() / 255.0
            fgs.append((estimate_foreground(c[:, :3], c[:, 3:]) * 255.0).round().to(torch.uint8))
        self.people_fg = torch.cat(fgs)
        kinds = np.array(index["background_kind"])
        bg = torch.from_numpy(np.stack(bgs)).permute(0, 3, 1, 2).contiguous().to(self.device)
        self.scenes = bg[torch.from_numpy(np.flatnonzero(kinds == "scene")).to(self.device)]
        self.wallpapers = bg[torch.from_numpy(np.flatnonzero(kinds != "scene")).to(self.device)]
        # Person-free boxes in the people photos: (person index, y, x, side) in original-photo pixels.
        boxes = [(i, *b) for i, p in enumerate(index["people"][: len(people)]) for b in p["boxes"]]
        self.boxes = torch.tensor(boxes, dtype=torch.float32, device=self.device).reshape(-1, 4)

    def __iter__(self) -> Iterator[TrainBatch]:
        while True:
            yield self.next_batch()

    # ------------------------------------------------------------------ sampling helpers
    def _u(self, n: int, lo: float, hi: float) -> torch.Tensor:
        return torch.rand(n, device=self.device, generator=self.gen) * (hi - lo) + lo

    def _pick_person(self, n: int, pool: torch.Tensor) -> torch.Tensor:
        """``n`` people from ``pool`` (indices), uniformly or by ``PackedMix.oversample`` weight."""
        if self.weights is None:
            return pool[self._pick(n, pool.shape[0])]
        return pool[torch.multinomial(self.weights[pool], n, replacement=True, generator=self.gen)]

    def _pick_pasteable(self, n: int) -> torch.Tensor:
        return self._pick_person(n, self.pasteable)

    def _pick_first(self, n: int) -> torch.Tensor:
        return self._pick_person(n, self.first_people_wide if self.width > self.size else self.first_people)

    def _pick(self, n: int, high: int) -> torch.Tensor:
        return torch.randint(0, max(high, 1), (n,), device=self.device, generator=self.gen)

    @property
    def _aspect(self) -> float:
        """Width / height of the batch being made. Every affine below is written for a square frame and
        widened by scaling its x column by this, so pixels stay square."""
        return self.width / self.size

    def _sample(self, src: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
        grid = F.affine_grid(theta, [theta.shape[0], 1, self.size, self.width], align_corners=False)
        return F.grid_sample(src.float() / 255.0, grid, mode="bilinear", padding_mode="zeros", align_corners=False)

    def _sample_rows(self, use: torch.Tensor, src: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
        """``_sample(src, theta)`` in the rows where ``use`` is true, zeros in the others.

        On the CPU only the used rows are sampled: it is compute-bound there, and sampling every layer for
        every image threw away about half of the work (each image uses one background kind, and a whole
        photo needs no composite). On the GPU every row is sampled and masked, so the stream never waits for
        the host (``nonzero`` would).
        """
        if self.device.type != "cpu":
            return torch.where(use[:, None, None, None], self._sample(src, theta), 0.0)
        out = torch.zeros(use.shape[0], src.shape[1], self.size, self.width, device=self.device)
        rows = use.nonzero().squeeze(1)
        if rows.numel():
            out[rows] = self._sample(src[rows], theta[rows])
        return out

    def _person_theta(self, idx: torch.Tensor) -> torch.Tensor:
        """Output -> canvas affine placing person ``idx`` at a random scale/position/rotation/flip."""
        n = idx.shape[0]
        m, a = self.mix, self._aspect
        hw = self.people_hw[idx] / self.canvas  # content size as a fraction of the canvas
        height = self._u(n, *m.person_height)
        z = height / hw[:, 0]  # zoom: canvas units per output unit = 1 / z
        top, left, right, cut_bottom = self.cut[idx].unbind(1)
        sides = top | left | right  # only with frame_cut_people: first_people holds no such person otherwise
        # No rotation where a cut edge must stay outside the frame: the limits below assume an upright person.
        angle = self._u(n, -0.17, 0.17) * torch.where(cut_bottom, 0.25, 1.0) * torch.where(sides, 0.0, 1.0)
        flip = torch.where(self._u(n, 0, 1) < 0.5, -1.0, 1.0)
        tx = self._u(n, -0.6, 0.6) * hw[:, 1] * a  # a wider frame: the person roams over more of it
        sink = self._u(n, 0.0, 0.15)  # how far a bottom-anchored person's lower edge sinks below the frame
        anchored = cut_bottom | (self._u(n, 0, 1) < m.bottom_anchored)
        # The frame covers canvas [t - 1/z, t + 1/z] vertically and [t - a/z, t + a/z] horizontally (flip or
        # not); the content spans [-hw, hw].
        # Cut at both sides: the content must be at least as wide as the frame; cut at the top of a
        # bottom-anchored person: tall enough to reach from below the frame's bottom to above its top.
        # The limits use the content's outer pixel centres (half a canvas pixel inside its edge): a frame edge
        # on the content's very edge would blend the last row of a cut person with the letterbox's zeros, a
        # faint seam of alpha ~0.9 where the person runs off the frame (seen once wide frames zoomed busts in).
        inner = hw - 1.0 / self.canvas
        z = torch.where(left & right, torch.maximum(z, a / inner[:, 1]), z)
        z = torch.where(top & anchored, torch.maximum(z, 2.0 / (2.0 * inner[:, 0] - sink * hw[:, 0])), z)
        tx = torch.where(left, torch.maximum(tx, a / z - inner[:, 1]), tx)
        tx = torch.where(right, torch.minimum(tx, inner[:, 1] - a / z), tx)
        # Bottom-anchored: the content's lower edge lies at or below the frame's bottom edge (canvas y = hw).
        bottom = inner[:, 0] - 1.0 / z - sink * hw[:, 0]
        ty = torch.where(anchored, bottom, self._u(n, -0.5, 0.5) * hw[:, 0])
        ty = torch.where(top & ~anchored, torch.maximum(ty, 1.0 / z - inner[:, 0]), ty)
        cos, sin = torch.cos(angle) / z, torch.sin(angle) / z
        return torch.stack(
            [torch.stack([cos * flip * a, -sin, tx], 1), torch.stack([sin * flip * a, cos, ty], 1)], 1
        )

    def _crop_theta(self, n: int, lo: float = 0.55) -> torch.Tensor:
        """Output -> tile affine: a random crop of the frame's shape (its long side lo..1 of the tile), random
        flip."""
        a = self._aspect
        s = self._u(n, lo, 1.0) / a  # half-height; the half-width s * a stays inside the square tile
        flip = torch.where(self._u(n, 0, 1) < 0.5, -1.0, 1.0)
        tx, ty = self._u(n, -1, 1) * (1 - s * a), self._u(n, -1, 1) * (1 - s)
        zero = torch.zeros_like(s)
        return torch.stack([torch.stack([s * a * flip, zero, tx], 1), torch.stack([zero, s, ty], 1)], 1)

    def _backgrounds(self, n: int, kind: torch.Tensor, use: torch.Tensor) -> torch.Tensor:
        """kind 0 = scene, 1 = own-background box, 2 = wallpaper (a missing kind falls back to scenes), for
        the rows in ``use`` (zeros elsewhere). Returns (n, 3, S, S) in [0, 1]."""
        if not self.wallpapers.shape[0]:
            kind = torch.where(kind == 2, 0, kind)
        if not self.boxes.shape[0]:
            kind = torch.where(kind == 1, 0, kind)
        out = self._sample_rows(use & (kind == 0), self.scenes[self._pick(n, self.scenes.shape[0])],
                                self._crop_theta(n))
        if self.wallpapers.shape[0]:
            walls = self.wallpapers[self._pick(n, self.wallpapers.shape[0])]
            out = out + self._sample_rows(use & (kind == 2), walls, self._crop_theta(n))
        if self.boxes.shape[0]:
            box = self.boxes[self._pick(n, self.boxes.shape[0])]
            pid = box[:, 0].long()
            hw = self.people_hw[pid]
            # box (y, x, side) in content pixels -> canvas normalised coords (content is centred in the canvas)
            cy = ((self.canvas - hw[:, 0]) / 2 + box[:, 1] + box[:, 3] / 2) / self.canvas * 2 - 1
            cx = ((self.canvas - hw[:, 1]) / 2 + box[:, 2] + box[:, 3] / 2) / self.canvas * 2 - 1
            s = box[:, 3] / self.canvas
            zero = torch.zeros_like(s)
            # A wide frame takes the box's full width and a centred band of its height: stretching the box, or
            # reaching past it, would show a distorted room or the photo's own person labelled as background.
            theta = torch.stack([torch.stack([s, zero, cx], 1), torch.stack([zero, s / self._aspect, cy], 1)], 1)
            out = out + self._sample_rows(use & (kind == 1), self.people[pid, :3], theta)
        return out

    def _original_theta(self, idx: torch.Tensor) -> torch.Tensor:
        """A crop of the frame's shape inside the photo's own content (no letterbox border), random zoom and
        flip."""
        n = idx.shape[0]
        a = self._aspect
        hw = self.people_hw[idx] / self.canvas
        side = torch.minimum(hw[:, 0], hw[:, 1] / a) * self._u(n, 0.6, 1.0)  # half-height; half-width side * a
        tx = self._u(n, -1, 1) * (hw[:, 1] - side * a).clamp_min(0)
        ty = self._u(n, -1, 1) * (hw[:, 0] - side).clamp_min(0)
        flip = torch.where(self._u(n, 0, 1) < 0.5, -1.0, 1.0)
        zero = torch.zeros_like(side)
        return torch.stack([torch.stack([side * a * flip, zero, tx], 1), torch.stack([zero, side, ty], 1)], 1)

    def _photometric(self, img: torch.Tensor, use: torch.Tensor | None = None) -> torch.Tensor:
        """Lighting / white balance / saturation jitter (one random colour matrix per image) + gamma.

        ``use``: the rows that hold a picture; the others must be all zeros (what ``_sample_rows`` leaves). On
        the CPU only the used rows are computed and the others get the jitter of a black image, which is what
        computing them gives: the same batch for a fraction of the work (the full-batch passes were ~600 ms of
        a 2.2 s CPU batch of 16 at 448 px, over half of it on rows thrown away).
        """
        n = img.shape[0]
        gains = self._u(n * 3, 0.8, 1.2).reshape(n, 3, 1, 1) * self._u(n, 0.7, 1.3).reshape(n, 1, 1, 1)
        sat = self._u(n, 0.6, 1.3).reshape(n, 1, 1, 1)
        gamma = self._u(n, 0.75, 1.3).reshape(n, 1, 1, 1)
        if use is None or self.device.type != "cpu":
            return _jitter(img, gains, sat, gamma)
        out = _jitter(img.new_zeros(n, img.shape[1], 1, 1), gains, sat, gamma).expand_as(img).contiguous()
        rows = use.nonzero().squeeze(1)
        if rows.numel():
            out[rows] = _jitter(img[rows], gains[rows], sat[rows], gamma[rows])
        return out

    @torch.no_grad()
    def next_batch(self) -> TrainBatch:
        n, m = self.batch_size, self.mix
        # The frame shape is drawn per batch (a batch is one tensor), on the host so that the GPU stream never
        # waits for it, from its own generator so that a run without wide frames makes the batches it made
        # before the option existed.
        wide = m.wide_share > 0 and self._frame_rng.random() < m.wide_share
        self.width = self.wide_width if wide else self.size
        r = self._u(n, 0, 1)
        kind = torch.zeros(n, dtype=torch.long, device=self.device)  # scene
        kind = torch.where(r >= m.scene, torch.ones_like(kind), kind)  # own background
        kind = torch.where(r >= m.scene + m.own_background, torch.full_like(kind, 2), kind)  # wallpaper
        original = r >= m.scene + m.own_background + m.wallpaper
        idx = torch.where(original, self._pick_person(n, self.everyone), self._pick_first(n))

        composite = ~original
        # Composites that get a person (PackedMix.empty). No draw at empty == 0, so the random stream, and with
        # it every batch, stays what it was before the option existed.
        pasted = composite & (self._u(n, 0, 1) >= m.empty) if m.empty > 0 else composite
        theta = self._person_theta(idx)
        layer = self._sample_rows(pasted, torch.cat([self.people_fg[idx], self.people[idx, 3:]], 1), theta)
        fg, alpha = layer[:, :3], layer[:, 3:]
        bg = self._backgrounds(n, kind, composite)
        # Lighting of the person and of the room differ in real life; jitter them separately.
        fg, bg = self._photometric(fg, pasted), self._photometric(bg, composite)
        if m.blur > 0:  # defocused background, as behind a webcam user
            defocus = self._u(n, 0, 1) < m.blur
            if self.device.type == "cpu":  # only the rows that show it (the rest is overwritten or no room)
                rows = (defocus & composite).nonzero().squeeze(1)
                if rows.numel():
                    bg[rows] = _box_blur5(bg[rows])
            else:
                bg = torch.where(defocus[:, None, None, None], _box_blur5(bg), bg)
        image = alpha * fg + (1 - alpha) * bg

        two = (self._u(n, 0, 1) < m.second_person) & pasted
        if bool(two.any()):
            idx2 = self._pick_pasteable(n)
            layer2 = self._sample_rows(
                two, torch.cat([self.people_fg[idx2], self.people[idx2, 3:]], 1), self._person_theta(idx2)
            )
            fg2, a2 = self._photometric(layer2[:, :3], two), layer2[:, 3:]
            image = a2 * fg2 + (1 - a2) * image
            # The composition target stays exact: treat the nearer person as foreground over the rest.
            fg = (a2 * fg2 + (1 - a2) * alpha * fg) / (a2 + (1 - a2) * alpha).clamp_min(1e-4)
            alpha = a2 + (1 - a2) * alpha

        if bool(original.any()):
            th = self._original_theta(idx)
            photo = self._sample_rows(original, self.people[idx], th)
            photo_fg = self._sample_rows(original, self.people_fg[idx], th)
            p_rgb = self._photometric(photo[:, :3], original)
            # The true background is unknown: bg = the photo, so the composition loss counts only where alpha ~ 0.
            if self.device.type == "cpu":  # row copies instead of full-batch selects
                rows = original.nonzero().squeeze(1)
                alpha = alpha.clone()  # may be a view of the person layer
                for dst, src in ((image, p_rgb), (alpha, photo[:, 3:]), (fg, photo_fg), (bg, p_rgb)):
                    dst[rows] = src[rows]
            else:
                sel = original[:, None, None, None]
                image, alpha = torch.where(sel, p_rgb, image), torch.where(sel, photo[:, 3:], alpha)
                fg, bg = torch.where(sel, photo_fg, fg), torch.where(sel, p_rgb, bg)

        noise = self._u(n, 0, m.noise_std).reshape(n, 1, 1, 1)
        image = image + noise * torch.randn(image.shape, device=self.device, generator=self.gen)
        image = image.clamp(0, 1)
        alpha = alpha.clamp(0, 1)
        return TrainBatch(image, alpha, fg.clamp(0, 1), bg.clamp(0, 1), trimap_from_alpha_torch(alpha))


def preview_grid(batch: TrainBatch, count: int = 8) -> np.ndarray:
    """(rows of image | alpha | trimap) as a uint8 RGB array, to look at what the stream produces."""
    rows = []
    for i in range(min(count, batch.batch_size)):
        img = batch.image[i].permute(1, 2, 0).float().cpu().numpy()
        a = batch.alpha[i, 0].float().cpu().numpy()
        t = batch.trimap[i].float().cpu().numpy() / 2.0
        rows.append(np.concatenate([img, np.repeat(a[:, :, None], 3, 2), np.repeat(t[:, :, None], 3, 2)], 1))
    return (np.concatenate(rows, 0) * 255).round().astype(np.uint8)


__all__ = ["PackedCompositeStream", "PackedMix", "estimate_foreground", "preview_grid"]
