"""The generator's training objective: rectified flow with velocity prediction.

Convention (used by :mod:`polymodal.models.samplers` too): **t = 0 is data, t = 1 is
noise**, and the straight path between an image ``x0`` and Gaussian noise ``eps`` is

    x_t = (1 - t) * x0 + t * eps                 (Liu et al. 2022, "Flow Straight and
                                                   Fast", Eq. 1, with their X_0 = data,
                                                   X_1 = noise; Esser et al. 2024, Sec. 2,
                                                   a_t = 1 - t, b_t = t)

whose velocity is ``dx_t/dt = eps - x0``. The network regresses it:

    L = E_{t, x0, eps} || v_theta(x_t, t) - (eps - x0) ||^2        (Liu et al. 2022, Eq. 1;
                                                                     Esser et al. 2024, Sec. 2)

and samples by integrating ``dx/dt = v_theta`` from t = 1 down to t = 0.

Time sampling. ``"logit_normal"`` draws ``t = sigmoid(p_mean + p_std * n)``, n ~ N(0, 1)
(Esser et al. 2024, "Scaling Rectified Flow Transformers", Sec. 3.1, Eq. 19), which puts
more training on intermediate times where the velocity is hardest to predict;
``"uniform"`` draws t ~ U(0, 1) (plain rectified flow).

Why rectified flow rather than EDM preconditioning (Karras et al. 2022): with the
velocity target the network's output already has unit-scale variance at every t (the
job EDM's c_skip/c_out do), the sampler needs no sigma schedule, and SD3 (Esser et al.
2024, Sec. 5.1, Table 1) found RF + logit-normal the best of the formulations it compared,
EDM included. EDM itself was NOT measured here (CPU budget); the time sampling was.

Why logit-normal by default: on class-conditional Fashion-MNIST
(``bench/generator_core_probe.py``) it gave a lower FD than uniform t every time and, with
a higher guidance, beat it on both accuracy and FD (see bench/RESULTS.md,
'generator_core_probe').

Classifier-free guidance (Ho & Salimans 2022) needs the same network to also learn the
unconditional velocity: :func:`drop_conditions` replaces a random fraction of rows'
conditions with the **null condition** -- an all-zero ``cond`` vector and an all-False
``context_mask`` -- which is exactly what the samplers pass for the unconditional pass.
"""

from __future__ import annotations

import torch
from torch import nn

from polymodal.errors import ConfigError

__all__ = ["TIME_SAMPLINGS", "drop_conditions", "rectified_flow_loss", "sample_times"]

TIME_SAMPLINGS = ("logit_normal", "uniform")


def sample_times(
    batch_size: int,
    *,
    time_sampling: str = "logit_normal",
    p_mean: float = 0.0,
    p_std: float = 1.0,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """Training times t in (0, 1), shape (B,); see the module docstring."""
    if time_sampling == "logit_normal":
        n = torch.randn(batch_size, generator=generator, device=device)
        return torch.sigmoid(p_mean + p_std * n)  # Esser et al. 2024, Eq. 19
    if time_sampling == "uniform":
        return torch.rand(batch_size, generator=generator, device=device)
    raise ConfigError(
        f"time_sampling={time_sampling!r} is not known; use one of {list(TIME_SAMPLINGS)}."
    )


def rectified_flow_loss(
    net: nn.Module,
    x0: torch.Tensor,
    *,
    cond: torch.Tensor | None = None,
    context: torch.Tensor | None = None,
    context_mask: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    time_sampling: str = "logit_normal",
    p_mean: float = 0.0,
    p_std: float = 1.0,
) -> torch.Tensor:
    """Mean squared velocity error for clean images ``x0`` (B, C, H, W) in [-1, 1].

    ``net(x_t, t, cond, context, context_mask)`` must return (B, C, H, W). Apply
    :func:`drop_conditions` to ``cond``/``context_mask`` beforehand to train for
    classifier-free guidance. Returns a scalar tensor.
    """
    B = x0.shape[0]
    t = sample_times(
        B,
        time_sampling=time_sampling,
        p_mean=p_mean,
        p_std=p_std,
        generator=generator,
        device=x0.device,
    )  # (B,)
    eps = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
    t_ = t.to(x0.dtype)[:, None, None, None]  # (B, 1, 1, 1)
    x_t = (1 - t_) * x0 + t_ * eps  # Liu et al. 2022, Eq. 1: the straight path
    v_target = eps - x0  # d x_t / d t
    v_pred = net(x_t, t, cond, context, context_mask)  # (B, C, H, W)
    return ((v_pred.float() - v_target.float()) ** 2).mean()


def drop_conditions(
    cond: torch.Tensor | None,
    p: float,
    generator: torch.Generator | None = None,
    *,
    context_mask: torch.Tensor | None = None,
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Replace each row's condition by the null condition with probability ``p``.

    The same rows lose both their ``cond`` (set to zeros) and their context tokens
    (``context_mask`` set to all False), so the network learns one unconditional
    velocity that guidance can subtract. Returns ``(cond, context_mask)``, each None
    when given None. Inputs are not modified.
    """
    if not 0.0 <= p <= 1.0:
        raise ConfigError(f"condition dropout p={p!r} must be in [0, 1]; 0.1 is typical.")
    ref = cond if cond is not None else context_mask
    if ref is None or p == 0.0:
        return cond, context_mask
    drop = torch.rand(ref.shape[0], generator=generator, device=ref.device) < p  # (B,)
    if cond is not None:
        cond = cond.masked_fill(drop[:, None], 0.0)
    if context_mask is not None:
        context_mask = context_mask & ~drop[:, None]
    return cond, context_mask
