"""A compact pixel-space UNet for conditional image generation on a CPU.

The network only maps ``(x_t, t, condition) -> velocity``; the training objective lives
in :mod:`polymodal.models.flow` and the samplers in :mod:`polymodal.models.samplers`.

Design, and where each piece comes from:

- Residual blocks: GroupNorm -> SiLU -> 3x3 conv, twice, with a skip (Ho et al. 2020,
  "Denoising Diffusion Probabilistic Models", Appendix B).
- The time embedding (sinusoidal, Vaswani et al. 2017, Sec. 3.5) plus a linear projection
  of the condition vector is turned into a per-channel scale and shift of the second
  GroupNorm (FiLM, Perez et al. 2018; "adaptive group norm" in Dhariwal & Nichol 2021,
  Sec. 3): ``h = GN(h) * (1 + scale) + shift``.
- The last conv of every residual block, every attention output projection and the
  output conv start at zero, so the untrained network is the identity on its skip path
  and predicts 0 (Goyal et al. 2017; Dhariwal & Nichol 2021), which made the first
  minutes of CPU training markedly steadier.
- Self-attention only at the resolutions listed (the lowest ones: attention at 28x28 costs
  (784)^2 per image, at 7x7 only 49^2); optional cross-attention over a sequence of
  text/condition tokens (Rombach et al. 2022, "Latent Diffusion", Sec. 3.3), in the
  bottleneck and at the self-attention resolutions, or at the resolutions listed in
  ``cross_attention_resolutions``. The tokens come either as ``context`` or packed at the
  end of ``cond`` (``context_tokens``), so that samplers and exports that pass one
  condition tensor carry them unchanged.
- Odd sizes: the input is padded (replicate) up to a multiple of ``2**(levels-1)`` and the
  output is cropped back, so 13x13 or 28x28 with four levels work.

The condition convention shared with the objective and samplers: ``cond=None`` is the
same as an all-zero condition vector (the null condition used for classifier-free
guidance), and a ``context`` whose ``context_mask`` is all False contributes exactly
nothing (the same as ``context=None``).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from polymodal.errors import ConfigError, DataError

__all__ = ["UNet"]


# Channels of the condition's coarse grid before the 1x1 conv (UNet(spatial_condition=True)).
SPATIAL_MAP_CHANNELS = 8


def _num_groups(channels: int) -> int:
    """GroupNorm groups: 8 when possible, else the largest divisor of ``channels`` <= 8."""
    for groups in (8, 4, 2, 1):
        if channels % groups == 0:
            return groups
    raise AssertionError("unreachable: 1 divides every channel count")


def _zero_init(module: nn.Module) -> nn.Module:
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding of ``t`` in [0, 1]; (B,) -> (B, dim).

    ``t`` is scaled by 1000 so the lowest frequencies still separate nearby times
    (the DDPM convention of integer steps 0..999).
    """
    half = dim // 2
    freqs = torch.exp(-math.log(10_000.0) * torch.arange(half, device=t.device) / half)
    args = 1000.0 * t.float()[:, None] * freqs[None, :]  # (B, half)
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=1)  # (B, 2*half)
    if dim % 2:
        emb = F.pad(emb, (0, 1))
    return emb


class ResBlock(nn.Module):
    """GroupNorm-SiLU-conv twice, with FiLM scale/shift from the embedding."""

    def __init__(self, in_channels: int, out_channels: int, emb_dim: int, dropout: float):
        super().__init__()
        self.norm1 = nn.GroupNorm(_num_groups(in_channels), in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.emb_proj = nn.Linear(emb_dim, 2 * out_channels)
        self.norm2 = nn.GroupNorm(_num_groups(out_channels), out_channels)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = _zero_init(nn.Conv2d(out_channels, out_channels, 3, padding=1))
        self.skip = (
            nn.Conv2d(in_channels, out_channels, 1)
            if in_channels != out_channels
            else nn.Identity()
        )

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))  # (B, C_out, H, W)
        scale, shift = self.emb_proj(emb)[:, :, None, None].chunk(2, dim=1)  # (B, C_out, 1, 1) x2
        h = self.norm2(h) * (1 + scale) + shift
        h = self.conv2(self.dropout(F.silu(h)))
        return self.skip(x) + h


