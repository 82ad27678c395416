"""Samplers for the rectified-flow generator, as plain functions.

Convention (see :mod:`polymodal.models.flow`): t = 1 is pure noise, t = 0 is data, and a
sampler integrates ``dx/dt = v(x, t)`` from t = 1 down to t = 0. Every sampler takes a
``velocity_fn(x, t) -> v`` with ``x`` (B, C, H, W) and ``t`` (B,), so the network, the
guidance and the integrator stay apart:

    velocity_fn = functools.partial(guided_velocity, net, cond=cond, guidance=2.0)
    images = euler_sample(velocity_fn, noise, num_steps=16)

Samplers are deterministic: ODE integration adds no randomness, and the functions that
need noise (:func:`edit_sample`, :func:`inpaint_sample`, :func:`variation_sample`) draw it
from the ``generator`` they are given.

References: Euler / Heun (2nd order, trapezoidal) steps as in Karras et al. 2022, "EDM",
Algorithm 1; two-step Adams-Bashforth (2nd order, one evaluation per step), as in Lu et
al. 2022, "DPM-Solver++", 2M; classifier-free guidance, Ho & Salimans 2022, Eq. 6;
guidance limited to an interval of noise levels, Kynkaenniemi et al. 2024; autoguidance by
a weaker model, Karras et al. 2024; SDEdit, Meng et al. 2022; inpainting by replacing the
known region at every step, Lugmayr et al. 2022 ("RePaint", Eq. 8, without resampling);
time-shifted schedules, Esser et al. 2024, Eq. 23.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from polymodal.errors import ConfigError, DataError

__all__ = [
    "SAMPLERS",
    "ab2_sample",
    "edit_sample",
    "euler_sample",
    "guided_velocity",
    "heun_sample",
    "inpaint_sample",
    "time_steps",
    "variation_sample",
]

VelocityFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
# Called after each step as ``x = on_step(x, t_next)``; used by inpainting.
StepHook = Callable[[torch.Tensor, float], torch.Tensor]

# Defaults chosen by bench/generator_core_probe.py and then the sampler sweep on a fully
# trained model: uniform time steps (shift 1), Heun with few steps, and guidance only for
# t in (0.3, 0.8), because guidance near data bought nothing for its second pass and near
# pure noise it cost FD (see bench/RESULTS.md, 'generator_core_probe' and
# 'generator_sampling_sweep').
# Kynkaenniemi et al. 2024 ("Applying guidance in a limited interval improves sample and
# distribution quality") found the same on ImageNet.
DEFAULT_SHIFT = 1.0
DEFAULT_GUIDANCE_INTERVAL = (0.3, 0.8)


def time_steps(num_steps: int, *, shift: float = DEFAULT_SHIFT) -> list[float]:
    """``num_steps + 1`` decreasing times from exactly 1 to exactly 0.

    ``shift`` warps a uniform grid u by ``t = s*u / (1 + (s - 1)*u)`` (Esser et al. 2024,
    Eq. 23): s = 1 is uniform, s > 1 spends more steps near noise, s < 1 near data.
    """
    if not isinstance(num_steps, int) or num_steps < 1:
        raise ConfigError(f"num_steps={num_steps!r} must be an integer >= 1; 8-32 is typical.")
    if not shift > 0:
        raise ConfigError(f"shift={shift!r} must be > 0 (1.0 = uniform time steps).")
    u = [1 - i / num_steps for i in range(num_steps + 1)]
    return [shift * ui / (1 + (shift - 1) * ui) for ui in u]


def guided_velocity(
    net: nn.Module,
    x: torch.Tensor,
    t: torch.Tensor,
    *,
    cond: torch.Tensor | None = None,
    null_cond: torch.Tensor | None = None,
    guidance: float = 1.0,
    context: torch.Tensor | None = None,
    context_mask: torch.Tensor | None = None,
    guidance_interval: tuple[float, float] = DEFAULT_GUIDANCE_INTERVAL,
    guide_net: nn.Module | None = None,
    guide_cond: torch.Tensor | None = None,
    condition_from: float = 1.0,
) -> torch.Tensor:
    """Classifier-free-guided velocity ``v_u + guidance * (v_c - v_u)``, or autoguided.

    With ``guide_net`` (a weaker version of ``net``, e.g. an early snapshot of its
    weights) the guiding velocity is that network's, conditional too, on ``guide_cond``
    (its own condition vector): ``v_w + guidance * (v_c - v_w)`` -- autoguidance, Karras
    et al. 2024, "Guiding a diffusion model with a bad version of itself", Eq. 2. It
    pushes away from the weaker model's errors rather than from the unconditional
    density, so it sharpens without collapsing each class onto its prototype.

    Ho & Salimans 2022, Eq. 6, with guidance = 1 + w.

    The null condition is ``null_cond`` (default: zeros like ``cond``) with every context
    token masked out -- the same one :func:`polymodal.models.flow.drop_conditions` trains.
    The conditional and unconditional passes run as one batch of 2B. With
    ``guidance == 1`` or ``t`` outside ``guidance_interval = (lo, hi)`` only the
    conditional pass runs, so the result equals ``net(x, t, cond, context, context_mask)``
    exactly. ``t`` must be the same for every row (it is, inside the samplers).
    The default interval (0.3, 0.8) skips the second pass near data, where it was
    measured to buy nothing, and near pure noise, where it cost FD (see the notes
    above); pass (0, 1) to guide everywhere.

    Above ``condition_from`` (t closer to noise) the condition is withheld: one pass with
    the null condition (condition-annealed sampling, Sadat et al. 2024, "CADS"): the first
    steps lay out the image as the unconditional model would, so samples of one class
    spread over more of its variety; 1.0 (the default) conditions every step.
    """
    lo, hi = guidance_interval
    t_now = float(t.reshape(-1)[0])
    # (t arrives as float32: 0.8 reads 0.80000001, which is not above 0.8.)
    if t_now > condition_from + 1e-6 and (cond is not None or context is not None):
        null = None if cond is None else (torch.zeros_like(cond) if null_cond is None
                                          else null_cond.expand_as(cond))
        mask = None if context is None else torch.zeros(context.shape[:2], dtype=torch.bool,
                                                        device=x.device)
        return net(x, t, null, context, mask)
    if guidance == 1.0 or not lo <= t_now <= hi:
        return net(x, t, cond, context, context_mask)
    if guide_net is not None:
        v_main = net(x, t, cond, context, context_mask)
        v_weak = guide_net(x, t, guide_cond, context, context_mask)
        return v_weak + guidance * (v_main - v_weak)
    B = x.shape[0]
    if cond is not None and null_cond is None:
        null_cond = torch.zeros_like(cond)
    cond2 = None if cond is None else torch.cat([cond, null_cond.expand_as(cond)])  # (2B, D)
    context2, mask2 = None, None
    if context is not None:
        if context_mask is None:
            context_mask = torch.ones(context.shape[:2], dtype=torch.bool, device=x.device)
        context2 = torch.cat([context, context])  # (2B, L, D_ctx)
        mask2 = torch.cat([context_mask, torch.zeros_like(context_mask)])  # (2B, L)
    v = net(torch.cat([x, x]), torch.cat([t, t]), cond2, context2, mask2)  # (2B, C, H, W)
    v_cond, v_uncond = v[:B], v[B:]
    return v_uncond + guidance * (v_cond - v_uncond)


def euler_sample(
    velocity_fn: VelocityFn,
    noise: torch.Tensor,
    *,
    num_steps: int = 16,
    shift: float = DEFAULT_SHIFT,
    t_steps: list[float] | None = None,
    on_step: StepHook | None = None,
) -> torch.Tensor:
    """Integrate from ``noise`` (B, C, H, W) at t = 1 to images at t = 0 with Euler steps.

    ``t_steps`` (decreasing, ending at 0) overrides ``num_steps``/``shift``, and then
    ``noise`` is the state at ``t_steps[0]``. Uses ``num_steps`` network evaluations.
    """
    # 1. The time grid, 1 -> 0 (or the one given).
    ts = time_steps(num_steps, shift=shift) if t_steps is None else t_steps
    x = noise
    B = x.shape[0]
    with torch.no_grad():
        for t_cur, t_next in zip(ts[:-1], ts[1:], strict=True):
            # 2. Velocity at the current point (dx/dt, pointing from data to noise).
            v = velocity_fn(x, torch.full((B,), t_cur, device=x.device))
            # 3. Euler step; t_next < t_cur, so this moves toward data (EDM Alg. 1, l. 5).
            x = x + (t_next - t_cur) * v
            # 4. Let the caller constrain the state (inpainting keeps known pixels).
            if on_step is not None:
                x = on_step(x, t_next)
    return x


def heun_sample(
    velocity_fn: VelocityFn,
    noise: torch.Tensor,
    *,
    num_steps: int = 4,
    shift: float = DEFAULT_SHIFT,
    t_steps: list[float] | None = None,
    on_step: StepHook | None = None,
) -> torch.Tensor:
    """Like :func:`euler_sample` with Heun's 2nd-order correction (Karras et al. 2022, Alg. 1).

    Uses ``2 * num_steps - 1`` network evaluations: the last step (to t = 0) is plain
    Euler, as in EDM, since the correction there buys little.
    """
    # 1. The time grid, 1 -> 0 (or the one given).
    ts = time_steps(num_steps, shift=shift) if t_steps is None else t_steps
    x = noise
    B = x.shape[0]
    with torch.no_grad():
        for t_cur, t_next in zip(ts[:-1], ts[1:], strict=True):
            # 2. Slope at the start of the step.
            v = velocity_fn(x, torch.full((B,), t_cur, device=x.device))
            # 3. Euler predictor (EDM Alg. 1, l. 5).
            x_next = x + (t_next - t_cur) * v
            # 4. Corrector: average with the slope at the predicted point (Alg. 1, l. 6-8).
            if t_next > 0:
                v_next = velocity_fn(x_next, torch.full((B,), t_next, device=x.device))
                x_next = x + (t_next - t_cur) * 0.5 * (v + v_next)
            x = x_next
            # 5. Let the caller constrain the state (inpainting keeps known pixels).
            if on_step is not None:
                x = on_step(x, t_next)
    return x


def ab2_sample(
    velocity_fn: VelocityFn,
    noise: torch.Tensor,
    *,
    num_steps: int = 8,
    shift: float = DEFAULT_SHIFT,
    t_steps: list[float] | None = None,
    on_step: StepHook | None = None,
) -> torch.Tensor:
    """Like :func:`heun_sample`, 2nd order, with one network evaluation per step: the
    two-step Adams-Bashforth method (variable steps), which extrapolates the slope from
    this step's velocity and the previous one's instead of evaluating a second point
    (the multistep idea of DPM-Solver++(2M), Lu et al. 2022, on the flow's velocity).

    Uses ``num_steps`` network evaluations; the first step is plain Euler.
    """
    # 1. The time grid, 1 -> 0 (or the one given).
    ts = time_steps(num_steps, shift=shift) if t_steps is None else t_steps
    x = noise
    B = x.shape[0]
    v_prev, h_prev = None, None
    with torch.no_grad():
        for t_cur, t_next in zip(ts[:-1], ts[1:], strict=True):
            h = t_next - t_cur  # negative: toward data
            # 2. Slope at the start of the step.
            v = velocity_fn(x, torch.full((B,), t_cur, device=x.device))
            # 3. Euler first; then the slope extrapolated linearly over the step
            #    (AB2 with step ratio r = h / h_prev).
            if v_prev is None:
                x = x + h * v
            else:
                r = h / h_prev
                x = x + h * ((1 + 0.5 * r) * v - 0.5 * r * v_prev)
            v_prev, h_prev = v, h
            # 4. Let the caller constrain the state (inpainting keeps known pixels).
            if on_step is not None:
                x = on_step(x, t_next)
    return x


# The one table of samplers by name: the Generator's ``sampler=`` and its recipe use it too.
SAMPLERS = {"euler": euler_sample, "heun": heun_sample, "ab2": ab2_sample}


def _sampler(method: str):
    if method not in SAMPLERS:
        raise ConfigError(f"sampler method={method!r} is not known; use one of {list(SAMPLERS)}.")
    return SAMPLERS[method]


def edit_sample(
    velocity_fn: VelocityFn,
    x_init: torch.Tensor,
    *,
    strength: float,
    num_steps: int = 16,
    method: str = "euler",
    shift: float = DEFAULT_SHIFT,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """SDEdit (Meng et al. 2022): noise ``x_init`` (B, C, H, W) to t = ``strength``, then sample.

    ``strength`` 0 returns ``x_init`` unchanged; 1 ignores it (plain sampling). The grid
    uses ``ceil(num_steps * strength)`` steps, so an edit costs in proportion to how much
    it changes.
    """
    if not 0.0 <= strength <= 1.0:
        raise ConfigError(f"strength={strength!r} must be in [0, 1] (0 = keep, 1 = redraw).")
    if strength == 0.0:
        return x_init.clone()
    # 1. Noise the input along the straight path to t = strength (flow.py, Eq. 1).
    eps = torch.randn(x_init.shape, generator=generator, dtype=x_init.dtype).to(x_init.device)
    x_start = (1 - strength) * x_init + strength * eps
    # 2. Integrate from t = strength to 0 on a grid scaled to that interval.
    steps = max(1, math.ceil(num_steps * strength))
    ts = [strength * t for t in time_steps(steps, shift=shift)]
    return _sampler(method)(velocity_fn, x_start, t_steps=ts)


def inpaint_sample(
    velocity_fn: VelocityFn,
    x_known: torch.Tensor,
    mask: torch.Tensor,
    *,
    num_steps: int = 16,
    method: str = "euler",
    shift: float = DEFAULT_SHIFT,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Fill the pixels where ``mask`` is False, keeping those where it is True exactly.

    ``mask``: bool (or 0/1) broadcastable to ``x_known`` (B, C, H, W), True = known.
    After every step the known pixels are overwritten with ``x_known`` noised to the
    current time along the same straight path the sampler follows (with the same noise
    the sampler started from), so at t = 0 they are ``x_known`` itself.
    """
    mask = mask.to(torch.bool)
    try:
        mask = torch.broadcast_to(mask, x_known.shape)
    except RuntimeError:
        raise DataError(
            f"inpainting mask has shape {tuple(mask.shape)}, which does not broadcast to the "
            f"image shape {tuple(x_known.shape)}; pass (H, W), (B, 1, H, W) or (B, C, H, W)."
        ) from None
    # 1. One noise draw: the start point and the known region's path share it.
    eps = torch.randn(x_known.shape, generator=generator, dtype=x_known.dtype).to(x_known.device)

    # 2. After each step, put back the known pixels at the new time (RePaint, Eq. 8).
    def keep_known(x: torch.Tensor, t_next: float) -> torch.Tensor:
        known_t = x_known if t_next == 0 else (1 - t_next) * x_known + t_next * eps
        return torch.where(mask, known_t, x)

    # 3. Integrate from pure noise at t = 1.
    ts = time_steps(num_steps, shift=shift)
    return _sampler(method)(velocity_fn, eps, t_steps=ts, on_step=keep_known)


def variation_sample(
    velocity_fn: VelocityFn,
    x_init: torch.Tensor,
    *,
    num_variations: int,
    strength: float = 0.6,
    num_steps: int = 16,
    method: str = "euler",
    shift: float = DEFAULT_SHIFT,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """``num_variations`` edits of each image in ``x_init`` (B, C, H, W), each with its own noise.

    Returns (B * num_variations, C, H, W), the variations of image i at rows
    ``i*num_variations ... (i+1)*num_variations - 1``. ``velocity_fn`` must accept that
    batch size (give it conditions repeated the same way). Higher ``strength`` strays
    further from the input.
    """
    if not isinstance(num_variations, int) or num_variations < 1:
        raise ConfigError(f"num_variations={num_variations!r} must be an integer >= 1.")
    repeated = x_init.repeat_interleave(num_variations, dim=0)  # (B*n, C, H, W)
    return edit_sample(
        velocity_fn,
        repeated,
        strength=strength,
        num_steps=num_steps,
        method=method,
        shift=shift,
        generator=generator,
    )
