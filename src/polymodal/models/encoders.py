"""Per-modality encoders: each maps one modality's tensor from a ``Batch`` to ``(B, D)``.

- :class:`ImageEncoder`   — a compact CNN sized to the image (cheap on CPU).
- :class:`TextEncoder`    — an MLP over a frozen sentence embedding.
- :class:`AudioEncoder`   — a small 2-D CNN over a log-mel spectrogram.
- :class:`TabularEncoder` — numbers + per-column categorical embeddings + multi-hot tags.

Normalisation is GroupNorm (or LayerNorm), never BatchNorm: an encoder's output for a
row then depends on that row alone, so an absent cell's placeholder pixels cannot leak
into other rows through batch statistics, batch size 1 trains, and train/eval outputs
differ only by dropout.

Every module here (and in ``fusion.py`` / ``heads.py``) keeps its constructor arguments
as its config: ``Module.from_config(json.loads(json.dumps(m.config())))`` rebuilds it.

References: He et al. 2016, "Identity Mappings in Deep Residual Networks" (pre-activation
blocks); Wu & He 2018, "Group Normalization"; the categorical embedding size rule
``min(16, round(1.6 * card ** 0.56))`` is fast.ai's heuristic (capped lower for CPU).
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Sequence

import torch
from torch import nn

from polymodal.errors import ConfigError, DataError


class ConfigurableModule(nn.Module):
    """An ``nn.Module`` whose keyword arguments are its JSON-able config.

    Subclasses call :meth:`_store_config` in ``__init__`` with their arguments as received
    (after normalising tuples to lists), and get :meth:`config` / :meth:`from_config`.
    """

    def _store_config(self, **kwargs) -> None:
        # Round-trip through JSON now, so a non-JSON-able argument fails at construction.
        self._config = json.loads(json.dumps(kwargs))

    def config(self) -> dict:
        """The constructor arguments, as a JSON-able dict (a copy)."""
        return json.loads(json.dumps(self._config))

    @classmethod
    def from_config(cls, config: dict):
        """Rebuild from :meth:`config`'s dict; an unknown key raises :class:`ConfigError`."""
        params = inspect.signature(cls.__init__).parameters
        valid = [name for name in params if name != "self"]
        unknown = sorted(set(config) - set(valid))
        if unknown:
            raise ConfigError(
                f"{cls.__name__} config has unknown key(s) {unknown}; valid keys are {valid}"
            )
        return cls(**config)


def _num_groups(channels: int, max_groups: int = 8) -> int:
    """The largest group count <= max_groups that divides ``channels``."""
    for groups in range(min(max_groups, channels), 0, -1):
        if channels % groups == 0:
            return groups
    return 1  # unreachable: 1 always divides


def _check_positive(owner: str, **values: int) -> None:
    for name, value in values.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ConfigError(f"{owner}: {name} must be a positive integer, got {value!r}")


def _check_dropout(owner: str, dropout: float) -> None:
    if not 0.0 <= float(dropout) < 1.0:
        raise ConfigError(f"{owner}: dropout must be in [0, 1), got {dropout!r}")


