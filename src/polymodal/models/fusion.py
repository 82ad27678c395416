"""Fusion modules: per-modality embeddings ``{name: (B, D)}`` + presence ``{name: (B,)}`` -> ``(B, D_out)``.

- :class:`ConcatFusion`    — concatenate (absent ones zeroed) plus the presence bits -> MLP.
- :class:`AttentionFusion` — one token per modality plus a learned CLS token, a small
  Transformer encoder whose key padding mask hides absent modalities; the CLS output is
  the fused embedding.
- :class:`SingleFusion`    — one modality: its token through a SiLU (zeros where absent);
  nothing to mix, so no MLP to pay for at every step.

All three guarantee that an absent modality's embedding cannot change the output: its
token is replaced by zeros before anything reads it. All apply *modality dropout* in train
mode (:func:`modality_dropout`, the one place it is implemented): whole modalities are
hidden per row with probability ``p``, so the model learns to predict from any subset
and degrades gracefully when a cell is missing at inference.

References: Vaswani et al. 2017 (Transformer); the CLS-token readout follows BERT
(Devlin et al. 2019); modality dropout follows Neverova et al. 2016, "ModDrop".
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from polymodal.errors import ConfigError, DataError
from polymodal.models.encoders import ConfigurableModule


def modality_dropout(
    present: dict[str, torch.Tensor], p: float, *, generator: torch.Generator | None = None
) -> dict[str, torch.Tensor]:
    """Hide whole modalities per row with probability ``p``, never all of a row's present ones.

    ``present`` maps each modality to a ``(B,)`` bool tensor. Returns a new dict; a row
    that would lose every present modality keeps one of them, chosen uniformly at random.
    Rows with no present modality stay as they are.
    """
    if p <= 0.0 or not present:
        return dict(present)
    names = list(present)
    mask = torch.stack([present[n].bool() for n in names], dim=1)  # (B, M)
    draws = torch.rand(mask.shape, generator=generator, device="cpu").to(mask.device)
    keep = mask & (draws >= p)  # (B, M)
    lost_all = mask.any(dim=1) & ~keep.any(dim=1)  # (B,) rows whose every present one was hit
    if lost_all.any():
        # Re-admit one present modality per such row: the argmax of random scores over
        # the present ones (absent ones get -1, below any uniform draw).
        scores = torch.rand(mask.shape, generator=generator, device="cpu").to(mask.device)
        scores = scores.masked_fill(~mask, -1.0)
        rescue = nn.functional.one_hot(scores.argmax(dim=1), len(names)).bool()  # (B, M)
        keep = keep | (rescue & lost_all[:, None])
    return {n: keep[:, i] for i, n in enumerate(names)}


class _Fusion(ConfigurableModule):
    """Shared input checks and modality dropout; subclasses implement :meth:`_fuse`."""

    def __init__(self, modalities: Sequence[str], in_dim: int, modality_dropout_p: float):
        super().__init__()
        names = list(modalities)
        if not names:
            raise ConfigError(f"{type(self).__name__}: needs at least one modality, got none")
        if len(set(names)) != len(names):
            raise ConfigError(f"{type(self).__name__}: modality names must be unique, got {names}")
        if not isinstance(in_dim, int) or in_dim < 1:
            raise ConfigError(f"{type(self).__name__}: in_dim must be a positive integer, got {in_dim!r}")
        if not 0.0 <= float(modality_dropout_p) < 1.0:
            raise ConfigError(
                f"{type(self).__name__}: modality_dropout must be in [0, 1), got {modality_dropout_p!r}"
            )
        self.modalities = names
        self.in_dim = in_dim
        self.modality_dropout_p = float(modality_dropout_p)

    def forward(self, tokens: dict[str, torch.Tensor], present: dict[str, torch.Tensor]) -> torch.Tensor:
        """Fuse ``tokens[name]`` (B, in_dim) where ``present[name]`` (B,) is True -> (B, out_dim)."""
        missing = [n for n in self.modalities if n not in tokens or n not in present]
        if missing:
            raise DataError(
                f"{type(self).__name__}: no token or presence mask for modality {missing}; "
                f"expected every one of {self.modalities}"
            )
        batch_size = tokens[self.modalities[0]].shape[0]
        for name in self.modalities:
            if tokens[name].shape != (batch_size, self.in_dim) or present[name].shape != (batch_size,):
                raise DataError(
                    f"{type(self).__name__}: modality {name!r} has token shape "
                    f"{tuple(tokens[name].shape)} and mask shape {tuple(present[name].shape)}; "
                    f"expected ({batch_size}, {self.in_dim}) and ({batch_size},)"
                )
        present = {n: present[n].bool() for n in self.modalities}
        if self.training:
            present = modality_dropout(present, self.modality_dropout_p)
        stacked = torch.stack([tokens[n] for n in self.modalities], dim=1)  # (B, M, D)
        mask = torch.stack([present[n] for n in self.modalities], dim=1)  # (B, M)
        # torch.where, not multiplication: a NaN/inf in an absent cell must not leak through.
        stacked = torch.where(mask[..., None], stacked, torch.zeros((), dtype=stacked.dtype,
                                                                    device=stacked.device))
        return self._fuse(stacked, mask)

    def _fuse(self, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class ConcatFusion(_Fusion):
    """Concatenation (late) fusion: ``[LN(t_1)*m_1, ..., LN(t_M)*m_M, m_1..m_M]`` -> MLP.

    The presence bits tell the MLP that a zero block means "absent", not "all features 0".
    """

    def __init__(
        self,
        modalities: Sequence[str],
        in_dim: int,
        *,
        out_dim: int = 128,
        hidden: int = 256,
        dropout: float = 0.1,
        modality_dropout: float = 0.0,
    ):
        super().__init__(modalities, in_dim, modality_dropout)
        if out_dim < 1 or hidden < 1 or not 0.0 <= dropout < 1.0:
            raise ConfigError(f"ConcatFusion: need out_dim >= 1, hidden >= 1 and dropout in [0, 1), "
                              f"got {out_dim}, {hidden}, {dropout}")
        self._store_config(modalities=list(modalities), in_dim=in_dim, out_dim=out_dim,
                           hidden=hidden, dropout=dropout, modality_dropout=modality_dropout)
        num = len(self.modalities)
        # One LayerNorm per modality: encoders put their outputs on different scales.
        self.norms = nn.ModuleList(nn.LayerNorm(in_dim) for _ in range(num))
        self.mlp = nn.Sequential(
            nn.Linear(num * in_dim + num, hidden),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, out_dim),
        )

    def _fuse(self, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        # tokens (B, M, D), already zero where absent; mask (B, M)
        normed = torch.stack([norm(tokens[:, i]) for i, norm in enumerate(self.norms)], dim=1)
        normed = normed * mask[..., None]  # LayerNorm(0) = bias, so zero absent ones again
        flat = torch.cat([normed.flatten(1), mask.to(normed.dtype)], dim=1)  # (B, M*D + M)
        return self.mlp(flat)  # (B, out_dim)


class SingleFusion(_Fusion):
    """The one modality's token through a SiLU: ``silu(t)``, ``(B, in_dim)``, zero where absent.

    For networks over a single column (a large image table): a concatenation MLP over one
    token adds ~20 small ops to every training step, a sizeable share of a CPU step (see
    bench/RESULTS.md, 'Ad-hoc probes'), for nothing to fuse. An absent cell's token is
    already zero, and ``silu(0) = 0``, so it stays zero. (On tiny tables,
    trained for a few dozen steps, the MLP's extra layer learned more: the Predictor keeps
    it there.)
    """

    def __init__(self, modalities: Sequence[str], in_dim: int, *, modality_dropout: float = 0.0):
        super().__init__(modalities, in_dim, modality_dropout)
        if len(self.modalities) != 1:
            raise ConfigError(f"SingleFusion: fuses exactly one modality, got {self.modalities}; "
                              "use ConcatFusion or AttentionFusion for several")
        self._store_config(modalities=list(modalities), in_dim=in_dim,
                           modality_dropout=modality_dropout)
        self.act = nn.SiLU()

    def _fuse(self, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        # tokens (B, 1, D), already zero where absent
        return self.act(tokens[:, 0])  # (B, D)


class AttentionFusion(_Fusion):
    """Attention over modality tokens with a learned CLS token; the CLS output is fused.

    Each token gets a learned modality-type embedding (which column it came from).
    Absent modalities are masked out as keys at every layer (``src_key_padding_mask``),
    so no present token, and not CLS, can attend to them. CLS is never masked, so a row
    with every modality absent still has one key and produces a (learned, constant) output.
    """

    def __init__(
        self,
        modalities: Sequence[str],
        in_dim: int,
        *,
        out_dim: int = 128,
        num_layers: int = 1,
        num_heads: int = 4,
        dropout: float = 0.1,
        modality_dropout: float = 0.0,
    ):
        super().__init__(modalities, in_dim, modality_dropout)
        if num_layers < 1 or num_heads < 1 or in_dim % num_heads != 0:
            raise ConfigError(
                f"AttentionFusion: need num_layers >= 1 and num_heads dividing in_dim, got "
                f"num_layers={num_layers}, num_heads={num_heads}, in_dim={in_dim}; "
                "pick num_heads among the divisors of in_dim (e.g. 4 for 128)"
            )
        if out_dim < 1 or not 0.0 <= dropout < 1.0:
            raise ConfigError(f"AttentionFusion: need out_dim >= 1 and dropout in [0, 1), "
                              f"got {out_dim}, {dropout}")
        self._store_config(modalities=list(modalities), in_dim=in_dim, out_dim=out_dim,
                           num_layers=num_layers, num_heads=num_heads, dropout=dropout,
                           modality_dropout=modality_dropout)
        num = len(self.modalities)
        self.cls_token = nn.Parameter(torch.randn(1, 1, in_dim) * 0.02)
        self.type_embedding = nn.Parameter(torch.randn(1, num, in_dim) * 0.02)
        layer = nn.TransformerEncoderLayer(
            in_dim, num_heads, dim_feedforward=2 * in_dim, dropout=dropout,
            activation="gelu", batch_first=True, norm_first=True,
        )
        # Nested tensors are off: the pre-norm layer cannot use them and would warn.
        self.encoder = nn.TransformerEncoder(layer, num_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(in_dim)
        self.proj = nn.Linear(in_dim, out_dim)

    def _fuse(self, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        # tokens (B, M, D), zero where absent; mask (B, M) True = present
        batch_size = tokens.shape[0]
        x = torch.cat([self.cls_token.expand(batch_size, -1, -1),
                       tokens + self.type_embedding], dim=1)  # (B, 1 + M, D)
        cls_present = torch.ones(batch_size, 1, dtype=torch.bool, device=mask.device)
        padding = ~torch.cat([cls_present, mask], dim=1)  # (B, 1 + M), True = cannot attend
        h = self.encoder(x, src_key_padding_mask=padding)  # (B, 1 + M, D)
        return self.proj(self.norm(h[:, 0]))  # (B, out_dim)
