"""The sprite video generator: objects drawn once, placed by bouncing paths, the brighter sprite on top."""

import pytest
import torch
from torch.testing import assert_close

from sagan.models.video_sprites import TINY, VideoSpriteGenerator, fold


def test_fold_reflects_paths_at_both_edges():
    path = torch.tensor([0.0, 0.25, 1.0, 1.25, 2.0, 2.5, -0.25, -1.5])
    assert_close(fold(path), torch.tensor([0.0, 0.25, 1.0, 0.75, 0.0, 0.5, 0.25, 0.5]))


def test_place_pastes_the_sprite_at_whole_pixel_corners():
    torch.manual_seed(0)
    g = VideoSpriteGenerator(**TINY["sprite-generator-16"][1])  # 8x8 sprites in 16x16 frames: free range 8
    sprite = torch.rand(1, 1, 8, 8)
    corners = torch.tensor([[[0.0, 0.0], [3 / 8, 5 / 8], [1.0, 0.5], [0.5, 1.0]]])  # [1, T, 2] (row, column)
    frames = g.place(sprite, corners)  # [1, T, 1, 16, 16]
    for t, (row, col) in enumerate([(0, 0), (3, 5), (8, 4), (4, 8)]):
        expected = torch.zeros(1, 16, 16)
        expected[:, row : row + 8, col : col + 8] = sprite[0]
        assert_close(frames[0, t], expected)


def test_straight_paths_bounce_and_keep_their_speed():
    torch.manual_seed(0)
    kwargs = dict(TINY["sprite-generator-16"][1], latent_depth=0, num_frames=12, max_speed=0.25)
    g = VideoSpriteGenerator(**kwargs)
    places = g.places(torch.randn(64, 2, g.motion_dim))  # [N, S, T, 2]
    assert places.min() >= 0 and places.max() <= 1
    steps = (places[:, :, 1:] - places[:, :, :-1]).abs()  # [N, S, T-1, 2]
    straight = (steps - steps[:, :, :1]).abs() < 1e-5
    assert straight.float().mean() > 0.6  # constant speed except at the frames of a bounce
    bounced = (places[:, :, 1:] - places[:, :, :-1]).sign().diff(dim=2).abs().amax(dim=(2, 3)) > 0
    assert bounced.any() and not bounced.all()
    speed_px = steps * (g.image_size - g.sprite_size)
    assert speed_px.max() <= 0.25 * g.image_size + 1e-3  # within max_speed (the learned change starts near 0)


def test_content_code_draws_and_motion_code_moves():
    torch.manual_seed(0)
    g = VideoSpriteGenerator(**TINY["sprite-generator-16"][1]).eval()
    z = torch.randn(3, g.z_dim)
    content, motion = g.split(z)
    with torch.no_grad():
        other_motion = g(torch.cat([content, torch.randn_like(motion)], dim=2).flatten(1))
        other_content = g(torch.cat([torch.randn_like(content), motion], dim=2).flatten(1))
        clips = g(z)
    for changed in (other_motion, other_content):  # every clip changes
        assert ((changed - clips).abs().amax(dim=(1, 2, 3, 4)) > 0.05).all()
    # the motion code alone sets the places, the content code alone the sprites
    new_content, same_motion = g.split(torch.cat([torch.randn_like(content), motion], dim=2).flatten(1))
    assert_close(g.places(same_motion), g.places(motion))
    assert (g.draw(new_content.flatten(0, 1)) - g.draw(content.flatten(0, 1))).abs().amax() > 0.05


def test_clip_is_the_brighter_of_its_sprites_in_every_frame():
    torch.manual_seed(0)
    g = VideoSpriteGenerator(**TINY["sprite-generator-16"][1]).eval()
    z = torch.randn(2, g.z_dim)
    with torch.no_grad():
        clips = g(z)
        content, motion = g.split(z)
        sprites = g.draw(content.flatten(0, 1)).view(2, 2, 1, 8, 8)
        places = g.places(motion)
        layers = [g.place(sprites[:, k], places[:, k]) for k in range(2)]  # each [N, T, 1, 16, 16]
    assert_close(clips, torch.maximum(*layers) * 2 - 1)
    assert clips.shape == (2, g.num_frames, 1, 16, 16)


