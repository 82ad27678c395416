"""The generator core: UNet (network), rectified-flow loss (objective), samplers."""

from __future__ import annotations

import functools
import json
import math

import pytest
import torch
from torch import nn

from polymodal.errors import ConfigError, DataError
from polymodal.models.flow import drop_conditions, rectified_flow_loss, sample_times
from polymodal.models.samplers import (
    ab2_sample,
    edit_sample,
    euler_sample,
    guided_velocity,
    heun_sample,
    inpaint_sample,
    time_steps,
    variation_sample,
)
from polymodal.models.unet import UNet

pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_unet(**overrides) -> UNet:
    kwargs = dict(image_channels=1, image_size=8, base_channels=8, channel_mults=(1, 2), cond_dim=4)
    kwargs.update(overrides)
    return UNet(**kwargs)


def randomized(net: UNet, seed: int = 0) -> UNet:
    """Give the zero-initialised layers random weights, so outputs depend on every input."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            if not p.any():
                p.copy_(0.1 * torch.randn(p.shape, generator=gen))
    return net.eval()


def test_one_batch_overfit():
    torch.manual_seed(0)
    net = tiny_unet()
    x0 = torch.rand(8, 1, 8, 8) * 2 - 1  # (8, 1, 8, 8)
    cond = torch.eye(4)[torch.arange(8) % 4]  # (8, 4)

    def fixed_batch_loss():
        # Same t and noise every call: a single batch to memorise.
        return rectified_flow_loss(net, x0, cond=cond, generator=torch.Generator().manual_seed(1))

    opt = torch.optim.Adam(net.parameters(), lr=5e-3)
    first = fixed_batch_loss().item()
    for _ in range(40):
        loss = fixed_batch_loss()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert fixed_batch_loss().item() < 0.05 * first


@pytest.mark.parametrize("size", [28, 13, 8, 7])
@pytest.mark.parametrize("channels", [1, 3])
def test_odd_sizes_are_padded_and_cropped_back(size, channels):
    net = randomized(
        UNet(image_channels=channels, image_size=size, base_channels=8, channel_mults=(1, 2, 4))
    )
    x = torch.randn(2, channels, size, size)
    out = net(x, torch.rand(2))
    assert out.shape == (2, channels, size, size)
    assert torch.isfinite(out).all()
    # The output is the top-left crop of the network run on the padded image.
    pad = (-size) % 4
    padded = torch.nn.functional.pad(x, (0, pad, 0, pad), mode="replicate")
    t = torch.full((2,), 0.5)
    assert torch.allclose(net(padded, t)[:, :, :size, :size], net(x, t), atol=1e-5)


@pytest.mark.parametrize("size", [32, 13])
def test_patches_cover_every_pixel_and_round_trip(size):
    """On 2x2 patches the network still sees and returns every pixel: changing one input
    pixel changes the output, shapes match, and the config (patch_size) rebuilds it."""
    net = randomized(UNet(image_channels=3, image_size=size, base_channels=8,
                          channel_mults=(1, 2), cond_dim=4, spatial_condition=True,
                          patch_size=2, coord_channels=True))
    x, t, cond = torch.randn(2, 3, size, size), torch.full((2,), 0.5), torch.randn(2, 4)
    out = net(x, t, cond)
    assert out.shape == x.shape and torch.isfinite(out).all()
    nudged = x.clone()
    nudged[:, :, size - 1, size - 1] += 1.0  # the last pixel, in the padded patch when odd
    assert not torch.allclose(net(nudged, t, cond), out)
    rebuilt = UNet(**json.loads(json.dumps(net.config())))
    rebuilt.load_state_dict(net.state_dict())
    assert rebuilt.config()["patch_size"] == 2
    assert torch.equal(rebuilt.eval()(x, t, cond), out)
    assert "patch_size" not in UNet(image_channels=3, image_size=size).config()  # default


def test_sized_for_matches_the_reference_scale():
    net28 = UNet.sized_for(28, 1, 10)
    num_params = sum(p.numel() for p in net28.parameters())
    assert 300_000 < num_params < 500_000  # the ~0.4M reference UNet
    assert net28.config()["channel_mults"] == [1, 2, 4]
    assert len(UNet.sized_for(64, 3, 10).config()["channel_mults"]) == 4
    assert len(UNet.sized_for(8, 1, 10).config()["channel_mults"]) == 2


def test_config_round_trip_rebuilds_an_identical_network():
    net = randomized(
        UNet(
            image_channels=3,
            image_size=13,
            base_channels=8,
            channel_mults=(1, 2),
            attention_resolutions=(7,),
            cond_dim=5,
            cross_attn_dim=6,
        )
    )
    config = json.loads(json.dumps(net.config()))
    rebuilt = UNet(**config)
    rebuilt.load_state_dict(net.state_dict())
    rebuilt.eval()
    x, t, cond = torch.randn(2, 3, 13, 13), torch.rand(2), torch.randn(2, 5)
    context, mask = torch.randn(2, 3, 6), torch.tensor([[True, True, False], [True, False, False]])
    assert rebuilt.config() == net.config()
    assert torch.equal(rebuilt(x, t, cond, context, mask), net(x, t, cond, context, mask))


def test_conditioning_and_context_change_outputs():
    net = randomized(tiny_unet(cross_attn_dim=6, attention_resolutions=(4,)))
    x, t = torch.randn(2, 1, 8, 8), torch.full((2,), 0.5)
    cond_a, cond_b = torch.eye(4)[[0, 1]], torch.eye(4)[[2, 3]]
    assert not torch.allclose(net(x, t, cond_a), net(x, t, cond_b))
    # None is the null condition: an all-zero vector.
    assert torch.equal(net(x, t, None), net(x, t, torch.zeros(2, 4)))
    context = torch.randn(2, 3, 6)
    with_ctx = net(x, t, cond_a, context)
    assert not torch.allclose(with_ctx, net(x, t, cond_a))
    # A fully masked context is no context at all.
    all_masked = torch.zeros(2, 3, dtype=torch.bool)
    assert torch.equal(net(x, t, cond_a, context, all_masked), net(x, t, cond_a))
    # And a masked token is ignored.
    ctx2 = context.clone()
    ctx2[:, 2] = 100.0
    mask = torch.tensor([[True, True, False]] * 2)
    assert torch.allclose(
        net(x, t, cond_a, context, mask), net(x, t, cond_a, ctx2, mask), atol=1e-6
    )


def test_samplers_are_deterministic_and_conditioning_changes_samples():
    net = randomized(tiny_unet())
    noise = torch.randn(4, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    cond = torch.eye(4)
    fn = functools.partial(guided_velocity, net, cond=cond, guidance=2.0)
    for sampler in (euler_sample, heun_sample, ab2_sample):
        a = sampler(fn, noise, num_steps=4)
        assert torch.equal(a, sampler(fn, noise.clone(), num_steps=4))
    other = functools.partial(guided_velocity, net, cond=cond.roll(1, dims=0), guidance=2.0)
    assert not torch.allclose(
        euler_sample(fn, noise, num_steps=4), euler_sample(other, noise, num_steps=4)
    )
    x = torch.rand(4, 1, 8, 8) * 2 - 1
    mask = torch.zeros(8, 8, dtype=torch.bool)
    mask[:, :4] = True
    for seed_a, seed_b, same in ((3, 3, True), (3, 4, False)):
        ga, gb = torch.Generator().manual_seed(seed_a), torch.Generator().manual_seed(seed_b)
        ea = edit_sample(fn, x, strength=0.6, num_steps=4, generator=ga)
        eb = edit_sample(fn, x, strength=0.6, num_steps=4, generator=gb)
        assert torch.equal(ea, eb) == same
        ia = inpaint_sample(
            fn, x, mask, num_steps=4, generator=torch.Generator().manual_seed(seed_a)
        )
        ib = inpaint_sample(
            fn, x, mask, num_steps=4, generator=torch.Generator().manual_seed(seed_b)
        )
        assert torch.equal(ia, ib) == same


def test_guidance_one_equals_plain_conditional_sampling_exactly():
    net = randomized(tiny_unet(cross_attn_dim=6))
    noise, cond, context = torch.randn(3, 1, 8, 8), torch.eye(4)[:3], torch.randn(3, 2, 6)

    def plain(x, t):
        return net(x, t, cond, context)

    guided = functools.partial(guided_velocity, net, cond=cond, context=context, guidance=1.0)
    assert torch.equal(
        euler_sample(guided, noise, num_steps=5), euler_sample(plain, noise, num_steps=5)
    )
    # Outside the guidance interval guidance is off, so an empty interval is plain too.
    off = functools.partial(
        guided_velocity, net, cond=cond, context=context, guidance=3.0, guidance_interval=(2.0, 3.0)
    )
    assert torch.equal(heun_sample(off, noise, num_steps=3), heun_sample(plain, noise, num_steps=3))
    # Guidance 3 is v_u + 3 (v_c - v_u), with the batched passes matching separate ones.
    t = torch.full((3,), 0.4)
    v_c = net(noise, t, cond, context)
    v_u = net(noise, t, torch.zeros_like(cond), context, torch.zeros(3, 2, dtype=torch.bool))
    v = guided_velocity(net, noise, t, cond=cond, context=context, guidance=3.0)
    assert torch.allclose(v, v_u + 3.0 * (v_c - v_u), atol=1e-5)
    assert not torch.allclose(v, v_c, atol=1e-3)


def test_above_condition_from_the_velocity_is_the_null_conditions_alone():
    """Condition-annealed sampling: above condition_from one unconditional pass (whatever
    the guidance), at or below it the guided velocity as before."""
    net = randomized(tiny_unet(cross_attn_dim=6))
    x, cond, context = torch.randn(3, 1, 8, 8), torch.eye(4)[:3], torch.randn(3, 2, 6)
    null_mask = torch.zeros(3, 2, dtype=torch.bool)
    for t_now, annealed in ((0.9, True), (0.8, False), (0.5, False)):
        t = torch.full((3,), t_now)
        v = guided_velocity(net, x, t, cond=cond, context=context, guidance=3.0,
                            guidance_interval=(0.0, 1.0), condition_from=0.8)
        v_u = net(x, t, torch.zeros_like(cond), context, null_mask)
        v_guided = guided_velocity(net, x, t, cond=cond, context=context, guidance=3.0,
                                   guidance_interval=(0.0, 1.0))
        assert torch.equal(v, v_u) == annealed
        assert torch.equal(v, v_guided) == (not annealed)


def test_autoguidance_extrapolates_from_the_weaker_network_conditional_in_both():
    net, weak = randomized(tiny_unet(), seed=0), randomized(tiny_unet(), seed=1)
    noise, cond, weak_cond = torch.randn(3, 1, 8, 8), torch.eye(4)[:3], torch.eye(4)[1:4]
    t = torch.full((3,), 0.5)
    v = guided_velocity(net, noise, t, cond=cond, guidance=2.5, guide_net=weak,
                        guide_cond=weak_cond)
    v_main, v_weak = net(noise, t, cond), weak(noise, t, weak_cond)  # no null condition
    assert torch.allclose(v, v_weak + 2.5 * (v_main - v_weak), atol=1e-5)
    # Guided by itself it is plain conditional sampling; outside the interval too.
    assert torch.allclose(guided_velocity(net, noise, t, cond=cond, guidance=2.5,
                                          guide_net=net, guide_cond=cond), v_main, atol=1e-5)
    off = guided_velocity(net, noise, t, cond=cond, guidance=2.5, guide_net=weak,
                          guide_cond=weak_cond, guidance_interval=(0.6, 1.0))
    assert torch.equal(off, v_main)


def test_edit_with_strength_zero_returns_input_and_one_is_plain_sampling():
    net = randomized(tiny_unet())
    fn = functools.partial(guided_velocity, net, cond=torch.eye(4)[:2])
    x = torch.rand(2, 1, 8, 8) * 2 - 1
    assert torch.equal(edit_sample(fn, x, strength=0.0, num_steps=8), x)
    full = edit_sample(fn, x, strength=1.0, num_steps=6, generator=torch.Generator().manual_seed(5))
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(5))
    assert torch.equal(full, euler_sample(fn, noise, num_steps=6))
    # A small strength stays closer to the input than a large one.
    near = edit_sample(fn, x, strength=0.2, generator=torch.Generator().manual_seed(5))
    far = edit_sample(fn, x, strength=0.9, generator=torch.Generator().manual_seed(5))
    assert (near - x).abs().mean() < (far - x).abs().mean()
    with pytest.raises(ConfigError, match="strength"):
        edit_sample(fn, x, strength=1.5)


def test_inpainting_keeps_known_pixels_exactly():
    net = randomized(tiny_unet())
    fn = functools.partial(guided_velocity, net, cond=torch.eye(4)[:2], guidance=2.0)
    x_known = torch.rand(2, 1, 8, 8) * 2 - 1
    mask = torch.zeros(2, 1, 8, 8, dtype=torch.bool)
    mask[:, :, 2:6, 2:6] = True
    for method in ("euler", "heun", "ab2"):
        out = inpaint_sample(
            fn,
            x_known,
            mask,
            num_steps=5,
            method=method,
            generator=torch.Generator().manual_seed(0),
        )
        assert torch.equal(out[mask], x_known[mask])
        assert not torch.allclose(out[~mask], x_known[~mask])
    with pytest.raises(DataError, match="mask"):
        inpaint_sample(fn, x_known, torch.ones(3, 3, dtype=torch.bool))


def test_variations_differ_from_each_other_and_keep_order():
    net = randomized(tiny_unet())
    x = torch.rand(2, 1, 8, 8) * 2 - 1
    fn = functools.partial(guided_velocity, net, cond=torch.eye(4)[[0, 0, 0, 1, 1, 1]])
    out = variation_sample(
        fn,
        x,
        num_variations=3,
        strength=0.5,
        num_steps=4,
        generator=torch.Generator().manual_seed(0),
    )
    assert out.shape == (6, 1, 8, 8)
    assert not torch.allclose(out[0], out[1])
    # Each variation is nearer its own source than the other one.
    assert (out[:3] - x[0]).abs().mean() < (out[:3] - x[1]).abs().mean()


def test_heun_is_second_order_on_a_known_ode():
    # dx/dt = x from t = 1 to 0 gives x(0) = x(1) / e.
    noise = torch.ones(1, 1, 2, 2)
    exact = noise / math.e

    def velocity(x, t):
        return x

    euler_err = (euler_sample(velocity, noise, num_steps=8) - exact).abs().max()
    heun_err = (heun_sample(velocity, noise, num_steps=8) - exact).abs().max()
    assert heun_err < euler_err / 5


@pytest.mark.parametrize("shift", [1.0, 3.0])
def test_adams_bashforth_is_second_order_with_one_evaluation_per_step(shift):
    """dx/dt = x again: doubling the steps cuts AB2's error about 4x (Euler's 2x), on
    uneven time grids too, with one velocity call per step."""
    noise = torch.ones(1, 1, 2, 2)
    exact = noise / math.e
    calls = []

    def velocity(x, t):
        calls.append(float(t[0]))
        return x

    errors = [float((ab2_sample(velocity, noise, num_steps=n, shift=shift) - exact).abs().max())
              for n in (16, 32)]
    assert len(calls) == 16 + 32
    assert 3.0 < errors[0] / errors[1] < 5.0
    euler = [float((euler_sample(lambda x, t: x, noise, num_steps=n, shift=shift) - exact)
                   .abs().max()) for n in (16, 32)]
    assert errors[1] < euler[1] / 5 and 1.5 < euler[0] / euler[1] < 2.5


def test_time_steps_run_from_noise_to_data_and_shift_moves_them():
    ts = time_steps(8)
    assert ts[0] == 1.0 and ts[-1] == 0.0 and len(ts) == 9
    assert all(a > b for a, b in zip(ts, ts[1:], strict=False))
    assert time_steps(8, shift=3.0)[4] > ts[4] > time_steps(8, shift=0.5)[4]
    with pytest.raises(ConfigError, match="num_steps"):
        time_steps(0)


def test_condition_dropout_and_time_sampling():
    gen = torch.Generator().manual_seed(0)
    cond, mask = torch.ones(1000, 3), torch.ones(1000, 2, dtype=torch.bool)
    dropped, dropped_mask = drop_conditions(cond, 0.25, gen, context_mask=mask)
    rows = (dropped == 0).all(dim=1)
    assert 0.18 < rows.float().mean() < 0.32
    assert torch.equal(rows, ~dropped_mask.any(dim=1))  # the same rows lose both
    assert cond.all()  # the input is untouched
    assert drop_conditions(cond, 0.0, gen)[0] is cond
    assert not drop_conditions(cond, 1.0, gen)[0].any()
    with pytest.raises(ConfigError, match="p="):
        drop_conditions(cond, 1.5)
    t = sample_times(20_000, generator=gen)
    assert 0 < t.min() and t.max() < 1 and abs(t.median().item() - 0.5) < 0.02
    assert (t - 0.5).abs().lt(0.25).float().mean() > 0.6  # logit-normal: mass in the middle
    with pytest.raises(ConfigError, match="time_sampling"):
        sample_times(4, time_sampling="cosine")


def test_user_mistakes_raise_clear_errors():
    with pytest.raises(ConfigError, match="attention_resolutions"):
        UNet(image_channels=1, image_size=28, channel_mults=(1, 2, 4), attention_resolutions=(5,))
    with pytest.raises(ConfigError, match="image_channels=0"):
        UNet(image_channels=0, image_size=28)
    net = tiny_unet()
    with pytest.raises(DataError, match="expected \\(B, 1, H, W\\)"):
        net(torch.randn(2, 3, 8, 8), torch.rand(2))
    with pytest.raises(DataError, match="cond"):
        net(torch.randn(2, 1, 8, 8), torch.rand(2), torch.randn(2, 7))


def test_a_spatial_condition_map_says_where_per_cell():
    """``spatial_condition`` adds a learned (C, h, w) map of the condition at the
    bottleneck: zero at initialisation (the network is what it was), and once learned a
    flat image's output differs by condition in a spatially uneven way."""
    with pytest.raises(ConfigError, match="spatial_condition=True needs a condition"):
        UNet(image_channels=1, image_size=16, spatial_condition=True)
    torch.manual_seed(0)
    net = UNet(image_channels=1, image_size=16, base_channels=8, channel_mults=(1, 2),
               cond_dim=4, spatial_condition=True)
    assert not net.cond_map["conv"].weight.any()  # zero-initialised
    net = randomized(net)
    flat, t = torch.zeros(2, 1, 16, 16), torch.full((2,), 0.5)
    a, b = torch.eye(4)[[0, 0]], torch.eye(4)[[0, 3]]
    with torch.no_grad():
        net.cond_proj.weight.zero_()  # the global path carries nothing about cond
        net.cond_map["conv"].weight.zero_()
        assert torch.equal(net(flat, t, b), net(flat, t, a))  # a zero map adds nothing
        nn.init.normal_(net.cond_map["conv"].weight)
        out = net(flat, t, b)
    diff = (out[1] - out[0]).abs()[0]  # (16, 16): what cond 3 changes vs cond 0
    assert torch.equal(out[0], net(flat, t, a)[0])
    assert diff.max() > 1e-3 and diff.std() > 0.1 * diff.mean()  # uneven over the image
    assert net.config()["spatial_condition"] is True
    rebuilt = UNet(**json.loads(json.dumps(net.config())))
    rebuilt.load_state_dict(net.state_dict())
    with torch.no_grad():
        assert torch.equal(rebuilt(flat, t, b), out)
        # Images of another size than image_size: the map is resized to the bottleneck.
        assert net(torch.zeros(2, 1, 12, 20), t, b).shape == (2, 1, 12, 20)