class SelfAttention(nn.Module):
    """Multi-head self-attention over the H*W positions, residual."""

    def __init__(self, channels: int):
        super().__init__()
        self.num_heads = max(1, channels // 32)
        self.norm = nn.GroupNorm(_num_groups(channels), channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.out = _zero_init(nn.Conv2d(channels, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, C, H, W = x.shape
        qkv = self.qkv(self.norm(x)).reshape(B, 3, self.num_heads, C // self.num_heads, H * W)
        q, k, v = qkv.transpose(-1, -2).unbind(dim=1)  # (B, heads, HW, C/heads) each
        h = F.scaled_dot_product_attention(q, k, v)  # (B, heads, HW, C/heads)
        h = h.transpose(-1, -2).reshape(B, C, H, W)
        return x + self.out(h)


class CrossAttention(nn.Module):
    """Attention from every pixel to a sequence of context tokens, residual.

    Rows whose context is entirely masked out (the null condition) get exactly zero from
    this block, so "no context" and "all tokens masked" are the same input.
    """

    def __init__(self, channels: int, context_dim: int):
        super().__init__()
        self.num_heads = max(1, channels // 32)
        self.norm = nn.GroupNorm(_num_groups(channels), channels)
        self.q = nn.Conv2d(channels, channels, 1)
        self.kv = nn.Linear(context_dim, 2 * channels)
        self.out = _zero_init(nn.Conv2d(channels, channels, 1))

    def forward(
        self, x: torch.Tensor, context: torch.Tensor, context_mask: torch.Tensor
    ) -> torch.Tensor:
        B, C, H, W = x.shape
        L, heads = context.shape[1], self.num_heads
        q = self.q(self.norm(x)).reshape(B, heads, C // heads, H * W).transpose(-1, -2)
        k, v = self.kv(context).reshape(B, L, 2, heads, C // heads).permute(2, 0, 3, 1, 4)
        # q: (B, heads, HW, C/heads); k, v: (B, heads, L, C/heads)
        has_tokens = context_mask.any(dim=1)  # (B,)
        # A fully masked row would make softmax divide by zero (NaN); let it attend to
        # everything and zero its output below instead.
        attend = context_mask | ~has_tokens[:, None]  # (B, L)
        h = F.scaled_dot_product_attention(q, k, v, attn_mask=attend[:, None, None, :])
        h = h.transpose(-1, -2).reshape(B, C, H, W)
        return x + self.out(h) * has_tokens[:, None, None, None].to(h.dtype)


class _Level(nn.Module):
    """The residual blocks of one resolution, each optionally followed by attention."""

    def __init__(
        self,
        channels_in: int,
        channels: int,
        num_blocks: int,
        emb_dim: int,
        dropout: float,
        self_attention: bool,
        context_dim: int,
        skip_channels: int = 0,
    ):
        super().__init__()
        self.blocks = nn.ModuleList()
        self.attns = nn.ModuleList()
        self.cross = nn.ModuleList()
        for i in range(num_blocks):
            block_in = (channels_in if i == 0 else channels) + (skip_channels if i == 0 else 0)
            self.blocks.append(ResBlock(block_in, channels, emb_dim, dropout))
            self.attns.append(SelfAttention(channels) if self_attention else nn.Identity())
            if context_dim:
                self.cross.append(CrossAttention(channels, context_dim))

    def forward(self, h, emb, context, context_mask):
        for i, (block, attn) in enumerate(zip(self.blocks, self.attns, strict=True)):
            h = attn(block(h, emb))
            if self.cross and context is not None:
                h = self.cross[i](h, context, context_mask)
        return h


class UNet(nn.Module):
    """Predicts the flow velocity ``v(x_t, t | cond, context)`` for images in [-1, 1].

    Args:
        image_channels: 1 (grey) or 3 (RGB).
        image_size: side of the (square) training images, in pixels; used to pick the
            attention levels and saved in :meth:`config`. Other sizes also run.
        base_channels: width of the first level. ``None``: see :meth:`sized_for`.
        channel_mults: width multiplier per level; ``len`` is the number of levels
            (``len - 1`` downsamplings). ``None``: see :meth:`sized_for`.
        num_res_blocks: residual blocks per level (the decoder uses the same count).
        attention_resolutions: feature-map sides (after padding) that get
            self-attention, e.g. ``(7,)`` for 28x28 with three levels. Keep to the lowest.
        cond_dim: length of the condition vector (one-hot class, fused encoder output);
            0 for an unconditional model.
        cross_attn_dim: width of the ``context`` tokens for cross-attention (text);
            0 disables it. Cross-attention runs in the bottleneck and at every
            attention resolution, unless ``cross_attention_resolutions`` says where.
        cross_attention_resolutions: feature-map sides that get cross-attention (the
            bottleneck's side included or not); ``None``: the bottleneck and the
            self-attention resolutions.
        context_tokens: ``L`` > 0 reads the tokens from the last ``L * cross_attn_dim``
            entries of ``cond`` (``cond_dim`` counts them), ``(B, L, cross_attn_dim)``
            row-major; an all-zero token is masked out, so the all-zero null condition
            carries no tokens. The rest of ``cond`` drives FiLM and the spatial map.
        dropout: dropout inside residual blocks.
        coord_channels: append two coordinate channels (x and y in [-1, 1]) to the input.
            Convolutions are translation-equivariant and the condition enters globally
            (added to the time embedding), so without them "at the top left" has no
            handle: the network can only tell where it is from the zero padding.
        patch_size: 1, or 2 / 4 to run the network on p x p patches of pixels (each a
            position of p*p*C channels, ``pixel_unshuffle``; the output is shuffled back): a
            p^2 smaller grid, so the same computation in fewer, wider convolutions.
        spatial_condition: also add a learned map of the condition to the bottleneck's
            feature map: ``cond`` -> linear -> (SPATIAL_MAP_CHANNELS, h, w) -> zero-initialised
            1x1 conv -> (C, h, w), the way a DCGAN generator turns its vector into a grid.
            The condition can then say *where* ("at the top left") directly, per cell of
            the coarsest grid, instead of through a per-channel scale and shift that is
            the same at every pixel. Needs ``cond_dim > 0``.

    On CPU, run it in ``channels_last`` memory format (``net.to(memory_format=
    torch.channels_last)`` and inputs likewise): an evaluation is cheaper that way
    (bench/RESULTS.md, 'generator_core_probe').
    """

    def __init__(
        self,
        *,
        image_channels: int,
        image_size: int,
        base_channels: int | None = None,
        channel_mults: tuple[int, ...] | list[int] | None = None,
        num_res_blocks: int = 1,
        attention_resolutions: tuple[int, ...] | list[int] = (),
        cond_dim: int = 0,
        cross_attn_dim: int = 0,
        dropout: float = 0.0,
        coord_channels: bool = False,
        spatial_condition: bool = False,
        cross_attention_resolutions: tuple[int, ...] | list[int] | None = None,
        context_tokens: int = 0,
        patch_size: int = 1,
    ):
        super().__init__()
        default_base, default_mults = _default_widths(image_size)
        base_channels = default_base if base_channels is None else int(base_channels)
        channel_mults = tuple(default_mults if channel_mults is None else channel_mults)
        attention_resolutions = tuple(int(r) for r in attention_resolutions)
        _validate(
            image_channels=image_channels,
            image_size=image_size,
            base_channels=base_channels,
            channel_mults=channel_mults,
            num_res_blocks=num_res_blocks,
            cond_dim=cond_dim,
            cross_attn_dim=cross_attn_dim,
            dropout=dropout,
            patch_size=patch_size,
        )
        if context_tokens and not (isinstance(context_tokens, int) and cross_attn_dim
                                   and cond_dim > context_tokens * cross_attn_dim):
            raise ConfigError(f"context_tokens={context_tokens!r} needs cross_attn_dim > 0 and "
                              f"cond_dim > context_tokens * cross_attn_dim (got cross_attn_dim="
                              f"{cross_attn_dim}, cond_dim={cond_dim}); set context_tokens=0")
        if spatial_condition and not cond_dim:
            raise ConfigError("spatial_condition=True needs a condition (cond_dim > 0); an "
                              "unconditional UNet has nothing to map. Leave it False.")
        self._config = dict(
            image_channels=int(image_channels),
            image_size=int(image_size),
            base_channels=base_channels,
            channel_mults=list(channel_mults),
            num_res_blocks=int(num_res_blocks),
            attention_resolutions=list(attention_resolutions),
            cond_dim=int(cond_dim),
            cross_attn_dim=int(cross_attn_dim),
            dropout=float(dropout),
            coord_channels=bool(coord_channels),
            spatial_condition=bool(spatial_condition),
        )
        if cross_attention_resolutions is not None:
            self._config["cross_attention_resolutions"] = [int(r) for r in
                                                           cross_attention_resolutions]
        if context_tokens:
            self._config["context_tokens"] = int(context_tokens)
        if patch_size != 1:  # saved only when used: folders from before load as they were
            self._config["patch_size"] = int(patch_size)
        self.patch = int(patch_size)
        self.image_channels = image_channels
        self.coord_channels = bool(coord_channels)
        self.cond_dim = cond_dim
        self.cross_attn_dim = cross_attn_dim
        self.context_tokens = int(context_tokens)
        film_dim = cond_dim - self.context_tokens * cross_attn_dim  # cond's non-token part
        self.num_levels = len(channel_mults)
        self.pad_multiple = self.patch * 2 ** (self.num_levels - 1)
        padded_size = -(-image_size // self.pad_multiple) * self.pad_multiple // self.patch
        level_sizes = [padded_size // 2**i for i in range(self.num_levels)]
        # Without cross_attention_resolutions: the self-attention levels and the middle.
        cross_sides = (set(attention_resolutions) if cross_attention_resolutions is None
                       else {int(r) for r in cross_attention_resolutions})
        unknown = sorted((set(attention_resolutions) | cross_sides) - set(level_sizes))
        if unknown:
            raise ConfigError(
                f"attention_resolutions={list(attention_resolutions)} or "
                f"cross_attention_resolutions includes {unknown}, "
                f"which is not a feature-map side of this UNet; the sides are {level_sizes} "
                f"(image_size={image_size} padded to {padded_size}). Pick from those."
            )
        widths = [base_channels * m for m in channel_mults]
        emb_dim = 4 * base_channels

        self.time_dim = base_channels
        self.time_mlp = nn.Sequential(
            nn.Linear(base_channels, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim)
        )
        self.cond_proj = nn.Linear(film_dim, emb_dim) if cond_dim else None
        in_channels = image_channels * self.patch**2 + (2 if coord_channels else 0)
        self.conv_in = nn.Conv2d(in_channels, base_channels, 3, padding=1)

        self.down = nn.ModuleList()
        self.downsample = nn.ModuleList()
        channels = base_channels
        for i, width in enumerate(widths):
            attn = level_sizes[i] in attention_resolutions
            ctx = cross_attn_dim if level_sizes[i] in cross_sides else 0
            self.down.append(_Level(channels, width, num_res_blocks, emb_dim, dropout, attn, ctx))
            channels = width
            if i < self.num_levels - 1:
                self.downsample.append(nn.Conv2d(width, width, 3, stride=2, padding=1))

        self.bottom_size = level_sizes[-1]
        self.cond_map = None
        if spatial_condition:
            k = SPATIAL_MAP_CHANNELS
            self.cond_map = nn.ModuleDict({
                "linear": nn.Linear(film_dim, k * self.bottom_size**2),
                "conv": _zero_init(nn.Conv2d(k, channels, 1)),
            })

        lowest_attn = level_sizes[-1] in attention_resolutions
        mid_ctx = cross_attn_dim if (cross_attention_resolutions is None
                                     or level_sizes[-1] in cross_sides) else 0
        self.mid = _Level(channels, channels, 1, emb_dim, dropout, lowest_attn, mid_ctx)

        self.up = nn.ModuleList()
        self.upsample = nn.ModuleList()
        for i in reversed(range(self.num_levels)):
            width = widths[i]
            attn = level_sizes[i] in attention_resolutions
            ctx = cross_attn_dim if level_sizes[i] in cross_sides else 0
            if i < self.num_levels - 1:
                self.upsample.append(nn.Conv2d(channels, width, 3, padding=1))
                channels = width
            self.up.append(
                _Level(channels, width, num_res_blocks, emb_dim, dropout, attn, ctx, width)
            )
            channels = width

        self.norm_out = nn.GroupNorm(_num_groups(channels), channels)
        self.conv_out = _zero_init(nn.Conv2d(channels, image_channels * self.patch**2, 3,
                                             padding=1))

    @classmethod
    def sized_for(
        cls,
        image_size: int,
        image_channels: int,
        cond_dim: int = 0,
        *,
        cross_attn_dim: int = 0,
        **overrides: Any,
    ) -> UNet:
        """A UNet whose widths and depth suit ``image_size`` on a CPU budget.

        - up to 16 px (8x8 digits): two levels (8 -> 4), widths (32, 64).
        - up to 32 px (28x28, 32x32): three levels (28 -> 14 -> 7), widths (16, 32, 64),
          ~0.4M parameters: the reference that reached conditional accuracy 0.94 on
          Fashion-MNIST in 15 CPU-minutes.
        - up to 64 px: one level more, widths (16, 32, 64, 128), self-attention at 8x8.
        - larger: one more level per doubling, widths capped at 256.

        ``overrides`` are passed to the constructor (e.g. ``base_channels=24``).
        """
        kwargs: dict[str, Any] = cls.sizing_for(image_size)
        kwargs.update(overrides)
        return cls(
            image_channels=image_channels,
            image_size=image_size,
            cond_dim=cond_dim,
            cross_attn_dim=cross_attn_dim,
            **kwargs,
        )

    @staticmethod
    def sizing_for(image_size: int) -> dict[str, Any]:
        """The widths, depth and attention :meth:`sized_for` gives ``image_size``:
        ``base_channels``, ``channel_mults`` and ``attention_resolutions``."""
        base, mults = _default_widths(image_size)
        attention: tuple[int, ...] = ()
        if image_size > 32:
            padded = -(-image_size // 2 ** (len(mults) - 1)) * 2 ** (len(mults) - 1)
            attention = (padded // 2 ** (len(mults) - 1),)
        return dict(base_channels=base, channel_mults=mults, attention_resolutions=attention)

    def config(self) -> dict[str, Any]:
        """The constructor arguments as a JSON-able dict: ``UNet(**net.config())`` rebuilds it."""
        return {k: (list(v) if isinstance(v, list) else v) for k, v in self._config.items()}

    def forward(
        self,
        x: torch.Tensor,
        t: torch.Tensor,
        cond: torch.Tensor | None = None,
        context: torch.Tensor | None = None,
        context_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Velocity for noisy images ``x`` (B, C, H, W) at times ``t`` (B,) in [0, 1].

        ``cond`` (B, cond_dim) or None (= zeros); ``context`` (B, L, cross_attn_dim) with
        ``context_mask`` (B, L) bool, True for real tokens (None: all real).
        Returns (B, C, H, W).
        """
        self._check_inputs(x, t, cond, context, context_mask)
        B, _, H, W = x.shape
        if t.ndim == 0:
            t = t.expand(B)
        if self.context_tokens and cond is not None:
            # Tokens packed at the end of cond (see context_tokens); all-zero ones are absent.
            split = self.cond_dim - self.context_tokens * self.cross_attn_dim
            packed = cond[:, split:].reshape(B, self.context_tokens, self.cross_attn_dim)
            cond, context, context_mask = cond[:, :split], packed, packed.ne(0).any(dim=-1)
        if context is not None and context_mask is None:
            context_mask = torch.ones(context.shape[:2], dtype=torch.bool, device=x.device)

        emb = self.time_mlp(timestep_embedding(t, self.time_dim))  # (B, E)
        if self.cond_proj is not None:
            if cond is None:
                cond = torch.zeros(B, self.cond_proj.in_features, device=x.device,
                                   dtype=emb.dtype)
            emb = emb + self.cond_proj(cond.to(emb.dtype))
        emb = F.silu(emb)

        # Pad to a multiple of 2**(levels-1) so every downsampling halves exactly.
        pad_h, pad_w = (-H) % self.pad_multiple, (-W) % self.pad_multiple
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")

        if self.patch > 1:  # each p x p patch as p*p*C channels of one position
            x = F.pixel_unshuffle(x, self.patch)  # (B, C p^2, H'/p, W'/p)
        if self.coord_channels:
            x = torch.cat([x, _coordinates(x, -(-H // self.patch), -(-W // self.patch))],
                          dim=1)  # (B, C + 2, H', W')
        h = self.conv_in(x)  # (B, base, H', W')
        skips = []
        for i, level in enumerate(self.down):
            h = level(h, emb, context, context_mask)  # (B, C_i, H'/2^i, W'/2^i)
            skips.append(h)
            if i < self.num_levels - 1:
                h = self.downsample[i](h)
        if self.cond_map is not None:
            side = self.bottom_size
            grid = self.cond_map["linear"](cond.to(emb.dtype)).view(B, -1, side, side)
            if grid.shape[-2:] != h.shape[-2:]:  # images of another size than image_size
                grid = F.interpolate(grid, size=h.shape[-2:], mode="bilinear", align_corners=False)
            h = h + self.cond_map["conv"](grid).to(h.dtype)  # (B, C_last, h, w)
        h = self.mid(h, emb, context, context_mask)  # (B, C_last, H'/2^(L-1), W'/2^(L-1))
        for j, level in enumerate(self.up):
            if j > 0:
                h = F.interpolate(h, scale_factor=2.0, mode="nearest")
                h = self.upsample[j - 1](h)  # (B, C_i, 2h, 2w)
            h = torch.cat([h, skips.pop()], dim=1)  # (B, 2*C_i, h, w)
            h = level(h, emb, context, context_mask)
        out = self.conv_out(F.silu(self.norm_out(h)))  # (B, C p^2, H'/p, W'/p)
        if self.patch > 1:
            out = F.pixel_shuffle(out, self.patch)  # (B, C, H', W')
        return out[:, :, :H, :W]

    def _check_inputs(self, x, t, cond, context, context_mask) -> None:
        if x.ndim != 4 or x.shape[1] != self.image_channels:
            raise DataError(
                f"UNet input x has shape {tuple(x.shape)}; expected (B, {self.image_channels}, "
                f"H, W). Convert images to {self.image_channels} channel(s) first."
            )
        if t.ndim > 1 or (t.ndim == 1 and t.shape[0] != x.shape[0]):
            raise DataError(
                f"UNet time t has shape {tuple(t.shape)}; expected ({x.shape[0]},) or a scalar."
            )
        if cond is not None and (self.cond_dim == 0 or cond.shape != (x.shape[0], self.cond_dim)):
            raise DataError(
                f"UNet cond has shape {tuple(cond.shape)}; expected ({x.shape[0]}, "
                f"{self.cond_dim}). Build the UNet with cond_dim={cond.shape[-1]} or pass "
                f"conditions of the configured width."
            )
        if context is not None:
            if (
                self.cross_attn_dim == 0
                or context.ndim != 3
                or context.shape[-1] != self.cross_attn_dim
            ):
                raise DataError(
                    f"UNet context has shape {tuple(context.shape)}; expected (B, L, "
                    f"{self.cross_attn_dim}) and a UNet built with cross_attn_dim > 0."
                )
            if context_mask is not None and context_mask.shape != context.shape[:2]:
                raise DataError(
                    f"UNet context_mask has shape {tuple(context_mask.shape)}; expected "
                    f"{tuple(context.shape[:2])} (one bool per context token)."
                )


def _coordinates(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(B, 2, H', W') x and y coordinates of ``x``'s (padded) pixels: -1 at the first
    pixel of the image and +1 at its last (padding continues the ramp)."""
    B, _, H, W = x.shape
    ys = torch.arange(H, device=x.device, dtype=x.dtype) * (2.0 / max(height - 1, 1)) - 1.0
    xs = torch.arange(W, device=x.device, dtype=x.dtype) * (2.0 / max(width - 1, 1)) - 1.0
    grid = torch.stack([xs[None, :].expand(H, W), ys[:, None].expand(H, W)])  # (2, H', W')
    return grid[None].expand(B, 2, H, W)


def _default_widths(image_size: int) -> tuple[int, tuple[int, ...]]:
    """(base_channels, channel_mults) by image side; see :meth:`UNet.sized_for`."""
    if image_size <= 16:
        return 32, (1, 2)
    if image_size <= 32:
        return 16, (1, 2, 4)
    levels = 4 + max(0, math.ceil(math.log2(image_size / 64)))
    return 16, tuple(min(2**i, 16) for i in range(levels))


def _validate(**cfg: Any) -> None:
    """Report every out-of-range constructor argument in one error."""
    problems = []
    for name in ("image_channels", "image_size", "base_channels", "num_res_blocks"):
        if not isinstance(cfg[name], int) or cfg[name] < 1:
            problems.append(f"{name}={cfg[name]!r} (must be an integer >= 1)")
    for name in ("cond_dim", "cross_attn_dim"):
        if not isinstance(cfg[name], int) or cfg[name] < 0:
            problems.append(f"{name}={cfg[name]!r} (must be an integer >= 0)")
    mults = cfg["channel_mults"]
    if not mults or any(not isinstance(m, int) or m < 1 for m in mults):
        problems.append(
            f"channel_mults={list(mults)!r} (must be positive integers, e.g. [1, 2, 4])"
        )
    if isinstance(cfg["patch_size"], bool) or cfg["patch_size"] not in (1, 2, 4):
        problems.append(f"patch_size={cfg['patch_size']!r} (must be 1, 2 or 4)")
    if not 0.0 <= cfg["dropout"] < 1.0:
        problems.append(f"dropout={cfg['dropout']!r} (must be in [0, 1))")
    if problems:
        raise ConfigError("Invalid UNet configuration: " + "; ".join(problems) + ".")