@pytest.mark.parametrize("kwargs, match", [
    (dict(motion_dim=3), "motion_dim"),
    (dict(max_speed=0.0), "max_speed"),
    (dict(sprites=0), "sprites"),
    (dict(channel_multipliers=(4, 2, 1, 1)), "32px sprites"),
    (dict(channel_multipliers=(4,)), "two entries"),
    (dict(sprite_size=32), "32px sprites"),
    (dict(sprite_size=0), "sprite_size"),
    (dict(latent_dim=30), "divisible"),
    (dict(norm="layer"), "norm must be 'batch', or 'group'"),
    (dict(norm="group", num_classes=3), "without classes, got 'group' with 3 classes"),
])
def test_bad_options_are_refused_in_one_line(kwargs, match):
    with pytest.raises(ValueError, match=match) as error:
        VideoSpriteGenerator(**kwargs)
    assert "\n" not in str(error.value)


def test_whole_pixels_paste_sharp_sprites_and_pass_gradients_to_places():
    torch.manual_seed(0)
    sharp = VideoSpriteGenerator(**TINY["sprite-generator-16-whole"][1])
    blurred = VideoSpriteGenerator(**TINY["sprite-generator-16"][1])
    sprite = torch.rand(1, 1, 8, 8)
    corners = torch.tensor([[[3.3 / 8, 4.6 / 8]]], requires_grad=True)  # 3.3 and 4.6 pixels: rounded to 3 and 5
    frames = sharp.place(sprite, corners)
    expected = torch.zeros(1, 16, 16)
    expected[:, 3:11, 5:13] = sprite[0]
    assert_close(frames[0, 0], expected)
    assert (blurred.place(sprite, corners)[0, 0] - expected).abs().amax() > 0.05  # sub-pixel: resampled
    (frames * torch.randn_like(frames)).sum().backward()  # straight-through: the places still learn
    assert corners.grad is not None and corners.grad.abs().sum() > 0


def test_sprite_size_scales_the_drawing_to_the_placed_side():
    torch.manual_seed(0)
    g = VideoSpriteGenerator(**dict(TINY["sprite-generator-16"][1], sprite_size=6)).eval()  # drawn 8x8, shown 6x6
    content, motion = g.split(torch.randn(2, g.z_dim))
    with torch.no_grad():
        sprites = g.draw(content.flatten(0, 1))
        h = g.blocks[0](g.stem(content.flatten(0, 1)).view(4, -1, 4, 4))
        drawn = torch.sigmoid(g.out_conv(torch.relu(g.out_norm(h))))  # the 8x8 drawing
        clips = g(torch.cat([content, motion], dim=2).flatten(1))
    assert sprites.shape == (4, 1, 6, 6) and g.drawn_size == 8
    assert_close(sprites, torch.nn.functional.interpolate(drawn, size=(6, 6), mode="bilinear", align_corners=False))
    assert clips.shape == (2, g.num_frames, 1, 16, 16)
    assert g.places(motion).max() <= 1  # free range 16 - 6


def test_group_norm_draws_alike_in_training_and_in_sampling():
    """Per-sample statistics: a sprite does not depend on its batch or on running statistics (batch norm's do)."""
    torch.manual_seed(0)
    content = torch.randn(6, 8)
    for norm, alike in (("group", True), ("batch", False)):
        g = VideoSpriteGenerator(**dict(TINY["sprite-generator-16-group"][1], norm=norm))
        with torch.no_grad():
            training = g.train().draw(content)
            alone = g.draw(content[:1])  # the first sprite drawn in a batch of its own
            sampling = g.eval().draw(content)
        assert torch.allclose(training, sampling, atol=1e-6) is alike
        assert torch.allclose(training[:1], alone, atol=1e-6) is alike
