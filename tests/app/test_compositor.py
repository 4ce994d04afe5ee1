"""Compositing: exact background where alpha is 0, no halos at edges, aspect-fill, blur without the person."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from app.backgrounds import (
    BackgroundError,
    BackgroundSpec,
    BlurBackground,
    ColorBackground,
    ImageBackground,
    PassthroughBackground,
    VideoBackground,
    aspect_fill,
    load_background,
)
from app.compositor import Compositor, estimate_foreground
from app.smoothing import TemporalSmoother


def disc_scene(h=240, w=320, fg=(40, 60, 200), old_bg=(250, 250, 250), edge=8):
    """A person-coloured disc with a soft edge in front of a white wall, mixed by the matting equation."""
    yy, xx = np.mgrid[0:h, 0:w]
    d = np.sqrt((yy - h / 2) ** 2 + (xx - w / 2) ** 2)
    alpha = np.clip((0.35 * h - d) / edge + 0.5, 0, 1).astype(np.float32)
    F = np.empty((h, w, 3), np.float32)
    F[:] = fg
    B = np.empty((h, w, 3), np.float32)
    B[:] = old_bg
    image = (alpha[..., None] * F + (1 - alpha[..., None]) * B + 0.5).astype(np.uint8)
    return image, alpha, F


def test_alpha_zero_gives_exactly_the_background_and_alpha_one_exactly_the_frame():
    image, alpha, _ = disc_scene()
    comp = Compositor(ColorBackground((10, 200, 30)))
    out = comp.compose(image, alpha)
    assert np.array_equal(out[alpha == 0], np.broadcast_to(np.uint8([10, 200, 30]), out[alpha == 0].shape))
    assert np.array_equal(out[alpha == 1], image[alpha == 1])


@pytest.mark.parametrize(("h", "w", "edge"), [(240, 320, 8), (1080, 1920, 24)], ids=["small", "1080p"])
def test_foreground_estimation_removes_the_old_background_from_edges(h, w, edge):
    image, alpha, F = disc_scene(h, w, edge=edge)  # 1080p takes the reduced-resolution second pass
    band = (alpha > 0.05) & (alpha < 0.95)
    naive_error = np.abs(image[band].astype(np.float32) - F[band]).mean()
    est = estimate_foreground(image, alpha)
    est_error = np.abs(est[band].astype(np.float32) - F[band]).mean()
    assert est_error < naive_error / 5  # the white fringe is mostly gone
    # Outside the band the camera pixels are untouched.
    assert np.array_equal(est[~((alpha > 0) & (alpha < 1))], image[~((alpha > 0) & (alpha < 1))])


def test_composite_over_black_has_no_white_halo():
    image, alpha, F = disc_scene()
    band = (alpha > 0.05) & (alpha < 0.95)
    ideal = alpha[..., None] * F  # true foreground over black
    with_fg = Compositor(ColorBackground((0, 0, 0))).compose(image, alpha)
    naive = Compositor(ColorBackground((0, 0, 0)), estimate_foreground=False).compose(image, alpha)
    err_fg = np.abs(with_fg[band] - ideal[band]).mean()
    err_naive = np.abs(naive[band] - ideal[band]).mean()
    assert err_fg < err_naive / 3


def test_aspect_fill_covers_and_crops_without_stretching(background_file):
    bg = cv2.imread(str(background_file))  # 200x100: red left half, blue right half
    out = aspect_fill(bg, (100, 100))  # square output: the middle 100x100 of the picture
    assert out.shape == (100, 100, 3)
    assert tuple(out[50, 10]) == (0, 0, 255) and tuple(out[50, 90]) == (255, 0, 0)
    # A tall output scales the picture x2 (to 400x200) and keeps the middle 50 columns: the colour boundary
    # stays sharp in the middle. Stretching 200x100 into 50x200 would squeeze it instead.
    tall = aspect_fill(bg, (50, 200))
    assert tall.shape == (200, 50, 3)
    assert np.all(tall[:, :23] == (0, 0, 255)) and np.all(tall[:, 27:] == (255, 0, 0))


def test_image_background_fills_the_frame_size(background_file):
    bg = ImageBackground.from_file(background_file)
    frame = np.zeros((90, 160, 3), np.uint8)
    out = bg.render(frame, np.zeros((90, 160), np.float32))
    assert out.shape == frame.shape


@pytest.mark.parametrize("content", [b"", b"not an image at all", b"\x89PNG\r\n\x1a\n" + b"\x00" * 20])
def test_unreadable_picture_raises_a_clear_background_error(tmp_path, content):
    path = tmp_path / "broken.png"
    path.write_bytes(content)
    with pytest.raises(BackgroundError, match="broken.png"):
        load_background(BackgroundSpec(mode="image", path=str(path)))


def test_missing_picture_raises_background_error(tmp_path):
    with pytest.raises(BackgroundError, match="not found"):
        load_background(BackgroundSpec(mode="image", path=str(tmp_path / "nope.jpg")))


def test_bad_colour_and_blur_values_raise_background_error():
    with pytest.raises(BackgroundError):
        load_background(BackgroundSpec(mode="color", color="green"))
    with pytest.raises(BackgroundError):
        load_background(BackgroundSpec(mode="blur", blur_strength=150))


def test_blur_background_keeps_the_person_out_of_the_blur():
    """A dark person on a bright wall: the blurred wall next to the person must stay bright (no dark halo)."""
    h, w = 240, 320
    frame = np.full((h, w, 3), 230, np.uint8)
    alpha = np.zeros((h, w), np.float32)
    frame[:, 120:200] = 20
    alpha[:, 120:200] = 1.0
    person_aware = BlurBackground(100).render(frame, alpha)
    plain = cv2.GaussianBlur(frame, (0, 0), 0.04 * h)
    near = (slice(None), slice(100, 118))  # wall pixels just left of the person
    assert person_aware[near].mean() > 200
    assert plain[near].mean() < person_aware[near].mean() - 20


def test_blur_strength_zero_is_the_frame_itself():
    frame = np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    assert np.array_equal(BlurBackground(0).render(frame, np.zeros((48, 64), np.float32)), frame)


def test_video_background_loops_and_fills(video_file):
    bg = VideoBackground(video_file)
    frame = np.zeros((60, 100, 3), np.uint8)
    for _ in range(3):
        out = bg.render(frame, np.zeros((60, 100), np.float32))
        assert out.shape == frame.shape
    bg._advance_to(10_000)  # far past the end: loops instead of failing
    assert bg.render(frame, np.zeros((60, 100), np.float32)).shape == frame.shape
    bg.close()


def test_passthrough_background_returns_the_camera_frame():
    image, alpha, _ = disc_scene()
    assert np.array_equal(Compositor(PassthroughBackground()).compose(image, alpha), image)


def test_compose_rejects_mismatched_alpha():
    with pytest.raises(ValueError, match="does not match"):
        Compositor(ColorBackground((0, 0, 0))).compose(np.zeros((10, 10, 3), np.uint8), np.zeros((5, 5), np.float32))


def test_temporal_smoothing_only_touches_still_pixels_in_the_uncertain_band():
    h, w = 40, 40
    frame = np.full((h, w, 3), 100, np.uint8)
    smoother = TemporalSmoother(strength=0.5)
    a1 = np.full((h, w), 0.4, np.float32)
    a1[:, :10] = 0.0
    a1[:, 30:] = 1.0
    smoother(frame, a1)
    a2 = a1.copy()
    a2[:, 10:30] = 0.8
    moved = frame.copy()
    moved[:20] = 200  # the top half of the picture changed: motion there
    out = smoother(moved, a2)
    assert np.allclose(out[25, 15], 0.6)  # still + uncertain: averaged 0.5 * 0.4 + 0.5 * 0.8
    assert np.allclose(out[5, 15], 0.8)  # moving: this frame's alpha only (no ghost)
    assert out[25, 5] == 0.0 and out[25, 35] == 1.0  # certain pixels untouched


def test_temporal_smoothing_off_returns_the_alpha_unchanged():
    frame = np.zeros((8, 8, 3), np.uint8)
    smoother = TemporalSmoother(0.0)
    smoother(frame, np.full((8, 8), 0.2, np.float32))
    a = np.full((8, 8), 0.7, np.float32)
    assert np.array_equal(smoother(frame, a), a)
