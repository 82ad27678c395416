"""The Generator's network (a UNet and a condition encoder) and its sampling integration.

:class:`GeneratorNetwork`'s ``forward(batch)`` is the training loss, so that under
``torchrun`` the DDP wrapper sees the whole step (see :class:`polymodal.train.Trainer`).
:func:`integrate` and :func:`velocity_fn` run the samplers of
:mod:`polymodal.models.samplers` with classifier-free guidance.
"""

from __future__ import annotations

import functools

import torch
from torch import nn

from polymodal.data.batch import Batch
from polymodal.models import samplers
from polymodal.models.condition import ConditionEncoder, condition_spec
from polymodal.models.flow import drop_conditions, rectified_flow_loss
from polymodal.models.samplers import DEFAULT_SHIFT, SAMPLERS, guided_velocity
from polymodal.models.unet import UNet

# Images per sampler chunk (twice that many network rows with guidance): it keeps the
# activations' peak low at no cost in speed (bench/RESULTS.md, 'Ad-hoc probes').
SAMPLE_BATCH_SIZE = 64
# The weaker network that autoguides: its UNet and its condition vectors (N, D) or None.
Weak = tuple[UNet, torch.Tensor | None]


class GeneratorNetwork(nn.Module):
    """UNet + condition encoder; ``forward(batch)`` is the rectified-flow training loss.

    ``condition_vector(batch)`` is the condition vector (B, D), or None for an
    unconditional generator.
    """

    def __init__(self, unet: UNet, condition: ConditionEncoder | None, *, image_column: str,
                 condition_dropout: float):
        super().__init__()
        self.unet = unet
        self.condition = condition
        self.image_column = image_column
        self.condition_dropout = condition_dropout

    def condition_vector(self, batch: Batch) -> torch.Tensor | None:
        if self.condition is None:
            return None
        # Hiding single columns (multi-column models) teaches sampling with some left out.
        return self.condition(batch, column_dropout=self.condition_dropout)  # (B, D)

    def forward(self, batch: Batch) -> torch.Tensor:
        x0 = batch.image[self.image_column]  # (B, C, H, W) in [-1, 1]
        cond = self.condition_vector(batch)
        if cond is not None and self.training:
            # Whole-vector dropout to the null (zero) condition: classifier-free guidance.
            cond, _ = drop_conditions(cond, self.condition_dropout)
        return rectified_flow_loss(self.unet, x0, cond=cond)

    def validation_loss(self, batch: Batch) -> float:
        """The loss at fixed times and noise, so evaluations compare across steps."""
        return float(rectified_flow_loss(self.unet, batch.image[self.image_column],
                                         cond=self.condition_vector(batch),
                                         generator=torch.Generator(batch_device(self))
                                         .manual_seed(0)))


