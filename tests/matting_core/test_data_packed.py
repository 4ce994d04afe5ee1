"""The packed training stream that feeds the default model: exact composites, every row filled, sane layers."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from matting_core.data.packed import PackedCompositeStream, PackedMix


def _stream(tiny_pack: Path, **mix: float) -> PackedCompositeStream:
    return PackedCompositeStream(tiny_pack, size=64, batch_size=12, device="cpu", seed=3, canvas=128,
                                 mix=PackedMix(noise_std=0.0, blur=0.0, **mix))


def test_composites_are_exact_and_every_background_row_is_filled(tiny_pack: Path):
    stream = _stream(tiny_pack, scene=0.4, own_background=0.3, wallpaper=0.3, original_photo=0.0, second_person=0.5)
    for _ in range(3):
        b = stream.next_batch()
        assert b.image.shape == (12, 3, 64, 64) and b.alpha.shape == (12, 1, 64, 64) and b.trimap.shape == (12, 64, 64)
        torch.testing.assert_close(b.alpha * b.fg + (1 - b.alpha) * b.bg, b.image, atol=2e-3, rtol=0)
        # Each row got exactly one background kind, sampled only where it is used: none left empty.
        assert (b.bg.flatten(1).amax(1) > 0.05).all()
        assert (b.alpha.flatten(1).amax(1) > 0.5).all(), "a person is pasted into every composite"


def test_whole_photos_keep_their_own_background(tiny_pack: Path):
    b = _stream(tiny_pack, scene=0.0, own_background=0.0, wallpaper=0.0, original_photo=1.0).next_batch()
    torch.testing.assert_close(b.bg, b.image)  # no composite: the photo is its own background
    assert (b.alpha.flatten(1).amax(1) > 0.5).all()
    assert (b.image.flatten(1).std(1) > 0.05).all(), "the photo's noise texture, not an empty row"


def test_wide_frames_are_filled_exact_composites_of_token_multiple_width(tiny_pack: Path):
    composites = _stream(tiny_pack, scene=0.4, own_background=0.3, wallpaper=0.3, original_photo=0.0,
                         second_person=0.5, wide_share=1.0)
    photos = _stream(tiny_pack, scene=0.0, own_background=0.0, wallpaper=0.0, original_photo=1.0, wide_share=1.0)
    for _ in range(3):
        b = composites.next_batch()
        assert b.image.shape == (12, 3, 64, 112) and b.trimap.shape == (12, 64, 112)  # 64 * 16 / 9 -> 7 tokens
        torch.testing.assert_close(b.alpha * b.fg + (1 - b.alpha) * b.bg, b.image, atol=2e-3, rtol=0)
        assert (b.alpha.flatten(1).amax(1) > 0.5).all()
        # Room tiles and person-free boxes are square, photos letterboxed: a crop reaching past one would
        # leave black bands at the wide frame's sides.
        for image in (b.bg, photos.next_batch().image):
            black = (image.amax(1) < 1e-3).flatten(1).float().mean(1)
            assert (black < 0.01).all(), black


def test_wide_frames_keep_pixels_square(tiny_pack: Path):
    """Every affine maps one output pixel to the same source distance along x and y: a person or a room is
    not stretched sideways to fill a wide frame."""
    stream = _stream(tiny_pack, wide_share=1.0)
    stream.next_batch()
    assert stream.width == 112
    idx = torch.tensor([0, 1, 2, 3] * 4)
    for theta in (stream._person_theta(idx), stream._crop_theta(16), stream._original_theta(idx)):
        per_x = theta[:, :, 0].norm(dim=1) * 2 / stream.width
        per_y = theta[:, :, 1].norm(dim=1) * 2 / stream.size
        torch.testing.assert_close(per_x, per_y)


def test_wide_share_mixes_square_and_wide_batches(tiny_pack: Path):
    stream = _stream(tiny_pack, wide_share=0.5)
    widths = [stream.next_batch().image.shape[-1] for _ in range(20)]
    assert set(widths) == {64, 112} and 4 <= widths.count(112) <= 16, widths


def test_sampling_only_the_used_rows_equals_sampling_all_and_masking(tiny_pack: Path):
    stream = _stream(tiny_pack)
    src = stream.people[torch.tensor([0, 1, 2, 3, 0])]
    theta = stream._person_theta(torch.tensor([0, 1, 2, 3, 0]))
    use = torch.tensor([True, False, True, False, True])
    full = torch.where(use[:, None, None, None], stream._sample(src, theta), 0.0)
    torch.testing.assert_close(stream._sample_rows(use, src, theta), full)
    assert stream._sample_rows(torch.zeros(5, dtype=torch.bool), src, theta).abs().sum() == 0


def test_jittering_only_the_used_rows_equals_jittering_every_row(tiny_pack: Path):
    """The CPU computes the colour jitter only where a row holds a picture; the empty rows must still get what
    jittering them gives (a black image's jitter), so the batch is the one the full-batch path makes."""
    stream = _stream(tiny_pack)
    gen = torch.Generator().manual_seed(5)
    use = torch.tensor([True, False, False, True, True, False])
    img = torch.rand(6, 3, 16, 20, generator=gen) * use[:, None, None, None]
    state = stream.gen.get_state()
    rows_only = stream._photometric(img, use)
    stream.gen.set_state(state)
    every_row = stream._photometric(img)
    torch.testing.assert_close(rows_only, every_row, rtol=0, atol=1e-6)
    assert rows_only[1].std() == 0 and rows_only[1].min() > 0  # a black row's jitter: a flat, non-zero colour
    assert not torch.equal(rows_only[0], img[0])


def test_defocus_blurs_exactly_the_composited_backgrounds(tiny_pack: Path):
    from matting_core.data.packed import _box_blur5

    kw = dict(scene=1.0, own_background=0.0, wallpaper=0.0, original_photo=0.0, second_person=0.0, empty=1.0)
    texture = torch.randint(0, 256, (3, 3, 256, 256), dtype=torch.uint8, generator=torch.Generator().manual_seed(2))
    batches = []
    for blur in (0.0, 1.0):
        stream = PackedCompositeStream(tiny_pack, size=64, batch_size=12, device="cpu", seed=3, canvas=128,
                                       mix=PackedMix(noise_std=0.0, blur=blur, **kw))
        stream.scenes = texture  # the tiny pack's rooms are flat colours, which a blur leaves as they are
        batches.append(stream.next_batch())
    sharp, blurred = batches
    torch.testing.assert_close(blurred.bg, _box_blur5(sharp.bg).clamp(0, 1), rtol=0, atol=1e-6)
    torch.testing.assert_close(blurred.image, blurred.bg)  # no person: the image is the room
    assert (blurred.bg - sharp.bg).abs().amax() > 0.01


def test_separable_box_mean_equals_the_2d_pool():
    import torch.nn.functional as F

    from matting_core.data.packed import _box_mean

    x = torch.rand(2, 3, 37, 29, generator=torch.Generator().manual_seed(0))
    for k in (3, 5, 9, 17):
        torch.testing.assert_close(_box_mean(x, k), F.avg_pool2d(x, k, stride=1, padding=k // 2))


def test_estimated_foreground_drops_the_old_background_at_soft_edges():
    from matting_core.data.packed import estimate_foreground

    # A red person (left) on a green background (right) with a soft 8-pixel ramp between them.
    alpha = torch.zeros(1, 1, 32, 48)
    alpha[..., :20] = 1.0
    alpha[..., 20:28] = torch.linspace(0.9, 0.1, 8)
    red, green = torch.tensor([1.0, 0.0, 0.0]), torch.tensor([0.0, 1.0, 0.0])
    rgb = alpha * red[:, None, None] + (1 - alpha) * green[:, None, None]
    fg = estimate_foreground(rgb, alpha)
    ramp = fg[0, :, :, 20:28]
    assert (ramp[1] < 0.05).all() and (ramp[0] > 0.95).all(), "edge pixels get the person's colour, not the mix"
    torch.testing.assert_close(fg[..., :20], rgb[..., :20])  # confident foreground is kept as it was


def test_empty_composites_hold_only_the_room(tiny_pack: Path):
    stream = _stream(tiny_pack, scene=1.0, own_background=0.0, wallpaper=0.0, original_photo=0.0,
                     second_person=1.0, empty=0.5)
    emptied = 0
    for _ in range(4):
        b = stream.next_batch()
        torch.testing.assert_close(b.alpha * b.fg + (1 - b.alpha) * b.bg, b.image, atol=2e-3, rtol=0)
        none = b.alpha.flatten(1).amax(1) == 0
        emptied += int(none.sum())
        # A room alone: no person, not even the second one, and the trimap calls it all background.
        torch.testing.assert_close(b.image[none], b.bg[none])
        assert (b.trimap[none] == 0).all()
        assert (b.alpha[~none].flatten(1).amax(1) > 0.5).all()
    assert 12 <= emptied <= 36, f"about half of 48 rows should be empty, got {emptied}"


def test_photo_share_takes_its_rows_from_room_scenes(tiny_pack: Path):
    mix = PackedMix(noise_std=0.0, blur=0.0).with_photo_share(0.5)
    assert abs(mix.scene + mix.own_background + mix.wallpaper + mix.original_photo - 1.0) < 1e-9
    assert (mix.own_background, mix.wallpaper) == (PackedMix.own_background, PackedMix.wallpaper)
    assert abs(mix.scene - 0.28) < 1e-9
    stream = PackedCompositeStream(tiny_pack, size=64, batch_size=12, device="cpu", seed=3, canvas=128, mix=mix)
    whole = 0
    for _ in range(4):
        b = stream.next_batch()
        whole += int(((b.image - b.bg).flatten(1).abs().amax(1) < 1e-6).sum())  # a photo is its own background
    assert 12 <= whole <= 36, f"about half of 48 rows should be whole photos, got {whole}"
    for bad in (0.9, -0.1):
        with pytest.raises(ValueError, match="whole-photo share"):
            PackedMix().with_photo_share(bad)


@pytest.mark.parametrize(("fields", "message"), [
    ({"scene": 0.6}, "sum to 1"),  # kinds summing to 1.1 would quietly shrink the whole-photo share
    ({"scene": 0.8, "original_photo": -0.02}, "non-negative"),
    ({"empty": 1.2}, "empty is a probability"),
    ({"second_person": -0.1}, "second_person is a probability"),
    ({"frame_cut_max_cover": 0.0}, "frame_cut_max_cover"),
    ({"person_height": (1.2, 0.5)}, "person_height"),
    ({"noise_std": -0.01}, "noise_std"),
    ({"wide_share": 1.5}, "wide_share is a probability"),
    ({"wide_aspect": 0.5}, "wide_aspect"),
])
def test_a_mix_the_sampler_would_misread_is_refused(fields: dict, message: str):
    with pytest.raises(ValueError, match=message):
        PackedMix(**fields)


def test_photo_shares_across_the_range_pass_despite_float_sums():
    """with_photo_share moves a share between two kinds; the float sum lands a hair off 1 and must pass."""
    base = PackedMix(empty=0.0, bottom_anchored=1.0, frame_cut_people=True, frame_cut_max_cover=1.0)
    for share in [i / 100 for i in range(0, 79)]:
        assert base.with_photo_share(share).original_photo == share


@pytest.fixture(scope="module")
def cut_pack(tmp_path_factory: pytest.TempPathFactory, pack_writer: Callable[..., Path]) -> Path:
    """Three people in pure colours: blue, uncut (an ellipse); red, a bust cut by the photo's left, right
    and bottom edges (shoulders running off the frame); green, cut by the left edge only."""
    import cv2
    import numpy as np

    out = tmp_path_factory.mktemp("cut_pack")
    ellipse = np.zeros((120, 90), np.uint8)
    cv2.ellipse(ellipse, (45, 60), (25, 40), 0, 0, 360, 255, -1)
    bust = np.zeros((120, 90), np.uint8)
    cv2.ellipse(bust, (45, 40), (20, 28), 0, 0, 360, 255, -1)
    bust[72:] = 255
    left = np.zeros((120, 90), np.uint8)
    cv2.ellipse(left, (0, 60), (40, 40), 0, 0, 360, 255, -1)
    rgb, alpha = [], []
    for a, colour in ((ellipse, (255, 0, 0)), (bust, (0, 0, 255)), (left, (0, 255, 0))):  # BGR
        rgb.append(cv2.imencode(".png", np.full((120, 90, 3), colour, np.uint8))[1].tobytes())
        alpha.append(cv2.imencode(".png", a)[1].tobytes())
    scenes = [cv2.imencode(".png", np.full((64, 64, 3), v, np.uint8))[1].tobytes() for v in (60, 120, 180)]
    return pack_writer(out, rgb, alpha, scenes, ["scene"] * 3)


def _cut_rows(cut_pack: Path, frame_cut: bool, batches: int = 6, max_cover: float = 0.6, wide_share: float = 0.0
              ) -> dict[str, list[torch.Tensor]]:
    """The alpha of each composite, grouped by which person's colour fills it."""
    stream = PackedCompositeStream(cut_pack, size=64, batch_size=16, device="cpu", seed=5, canvas=128,
                                   mix=PackedMix(scene=1.0, own_background=0.0, wallpaper=0.0, original_photo=0.0,
                                                 second_person=0.0, noise_std=0.0, blur=0.0,
                                                 frame_cut_people=frame_cut, frame_cut_max_cover=max_cover,
                                                 wide_share=wide_share))
    assert stream.cut.tolist() == [[False] * 4, [False, True, True, True], [False, True, False, False]]
    rows: dict[str, list[torch.Tensor]] = {"blue": [], "red": [], "green": []}
    for _ in range(batches):
        b = stream.next_batch()
        for fg, a in zip(b.fg, b.alpha[:, 0], strict=True):
            mean = fg[:, a > 0.9].mean(1)  # the person's colour (after lighting jitter)
            rows[("red", "green", "blue")[int(mean.argmax())]].append(a)
    return rows


@pytest.mark.parametrize("wide_share", [0.0, 1.0])
def test_people_cut_by_the_photo_frame_are_pasted_with_the_cut_outside_the_new_frame(cut_pack: Path,
                                                                                     wide_share: float):
    rows = _cut_rows(cut_pack, frame_cut=True, wide_share=wide_share)
    if wide_share:
        # The bust, cut at both sides, would have to be zoomed until its shoulders span a 16:9 frame: wide
        # frames paste only people with at most one side cut.
        assert not rows["red"]
        rows["red"] = _cut_rows(cut_pack, frame_cut=True)["red"]
    assert all(len(r) >= 10 for r in rows.values()), {k: len(v) for k, v in rows.items()}
    for a in rows["red"]:
        # A bust whose shoulders run off the photo's sides and bottom fills the frame's whole lower edge:
        # had a cut edge been pasted inside the frame, the bottom rows would end at a straight line; had the
        # frame's edge sat on the photo's very edge, they would blend with the letterbox (a seam of ~0.8).
        assert a[-4:].min() > 0.97
    for a in rows["green"]:
        # Cut at one side: it touches one side of the new frame (either one: the stream flips).
        assert max(float(a[:, 0].max()), float(a[:, -1].max())) > 0.9
    assert any(float(a[-1].min()) < 0.1 for a in rows["blue"]), "uncut people keep free positions"


def test_a_bust_zoomed_to_the_frame_has_no_seam_where_it_runs_off(cut_pack: Path):
    """The smallest allowed zoom puts the frame's sides right at the bust's cut sides; they must sample the
    photo's outer pixels, not blend them with the letterbox's zeros (at 112 px wide, a seam of alpha 0.90)."""
    stream = PackedCompositeStream(cut_pack, size=64, batch_size=32, device="cpu", seed=2, canvas=128,
                                   mix=PackedMix(scene=1.0, own_background=0.0, wallpaper=0.0, original_photo=0.0,
                                                 second_person=0.0, noise_std=0.0, blur=0.0, person_height=(0.1, 0.1),
                                                 frame_cut_people=True, wide_share=1.0))
    stream.next_batch()  # a wide batch: the frame's width, 112 px, is what puts its edge pixels near the photo's
    theta = stream._person_theta(torch.full((32,), 1))  # the bust: its width, not the tiny height, sets the zoom
    alpha = stream._sample(stream.people[torch.full((32,), 1), 3:], theta)[:, 0]
    assert alpha[:, :16].mean() < 0.5, "the frame reaches above the shoulders"
    for edge in (alpha[:, 44:, 0], alpha[:, 44:, -1], alpha[:, -1]):  # shoulders and body run off three sides
        assert edge.min() > 0.97, edge.min()


def test_without_frame_cut_people_only_uncut_people_are_pasted(cut_pack: Path):
    rows = _cut_rows(cut_pack, frame_cut=False)
    assert len(rows["blue"]) == 96 and not rows["red"] and not rows["green"]


def test_frame_filling_crops_are_left_out(cut_pack: Path):
    # The bust's matte covers ~54% of its photo, the one-sided cut ~25%: a 0.4 cap keeps only the latter.
    rows = _cut_rows(cut_pack, frame_cut=True, max_cover=0.4)
    assert not rows["red"] and len(rows["green"]) >= 10 and len(rows["blue"]) >= 10


def test_a_pack_of_only_cut_people_lists_each_first_person_once(tmp_path: Path, pack_writer: Callable[..., Path]):
    """With no uncut person every one is pasteable already; frame_cut_people must not add them a second time
    (which would double their share of first people)."""
    import cv2
    import numpy as np

    left = np.zeros((120, 90), np.uint8)
    cv2.ellipse(left, (0, 60), (40, 40), 0, 0, 360, 255, -1)
    top = np.zeros((120, 90), np.uint8)
    cv2.ellipse(top, (45, 0), (30, 40), 0, 0, 360, 255, -1)
    rgb = [cv2.imencode(".png", np.full((120, 90, 3), c, np.uint8))[1].tobytes() for c in (90, 200)]
    alpha = [cv2.imencode(".png", a)[1].tobytes() for a in (left, top)]
    scenes = [cv2.imencode(".png", np.full((64, 64, 3), 120, np.uint8))[1].tobytes()]
    pack = pack_writer(tmp_path, rgb, alpha, scenes, ["scene"])
    stream = PackedCompositeStream(pack, size=64, batch_size=4, device="cpu", seed=1, canvas=128,
                                   mix=PackedMix(frame_cut_people=True, noise_std=0.0, blur=0.0))
    assert stream.cut[:, :3].any(1).all()
    assert sorted(stream.first_people.tolist()) == [0, 1]


@pytest.fixture(scope="module")
def colour_pack(tmp_path_factory: pytest.TempPathFactory, pack_writer: Callable[..., Path]) -> Path:
    """Three uncut people (ellipses) in pure red, green and blue, named test/0, test/1, test/2."""
    import cv2
    import numpy as np

    out = tmp_path_factory.mktemp("colour_pack")
    ellipse = np.zeros((120, 90), np.uint8)
    cv2.ellipse(ellipse, (45, 60), (25, 40), 0, 0, 360, 255, -1)
    rgb = [cv2.imencode(".png", np.full((120, 90, 3), c, np.uint8))[1].tobytes()
           for c in ((0, 0, 255), (0, 255, 0), (255, 0, 0))]  # BGR: red, green, blue
    alpha = [cv2.imencode(".png", ellipse)[1].tobytes()] * 3
    scenes = [cv2.imencode(".png", np.full((64, 64, 3), v, np.uint8))[1].tobytes() for v in (60, 120, 180)]
    return pack_writer(out, rgb, alpha, scenes, ["scene"] * 3)


def _green_share(colour_pack: Path, oversample: tuple, **kinds: float) -> float:
    """Share of rows whose person is green (test/1), over 20 batches of 32."""
    stream = PackedCompositeStream(colour_pack, size=64, batch_size=32, device="cpu", seed=7, canvas=128,
                                   mix=PackedMix(own_background=0.0, wallpaper=0.0, second_person=0.0,
                                                 noise_std=0.0, blur=0.0, oversample=oversample, **kinds))
    green = total = 0
    for _ in range(20):
        b = stream.next_batch()
        for fg, a in zip(b.fg, b.alpha[:, 0], strict=True):
            colour = int(fg[:, a > 0.9].mean(1).argmax())
            green += colour == 1
            total += 1
    return green / total


@pytest.mark.parametrize("kinds", [{"scene": 1.0, "original_photo": 0.0}, {"scene": 0.0, "original_photo": 1.0}],
                         ids=["pasted", "whole photos"])
def test_oversampled_people_are_drawn_weight_times_as_often(colour_pack: Path, kinds: dict):
    # Weight 4 on one of three people: expected share 4 / 6; uniform: 1 / 3. 640 draws: sd ~0.019.
    assert abs(_green_share(colour_pack, (("test/1", 4.0),), **kinds) - 4 / 6) < 0.07
    assert abs(_green_share(colour_pack, (), **kinds) - 1 / 3) < 0.07


def test_second_people_are_oversampled_too_and_matching_keys_multiply(colour_pack: Path):
    stream = PackedCompositeStream(colour_pack, size=64, batch_size=8, device="cpu", seed=1, canvas=128,
                                   mix=PackedMix(oversample=(("test/", 2.0), ("test/2", 3.0))))
    assert stream.weights.tolist() == [2.0, 2.0, 6.0]  # "test/" matches all three, "test/2" only the blue one
    drawn = stream._pick_pasteable(3000)
    assert abs(float((drawn == 2).float().mean()) - 0.6) < 0.04


def test_without_oversampling_the_draws_are_those_of_earlier_runs(tiny_pack: Path):
    """No weights: the plain ``randint`` draw earlier runs made, so a run without the option repeats its batches."""
    stream = _stream(tiny_pack)
    assert stream.weights is None
    state = stream.gen.get_state()
    drawn = stream._pick_person(50, stream.everyone)
    stream.gen.set_state(state)
    assert drawn.tolist() == torch.randint(0, 4, (50,), generator=stream.gen).tolist()


@pytest.mark.parametrize("oversample, message", [
    ((("with_mask", 3.0),), "matches no packed person"),  # a typo'd key would silently train on the old mix
    ((("", 3.0),), "non-empty key"),
    ((("test/1", 0.0),), "weight > 0"),
])
def test_a_bad_oversample_is_refused(colour_pack: Path, oversample: tuple, message: str):
    with pytest.raises(ValueError, match=message):
        PackedCompositeStream(colour_pack, size=64, batch_size=4, device="cpu", canvas=128,
                              mix=PackedMix(oversample=oversample))