def test_coordinate_channels_let_the_network_tell_where_it_is():
    # One level (no striding) is translation-equivariant: a flat image gives the same
    # output at every pixel beyond the padding's reach. Coordinate channels break that.
    flat = torch.zeros(1, 1, 32, 32)
    t = torch.full((1,), 0.5)
    plain = randomized(UNet(image_channels=1, image_size=32, base_channels=8, channel_mults=(1,)))
    inner = plain(flat, t)[0, 0, 14:18, 14:18]
    assert torch.allclose(inner, inner[0, 0].expand_as(inner), atol=1e-5)
    coord = randomized(UNet(image_channels=1, image_size=32, base_channels=8, channel_mults=(1,),
                            coord_channels=True))
    inner = coord(flat, t)[0, 0, 14:18, 14:18]
    assert (inner - inner[0, 0]).abs().max() > 1e-4
    # The flag is part of the saved config (off unless asked), and odd sizes still crop back.
    assert plain.config()["coord_channels"] is False
    rebuilt = UNet(**json.loads(json.dumps(coord.config())))
    rebuilt.load_state_dict(coord.state_dict())
    assert torch.equal(rebuilt(flat, t), coord(flat, t))
    odd = randomized(UNet(image_channels=3, image_size=13, base_channels=8,
                          channel_mults=(1, 2), coord_channels=True))
    assert odd(torch.randn(2, 3, 13, 13), torch.rand(2)).shape == (2, 3, 13, 13)