def build_network(feature_spec: dict, conditions: list[str], image_shape: tuple[int, int, int],
                  *, image_column: str, seed: int, cond_dim: int, condition_dropout: float,
                  spatial_condition: bool, context_dim: int = 0,
                  cross_attention_levels: int = 2, **unet_sizing) -> GeneratorNetwork:
    """The network for images of ``image_shape`` (C, H, W) conditioned on ``conditions``.

    ``unet_sizing``: the UNet's ``base_channels``, ``channel_mults``, ``num_res_blocks``,
    ``attention_resolutions`` and ``coord_channels``. ``context_dim`` > 0 gives the
    condition encoder tokens of that width, which the UNet cross-attends to at its
    ``cross_attention_levels`` lowest resolutions (the bottleneck is the first). The
    weights depend on ``seed`` only (the caller's RNG is left as it was).
    """
    channels, height, _ = image_shape
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        encoder = None
        if conditions:
            encoder = ConditionEncoder(condition_spec(feature_spec, conditions), out_dim=cond_dim,
                                       context_dim=context_dim)
        tokens = {}
        if encoder is not None and encoder.num_tokens:
            levels = len(unet_sizing.get("channel_mults") or UNet.sizing_for(height)["channel_mults"])
            patch = unet_sizing.get("patch_size", 1)
            multiple = patch * 2 ** (levels - 1)
            padded = -(-height // multiple) * multiple // patch
            sides = [padded // 2**i for i in range(levels)][-max(1, cross_attention_levels):]
            tokens = {"cross_attn_dim": context_dim, "context_tokens": encoder.num_tokens,
                      "cross_attention_resolutions": sides}
        unet = UNet(image_channels=channels, image_size=height,
                    cond_dim=encoder.width if encoder else 0,
                    spatial_condition=spatial_condition and encoder is not None,
                    **tokens, **unet_sizing)
    return GeneratorNetwork(unet, encoder, image_column=image_column,
                            condition_dropout=condition_dropout)


def load_network(network_config: dict, *, image_column: str,
                 condition_dropout: float) -> GeneratorNetwork:
    """An untrained network of a saved ``config.json``'s ``network`` section (the caller's
    RNG is left as it was; the weights are loaded after)."""
    with torch.random.fork_rng(devices=[]):
        unet = UNet(**network_config["unet"])
        cond_config = network_config["condition"]
        encoder = None if cond_config is None else ConditionEncoder.from_config(cond_config)
    return GeneratorNetwork(unet, encoder, image_column=image_column,
                            condition_dropout=condition_dropout)


def network_config(network: GeneratorNetwork) -> dict:
    """What :func:`load_network` rebuilds the network from (JSON-able)."""
    return {"unet": network.unet.config(),
            "condition": None if network.condition is None else network.condition.config()}


def batch_device(module: nn.Module) -> torch.device:
    return next(module.parameters()).device


def integrate(unet: UNet, cond: torch.Tensor | None, noise: torch.Tensor, *, num_steps: int,
              guidance: float, sampler: str, batch_size: int = SAMPLE_BATCH_SIZE,
              guidance_interval: tuple[float, float], shift: float = DEFAULT_SHIFT,
              guide: str = "unconditional", weak: Weak | None = None,
              condition_from: float = 1.0) -> torch.Tensor:
    """Images (N, C, H, W) from ``noise`` at t = 1, in chunks of ``batch_size``.

    ``weak``: ``(unet, cond)`` of the weaker network that autoguides when ``guide`` is
    ``"early"`` (:func:`~polymodal.models.samplers.guided_velocity`); without it (the
    grids written while training, before the snapshot exists) the null condition guides.
    """
    device = batch_device(unet)
    out = []
    for start in range(0, noise.shape[0], batch_size):
        chunk = noise[start:start + batch_size].to(device)
        c = None if cond is None else cond[start:start + batch_size].to(device)
        velocity = _velocity(unet, c, guidance=guidance, guidance_interval=guidance_interval,
                             weak=_rows(weak if guide == "early" else None, start, batch_size,
                                        device), condition_from=condition_from)
        out.append(SAMPLERS[sampler](velocity, chunk, num_steps=num_steps, shift=shift).cpu())
    return torch.cat(out)


def _rows(weak: Weak | None, start: int, size: int, device) -> Weak | None:
    """The guide's condition rows ``start:start + size``, on ``device``."""
    if weak is None:
        return None
    unet, cond = weak
    end = None if size is None else start + size
    return unet, None if cond is None else cond[start:end].to(device)


def _velocity(unet: UNet, cond: torch.Tensor | None, *, guidance: float,
              guidance_interval: tuple[float, float], weak: Weak | None,
              condition_from: float = 1.0):
    """``velocity(x, t)``: guided by the null condition, or autoguided by ``weak``."""
    # Autoguidance needs no condition to guide by; guidance by the null condition does.
    guided = cond is not None or weak is not None
    guiding = {} if weak is None else {"guide_net": weak[0], "guide_cond": weak[1]}
    return functools.partial(guided_velocity, unet, cond=cond,
                             guidance=guidance if guided else 1.0,
                             guidance_interval=guidance_interval,
                             condition_from=condition_from, **guiding)


def velocity_fn(unet: UNet, cond: torch.Tensor | None, *, guidance: float,
                guidance_interval: tuple[float, float], guide: str = "unconditional",
                weak: Weak | None = None, condition_from: float = 1.0):
    """``velocity(x, t)`` with guidance, for the edit samplers: inputs on any device."""
    device = batch_device(unet)
    cond = None if cond is None else cond.to(device)
    guided = _velocity(unet, cond, guidance=guidance, guidance_interval=guidance_interval,
                       weak=_rows(weak if guide == "early" else None, 0, None, device),
                       condition_from=condition_from)

    def velocity(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return guided(x.to(device), t.to(device)).to(x.device)

    return velocity


def sample_edit(unet: UNet, cond: torch.Tensor | None, x: torch.Tensor, *, keep: torch.Tensor | None,
         strength: float, seed: int, num_steps: int, guidance: float, sampler: str,
         guidance_interval: tuple[float, float], shift: float = DEFAULT_SHIFT,
         guide: str = "unconditional", weak: Weak | None = None,
         condition_from: float = 1.0) -> torch.Tensor:
    """Edited images (N, C, H, W): inpaint where ``keep`` is False when a mask is given,
    else SDEdit ``x`` at ``strength`` (0 keeps it, 1 redraws it)."""
    velocity = velocity_fn(unet, cond, guidance=guidance, guidance_interval=guidance_interval,
                           guide=guide, weak=weak, condition_from=condition_from)
    steps = {"num_steps": num_steps, "method": sampler, "shift": shift,
             "generator": torch.Generator().manual_seed(seed)}
    with torch.no_grad():
        out = (samplers.inpaint_sample(velocity, x, keep, **steps) if keep is not None
               else samplers.edit_sample(velocity, x, strength=float(strength), **steps))
    return out.cpu()


def sample_variations(unet: UNet, cond: torch.Tensor | None, x: torch.Tensor, *, n: int,
               strength: float, seed: int, num_steps: int, guidance: float, sampler: str,
               guidance_interval: tuple[float, float], shift: float = DEFAULT_SHIFT,
               guide: str = "unconditional", weak: Weak | None = None,
               condition_from: float = 1.0) -> torch.Tensor:
    """``n`` variations (n, C, H, W) of the one image ``x`` (SDEdit, independent noise)."""
    velocity = velocity_fn(unet, cond, guidance=guidance, guidance_interval=guidance_interval,
                           guide=guide, weak=weak, condition_from=condition_from)
    with torch.no_grad():
        out = samplers.variation_sample(
            velocity, x, num_variations=n, strength=float(strength), num_steps=num_steps,
            method=sampler, shift=shift, generator=torch.Generator().manual_seed(seed))
    return out.cpu()