class _ResidualBlock(nn.Module):
    """Pre-activation residual block: (GN, SiLU, conv3x3) x 2, plus a 1x1 skip on change."""

    def __init__(self, in_channels: int, out_channels: int, *, stride: int = 1):
        super().__init__()
        self.norm1 = nn.GroupNorm(_num_groups(in_channels), in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.norm2 = nn.GroupNorm(_num_groups(out_channels), out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.act = nn.SiLU()
        self.skip = (
            nn.Identity()
            if stride == 1 and in_channels == out_channels
            else nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C_in, H, W)
        h = self.conv1(self.act(self.norm1(x)))  # (B, C_out, H/s, W/s)
        h = self.conv2(self.act(self.norm2(h)))
        return self.skip(x) + h


class _ConvNormAct(nn.Sequential):
    """conv3x3 (optionally strided) -> GroupNorm -> ReLU."""

    def __init__(self, in_channels: int, out_channels: int, *, stride: int = 1):
        super().__init__(
            nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False),
            nn.GroupNorm(_num_groups(out_channels), out_channels),
            nn.ReLU(inplace=True),
        )


class ImageEncoder(ConfigurableModule):
    """A compact CNN for small images: ``(B, C, H, W)`` pixels in [-1, 1] -> ``(B, out_dim)``.

    Sized for CPU training, where a small CNN's time goes mostly to memory traffic at full
    resolution, not to multiply-adds. Layout, for a 28x28 image and the default width 32::

        stem    conv3x3  C -> 16   @ 28x28   (width // 2 channels at full resolution)
        stage 1 conv3x3  16 -> 32  stride 2  @ 14x14
        stage 2 conv3x3  32 -> 64  stride 2  @ 7x7
        head    flatten (64 x 7 x 7) -> dropout -> linear -> out_dim

    Each conv is followed by GroupNorm and ReLU. Depth follows the image size (the
    smaller side): up to 16 px one strided stage (8x8 -> 4x4); up to 48 px two
    (32x32 -> 8x8); beyond that the stem's convs are strided, one per halving until the
    side is <= 48 (64 -> 1 extra stride, 128 -> 2), so compute stays within ~2x of the
    32-px case. ``blocks_per_stage - 1`` pre-activation residual blocks follow each
    strided conv. With the defaults a forward pass costs about 2.3 M multiply-adds for a
    1x28x28 image, 3.2 M for 3x32x32 and 6.9 M for 3x128x128 (the previous ResNet: 37 M
    for 1x28x28) and trains several times faster (bench/RESULTS.md, 'Ad-hoc probes').

    The head keeps the coarse layout (a flattened grid of at most 7x7 cells, average-pooled
    down to it when the feature map is larger) instead of a global average: for centred
    objects such as Fashion-MNIST's, where a feature is matters. In short CPU runs
    (``bench/image_recipe_probe.py``) flattened-grid CNNs reached a higher validation
    accuracy than global-average heads of similar cost (see bench/RESULTS.md,
    'image_recipe_probe').

    GroupNorm, not BatchNorm: a row's embedding depends on that row alone (an absent
    cell's zero placeholder cannot leak into other rows, batch size 1 trains, train and
    eval outputs differ only by dropout), and on CPU it measured no slower here.
    Works in ``channels_last`` memory format.
    """

    MAX_GRID = 7  # cells per side of the head's feature grid

    def __init__(
        self,
        in_channels: int,
        image_size: int | Sequence[int],
        *,
        width: int = 32,
        out_dim: int = 128,
        blocks_per_stage: int = 1,
        dropout: float = 0.0,
    ):
        super().__init__()
        size = [image_size, image_size] if isinstance(image_size, int) else list(image_size)
        if len(size) != 2:
            raise ConfigError(f"ImageEncoder: image_size must be an int or [H, W], got {image_size!r}")
        _check_positive("ImageEncoder", in_channels=in_channels, height=size[0], width_px=size[1],
                        width=width, out_dim=out_dim, blocks_per_stage=blocks_per_stage)
        _check_dropout("ImageEncoder", dropout)
        self._store_config(in_channels=in_channels,
                           image_size=size[0] if size[0] == size[1] else size,
                           width=width, out_dim=out_dim, blocks_per_stage=blocks_per_stage,
                           dropout=dropout)
        height, width_px = size

        def halve(side: int) -> int:  # a 3x3 stride-2 conv with padding 1
            return (side + 1) // 2

        # Large images: the stem downsamples from its first conv on, where it is cheapest,
        # one stride-2 conv per halving until the side is <= 48.
        stem_channels = max(4, width // 2)
        stem: list[nn.Module] = []
        channels = in_channels
        while min(height, width_px) > 48:
            stem.append(_ConvNormAct(channels, stem_channels, stride=2))
            channels = stem_channels
            height, width_px = halve(height), halve(width_px)
        if not stem:
            stem.append(_ConvNormAct(in_channels, stem_channels))
        self.stem = nn.Sequential(*stem)

        num_stages = 1 if min(height, width_px) <= 16 else 2
        blocks: list[nn.Module] = []
        channels = stem_channels
        for stage in range(num_stages):
            out_channels = width * 2**stage
            blocks.append(_ConvNormAct(channels, out_channels, stride=2))
            blocks += [_ResidualBlock(out_channels, out_channels) for _ in range(blocks_per_stage - 1)]
            channels = out_channels
            height, width_px = halve(height), halve(width_px)
        self.blocks = nn.Sequential(*blocks)

        grid = (min(height, self.MAX_GRID), min(width_px, self.MAX_GRID))
        self.pool = (nn.Identity() if grid == (height, width_px) else nn.AdaptiveAvgPool2d(grid))
        self.dropout = nn.Dropout(dropout)
        self.proj = nn.Linear(channels * grid[0] * grid[1], out_dim)

    def forward(self, images: torch.Tensor) -> torch.Tensor:  # (B, C, H, W)
        h = self.blocks(self.stem(images))  # (B, C', H', W')
        h = self.pool(h).flatten(1)  # (B, C' * gh * gw)
        return self.proj(self.dropout(h))  # (B, out_dim)


class TextEncoder(ConfigurableModule):
    """An MLP over a frozen sentence embedding: ``(B, in_dim)`` -> ``(B, out_dim)``.

    LayerNorm first, because different embedding models put their vectors on different
    scales (unit-norm or not), and the MLP should not have to learn that scale.
    """

    def __init__(self, in_dim: int, *, out_dim: int = 128, hidden: int = 256, dropout: float = 0.1):
        super().__init__()
        _check_positive("TextEncoder", in_dim=in_dim, out_dim=out_dim, hidden=hidden)
        _check_dropout("TextEncoder", dropout)
        self._store_config(in_dim=in_dim, out_dim=out_dim, hidden=hidden, dropout=dropout)
        self.net = nn.Sequential(
            nn.LayerNorm(in_dim),
            nn.Linear(in_dim, hidden),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, out_dim),
        )

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:  # (B, in_dim)
        return self.net(embeddings)  # (B, out_dim)


class AudioEncoder(ConfigurableModule):
    """A small 2-D CNN over a log-mel spectrogram: ``(B, 1, n_mels, n_frames)`` -> ``(B, out_dim)``.

    Three stride-2 conv stages (widths ``width * (1, 2, 4)``), then pooling over time, so
    the output does not depend on the clip's length. ``norm`` says what happens first:

    - ``"clip"``: a GroupNorm on the raw input (one group) rescales the clip as a whole,
      then the features are averaged over frequency and time.
    - ``"band"``: each mel band is standardised over the clip's frames (cepstral mean and
      variance normalisation in the log-mel domain: a fixed recording channel or a
      speaker's spectral tilt adds a constant per band, which this removes), and the
      pooling keeps the frequency axis (where the formants are), averaging and taking the
      maximum over time.
    """

    NORMS = ("clip", "band")

    def __init__(self, n_mels: int, n_frames: int, *, out_dim: int = 128, width: int = 16,
                 dropout: float = 0.0, norm: str = "clip"):
        super().__init__()
        _check_positive("AudioEncoder", n_mels=n_mels, n_frames=n_frames, out_dim=out_dim, width=width)
        _check_dropout("AudioEncoder", dropout)
        if norm not in self.NORMS:
            raise ConfigError(f"AudioEncoder: norm={norm!r} must be one of {list(self.NORMS)}")
        config = dict(n_mels=n_mels, n_frames=n_frames, out_dim=out_dim, width=width,
                      dropout=dropout)
        self._store_config(**config, **({"norm": norm} if norm != "clip" else {}))
        self.norm = norm
        layers: list[nn.Module] = [nn.GroupNorm(1, 1)] if norm == "clip" else []
        channels, bands = 1, n_mels
        for stage in range(3):
            out_channels = width * 2**stage
            layers += [nn.Conv2d(channels, out_channels, 3, stride=2, padding=1, bias=False),
                       nn.GroupNorm(_num_groups(out_channels), out_channels),
                       nn.SiLU()]
            channels, bands = out_channels, (bands + 1) // 2
        self.convs = nn.Sequential(*layers)
        self.dropout = nn.Dropout(dropout)
        self.proj = nn.Linear(channels if norm == "clip" else 2 * channels * bands, out_dim)

    def forward(self, log_mel: torch.Tensor) -> torch.Tensor:  # (B, 1, n_mels, T)
        if self.norm == "clip":
            h = self.convs(log_mel).mean(dim=(2, 3))  # (B, 4 * width)
            return self.proj(self.dropout(h))  # (B, out_dim)
        mean = log_mel.mean(dim=3, keepdim=True)  # (B, 1, n_mels, 1)
        std = (log_mel.var(dim=3, keepdim=True, unbiased=False) + 1e-5).sqrt()
        h = self.convs((log_mel - mean) / std)  # (B, C, M', T')
        h = torch.cat([h.mean(dim=3), h.amax(dim=3)], dim=1).flatten(1)  # (B, 2 * C * M')
        return self.proj(self.dropout(h))  # (B, out_dim)


def categorical_embedding_dim(cardinality: int) -> int:
    """Embedding width for a vocabulary of ``cardinality`` (incl. unknown/missing)."""
    return max(1, min(16, round(1.6 * cardinality**0.56)))


class TabularEncoder(ConfigurableModule):
    """Numbers, categories and tags of a row -> ``(B, out_dim)``.

    Inputs (any may be ``None`` when its count is 0): ``numeric`` (B, n_numeric) float,
    ``categorical`` (B, F_cat) int64 vocabulary indices (0 unknown, 1 missing),
    ``multilabel`` (B, multilabel_dim) multi-hot. Each categorical column gets its own
    embedding; everything is concatenated and passed through a 2-layer MLP.
    """

    def __init__(
        self,
        n_numeric: int,
        categorical_cardinalities: Sequence[int],
        multilabel_dim: int,
        *,
        out_dim: int = 128,
        hidden: int = 256,
        dropout: float = 0.1,
    ):
        super().__init__()
        cards = [int(c) for c in categorical_cardinalities]
        for i, card in enumerate(cards):
            if card < 2:
                raise ConfigError(
                    f"TabularEncoder: categorical column {i} has cardinality {card}; it must be "
                    ">= 2 (index 0 = unknown and 1 = missing are always in the vocabulary)"
                )
        if n_numeric < 0 or multilabel_dim < 0:
            raise ConfigError(
                f"TabularEncoder: n_numeric and multilabel_dim must be >= 0, got "
                f"{n_numeric} and {multilabel_dim}"
            )
        if n_numeric + len(cards) + multilabel_dim == 0:
            raise ConfigError("TabularEncoder: no numeric, categorical or multilabel features; "
                              "do not build a tabular encoder for a table without them")
        _check_positive("TabularEncoder", out_dim=out_dim, hidden=hidden)
        _check_dropout("TabularEncoder", dropout)
        self._store_config(n_numeric=n_numeric, categorical_cardinalities=cards,
                           multilabel_dim=multilabel_dim, out_dim=out_dim, hidden=hidden,
                           dropout=dropout)
        self.n_numeric = n_numeric
        self.cardinalities = cards
        self.multilabel_dim = multilabel_dim
        self.embeddings = nn.ModuleList(nn.Embedding(c, categorical_embedding_dim(c)) for c in cards)
        in_dim = n_numeric + sum(e.embedding_dim for e in self.embeddings) + multilabel_dim
        self.net = nn.Sequential(
            nn.Linear(in_dim, hidden),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, out_dim),
        )

    def _check_categorical(self, categorical: torch.Tensor) -> None:
        if categorical.dim() != 2 or categorical.shape[1] != len(self.cardinalities):
            raise DataError(
                f"categorical tensor has shape {tuple(categorical.shape)}; expected "
                f"(B, {len(self.cardinalities)}) to match the fitted transform"
            )
        if categorical.numel() == 0 or torch.compiler.is_exporting():
            return  # an exported graph's runtime maps unseen values to 0 itself
        cards = torch.tensor(self.cardinalities, device=categorical.device)  # (F_cat,)
        outside = (categorical < 0) | (categorical >= cards)  # (B, F_cat)
        if outside.any():
            row, col = (int(i) for i in outside.nonzero()[0])
            raise DataError(
                f"categorical column {col} holds index {int(categorical[row, col])} (row {row}), "
                f"outside its vocabulary [0, {self.cardinalities[col]}); encode the table with the "
                "model's fitted transform, which maps unseen values to 0 (unknown)"
            )

    def forward(
        self,
        numeric: torch.Tensor | None,
        categorical: torch.Tensor | None,
        multilabel: torch.Tensor | None,
    ) -> torch.Tensor:
        parts: list[torch.Tensor] = []
        for name, tensor, width in (("numeric", numeric, self.n_numeric),
                                    ("multilabel", multilabel, self.multilabel_dim)):
            if width == 0:
                continue
            if tensor is None or tensor.dim() != 2 or tensor.shape[1] != width:
                got = None if tensor is None else tuple(tensor.shape)
                raise DataError(f"{name} tensor has shape {got}; expected (B, {width}) to match "
                                "the fitted transform")
            parts.append(tensor.float())  # (B, width)
        if self.cardinalities:
            if categorical is None:
                raise DataError(f"categorical tensor is None; expected (B, {len(self.cardinalities)}) "
                                "to match the fitted transform")
            self._check_categorical(categorical)
            parts += [emb(categorical[:, i]) for i, emb in enumerate(self.embeddings)]  # (B, E_i)
        return self.net(torch.cat(parts, dim=1))  # (B, out_dim)
