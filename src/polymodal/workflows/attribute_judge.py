"""``AttributeJudge``: reads a ``shapes`` image back into its attributes, to score text-to-image.

A caption such as "a small red star at the top left" asks for four things: a kind, a
colour, a size and a grid cell. To check whether a generated image delivers them, this
judge predicts all four from the pixels with a small multi-head CNN (one shared
:class:`~polymodal.models.encoders.ImageEncoder` trunk, one linear head per attribute).

It shares nothing with the generator it scores: it is trained from scratch on images
freshly rendered by the ``shapes`` dataset's own renderer (:func:`shapes.load` with a
seed of its own, distractor shapes included, by default many more images than a generator
sees), so its errors are not the generator's errors. Small Gaussian pixel noise during
training keeps it from relying on the exact, perfectly clean pixels of the renderer.

Colour has a second, training-free reader, :func:`dominant_color`: the nominal colour
nearest to the hue of the image's saturated, bright pixels (the ``shapes`` backgrounds are
pale or dark, the shapes saturated and bright, the main shape larger than the
distractor). :meth:`AttributeJudge.train` measures both readers on held-out renders and
keeps the more accurate one for ``"color"`` (``color_method``); ``score`` reports the other
too, so a reader of a benchmark can see whether they agree on generated images.

Every score comes with the judge's own accuracy on held-out real renders
(``holdout_accuracy``): a generator's prompt accuracy can be read only against it.
Its held-out accuracy with the defaults (``bench/text_to_image_shapes.py``) is in
bench/RESULTS.md, 'text_to_image_shapes': shape is the attribute it reads least well (nearly
all errors are circle <-> square).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import TensorDataset

from polymodal.data.builtin import shapes
from polymodal.errors import ConfigError, DataError, ModelFolderError
from polymodal.models.encoders import ImageEncoder
from polymodal.train import TrainConfig, Trainer
from polymodal.train.seed import preserved_rng_state, seed_everything
from polymodal.workflows.judge import (
    as_uint8_images,
    load_network_state,
    read_network,
    save_network,
)

# The attributes a caption names, and their values in head order.
ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "shape": shapes.KINDS,
    "color": shapes.COLORS,
    "size": shapes.SIZES,
    "position": shapes.POSITIONS,
}
COLOR_METHODS = ("cnn", "pixels")
FORMAT = "polymodal-attribute-judge"
VERSION = 1
WEIGHTS_NAME = "attribute_judge.safetensors"
CONFIG_NAME = "attribute_judge.json"
# A seed far from the ones benchmarks train generators with (0, 1, ...): the judge's
# renders then share no row RNG stream with any generator's training rows.
DEFAULT_RENDER_SEED = 7_919
FORWARD_BATCH = 512  # images per forward pass (bounds memory, not results)
# Training-time pixel noise, in [-1, 1] units: a sample's sd is uniform in [0, this].
MAX_NOISE_SD = 0.15
# What counts as a "shape" pixel for dominant_color: the renderer draws shapes at
# saturation >= 0.75 and value >= 0.85, backgrounds at saturation <= 0.18 (light) or
# value <= 0.25 (dark); thresholds halfway leave room for anti-aliased edges and for
# generated images' colour drift.
MIN_SATURATION = 0.45
MIN_VALUE = 0.5


class _MultiHeadNet(nn.Module):
    """ImageEncoder trunk -> (B, D) -> one linear head per attribute -> concatenated logits."""

    def __init__(self, encoder: ImageEncoder, num_classes: Sequence[int]):
        super().__init__()
        self.encoder = encoder
        self.num_classes = list(num_classes)
        self.head = nn.Linear(encoder.config()["out_dim"], sum(self.num_classes))

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:  # (B, C, H, W)
        logits = self.head(F.silu(self.encoder(images)))  # (B, sum K)
        return list(logits.split(self.num_classes, dim=1))  # [(B, K_a) per attribute]


def _to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 (N, H, W, C) -> float (N, C, H, W) in [-1, 1]."""
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2)
    return x.float() / 127.5 - 1.0


def _multi_head_loss(model: nn.Module, batch) -> tuple[torch.Tensor, dict[str, float]]:
    images, targets = batch  # (B, C, H, W), (B, A)
    # Per-image noise level, so the judge sees both clean and noisy pixels.
    noise_sd = torch.rand(images.shape[0], 1, 1, 1) * MAX_NOISE_SD  # (B, 1, 1, 1)
    noisy = (images + noise_sd * torch.randn_like(images)).clamp_(-1.0, 1.0)
    heads = model(noisy)
    losses = [F.cross_entropy(logits, targets[:, a]) for a, logits in enumerate(heads)]
    correct = torch.stack([h.argmax(1) == targets[:, a] for a, h in enumerate(heads)], 1)
    return sum(losses), {"all_correct": float(correct.all(1).float().mean())}


def dominant_color(images) -> np.ndarray:
    """The colour name (from :data:`shapes.COLORS`) of each image's dominant saturated hue.

    Takes uint8 ``(N, H, W, 3)``; returns an ``(N,)`` array of colour names, ``""`` for an
    image without saturated, bright pixels. Each such pixel votes for the nominal colour
    whose hue (:data:`shapes.COLOR_HUES_DEG`) is nearest on the hue circle.
    """
    images = as_uint8_images(images)
    if images.shape[-1] != 3:
        raise DataError(f"dominant_color needs RGB images (N, H, W, 3); got {images.shape}")
    rgb = images.astype(np.float32) / 255.0  # (N, H, W, 3)
    value = rgb.max(axis=-1)  # (N, H, W)
    chroma = value - rgb.min(axis=-1)
    saturation = np.where(value > 0, chroma / np.maximum(value, 1e-6), 0.0)
    hue_deg = _hue_deg(rgb, value, chroma)  # (N, H, W)
    nominal = np.array(list(shapes.COLOR_HUES_DEG.values()), dtype=np.float32)  # (K,)
    gap = np.abs(hue_deg[..., None] - nominal)  # (N, H, W, K)
    nearest = np.minimum(gap, 360.0 - gap).argmin(axis=-1)  # (N, H, W)
    vivid = (saturation >= MIN_SATURATION) & (value >= MIN_VALUE)
    names = np.array(shapes.COLORS, dtype=object)
    out = np.full(len(images), "", dtype=object)
    for i in range(len(images)):
        votes = np.bincount(nearest[i][vivid[i]], minlength=len(nominal))
        if votes.sum() > 0:
            out[i] = names[votes.argmax()]
    return out


def _hue_deg(rgb: np.ndarray, value: np.ndarray, chroma: np.ndarray) -> np.ndarray:
    """HSV hue in degrees [0, 360) of (..., 3) RGB in [0, 1] (0 where chroma is 0)."""
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    safe = np.maximum(chroma, 1e-6)
    hue = np.where(value == r, ((g - b) / safe) % 6.0,
                   np.where(value == g, (b - r) / safe + 2.0, (r - g) / safe + 4.0))
    return np.where(chroma > 0, hue * 60.0, 0.0) % 360.0


class AttributeJudge:
    """Predicts a ``shapes`` image's kind, colour, size and position cell.

    Build one with :meth:`train` (or :meth:`load`). ``predict`` returns the attribute
    values per image, ``score`` the share of images whose attributes match a truth table.

    Args:
        image_size: side of the square RGB images it judges.
        width: channels of the encoder's first stage.
        out_dim: dimension of the shared features the heads read.
        color_method: ``"cnn"`` (the colour head) or ``"pixels"`` (:func:`dominant_color`)
            for the ``"color"`` attribute.
    """

    def __init__(self, image_size: int = 32, *, width: int = 16, out_dim: int = 128,
                 color_method: str = "cnn"):
        if color_method not in COLOR_METHODS:
            raise ConfigError(f"color_method={color_method!r} must be one of {list(COLOR_METHODS)}")
        self.image_size = int(image_size)
        self.color_method = color_method
        encoder = ImageEncoder(3, self.image_size, width=width, out_dim=out_dim)
        self.net = _MultiHeadNet(encoder, [len(v) for v in ATTRIBUTES.values()]).eval()
        self.training_info: dict = {}
        self.holdout_accuracy: dict[str, float] = {}

    # ------------------------------------------------------------------ training

    @classmethod
    def train(
        cls,
        *,
        num_images: int = 30_000,
        num_holdout: int = 1_000,
        image_size: int = 32,
        distractor_prob: float = 0.5,
        time_limit_s: float | None = None,
        max_epochs: int = 12,
        batch_size: int = 64,
        lr: float = 2e-3,
        width: int = 16,
        out_dim: int = 128,
        render_seed: int = DEFAULT_RENDER_SEED,
        seed: int = 0,
    ) -> AttributeJudge:
        """Render ``num_images`` fresh ``shapes`` images, train on them, and measure itself.

        The images come from ``shapes.load(seed=render_seed)`` (pick a seed no generator
        trained on); ``num_holdout`` more rows of another seed measure both colour readers
        and every head (``holdout_accuracy``), and pick ``color_method``. Training stops
        after ``max_epochs`` (or ``time_limit_s`` seconds, when given, if sooner): bounded
        by epochs, its accuracy does not depend on how fast the CPU is (bench/RESULTS.md,
        'text_to_image_shapes'). The caller's global RNG state is left as it was.
        """
        for name, value, low in (("num_images", num_images, 16), ("num_holdout", num_holdout, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ConfigError(f"AttributeJudge.train: {name}={value!r} must be an integer "
                                  f">= {low}")
        start = time.perf_counter()
        table = shapes.load(split=False, n=num_images, seed=render_seed, image_size=image_size,
                            distractor_prob=distractor_prob)
        holdout = shapes.load(split=False, n=num_holdout, seed=render_seed + 1,
                              image_size=image_size, distractor_prob=distractor_prob)
        render_s = time.perf_counter() - start
        with preserved_rng_state():
            seed_everything(seed)  # the initial weights are drawn from the global RNG
            judge = cls(image_size, width=width, out_dim=out_dim)
            images = _to_tensor(np.stack(table["image"].to_list()))  # (N, 3, S, S)
            targets = torch.from_numpy(judge._indices(table))  # (N, A)
            batch = min(batch_size, num_images)
            config = TrainConfig(
                batch_size=batch, lr=lr, warmup_steps=min(50, math.ceil(num_images / batch)),
                max_epochs=max_epochs, time_limit_s=time_limit_s, seed=seed, device="cpu",
                progress=False, checkpoint_every_s=None, log_every_steps=100,
            )
            train_start = time.perf_counter()
            result = Trainer(config).fit(judge.net, TensorDataset(images, targets),
                                         loss_fn=_multi_head_loss)
        judge.net.eval()
        judge.training_info = {
            "num_images": num_images, "num_holdout": num_holdout, "render_seed": render_seed,
            "distractor_prob": distractor_prob, "time_limit_s": time_limit_s,
            "max_epochs": max_epochs, "steps": result.steps,
            "epochs": round(result.epochs, 3), "stop_reason": result.stop_reason,
            "render_s": round(render_s, 2), "train_s": round(time.perf_counter() - train_start, 2),
            "seed": seed,
        }
        # Measure both colour readers on unseen renders; keep the better one for "color".
        holdout_images = np.stack(holdout["image"].to_list())
        judge.color_method = "cnn"
        measured = judge.score(holdout_images, holdout)
        judge.color_method = ("pixels" if measured["color_pixels"] > measured["color_cnn"]
                              else "cnn")
        judge.holdout_accuracy = judge.score(holdout_images, holdout)
        return judge

    def _indices(self, truth) -> np.ndarray:
        """A truth table's attribute values -> (N, A) int64 head indices."""
        columns = []
        for name, values in ATTRIBUTES.items():
            lookup = {v: i for i, v in enumerate(values)}
            cells = _column(truth, name)
            index = np.array([lookup.get(str(v), -1) for v in cells], dtype=np.int64)
            if (index < 0).any():
                bad = sorted({str(v) for v, i in zip(cells, index, strict=True) if i < 0})
                raise DataError(f"column {name!r} holds {bad[:5]}, not a shapes {name}; "
                                f"expected one of {list(values)}")
            columns.append(index)
        return np.stack(columns, axis=1)

    # ------------------------------------------------------------------ use

    def _check_images(self, images) -> np.ndarray:
        images = as_uint8_images(images)
        expected = (self.image_size, self.image_size, 3)
        if tuple(images.shape[1:]) != expected:
            raise DataError(f"the attribute judge reads (H, W, C) = {expected} images; got "
                            f"{tuple(images.shape[1:])}. Train a judge with "
                            f"image_size={images.shape[1]} or resize the images")
        return images

    @torch.no_grad()
    def predict(self, images) -> dict[str, np.ndarray]:
        """``{attribute: (N,) predicted values}`` for uint8 images ``(N, S, S, 3)``.

        ``"color"`` comes from ``color_method``; ``"color_cnn"`` and ``"color_pixels"``
        are both readers' answers.
        """
        images = self._check_images(images)
        chunks = [self.net(_to_tensor(images[i:i + FORWARD_BATCH]))
                  for i in range(0, len(images), FORWARD_BATCH)]
        out = {}
        for a, (name, values) in enumerate(ATTRIBUTES.items()):
            logits = torch.cat([c[a] for c in chunks]) if chunks else torch.zeros(0, len(values))
            out[name] = np.array(values, dtype=object)[logits.argmax(1).numpy()]
        out["color_cnn"] = out["color"]
        out["color_pixels"] = dominant_color(images) if len(images) else out["color"][:0]
        out["color"] = out[f"color_{self.color_method}"]
        return out

    def correct(self, images, truth) -> dict[str, np.ndarray]:
        """``{attribute: (N,) bool}``: whether each image shows the attribute ``truth`` asks for.

        ``truth`` is a DataFrame (or mapping) with columns shape, color, size and position,
        one row per image. ``"all"`` is True where shape, colour, size and position all match.
        """
        images = self._check_images(images)
        expected = {name: np.asarray(_column(truth, name), dtype=object) for name in ATTRIBUTES}
        if any(len(v) != len(images) for v in expected.values()):
            raise DataError(f"got {len(images)} images but truth has "
                            f"{ {k: len(v) for k, v in expected.items()} } rows; pass one truth "
                            "row per image")
        self._indices(truth)  # validates the values
        predicted = self.predict(images)
        hits = {name: predicted[name] == expected[name] for name in ATTRIBUTES}
        hits["all"] = np.logical_and.reduce([hits[name] for name in ATTRIBUTES])
        for reader in ("color_cnn", "color_pixels"):
            hits[reader] = predicted[reader] == expected["color"]
        return hits

    def score(self, images, truth) -> dict[str, float]:
        """Share of images showing each asked-for attribute: shape, color, size, position,
        all (every one at once), color_cnn and color_pixels (the two colour readers)."""
        hits = self.correct(images, truth)
        return {k: float(v.mean()) if len(v) else float("nan") for k, v in hits.items()}

    # ------------------------------------------------------------------ persistence

    def config(self) -> dict:
        """What :meth:`load` needs, plus how the judge was trained and how well it reads."""
        encoder = self.net.encoder.config()
        return {
            "format": FORMAT, "version": VERSION, "image_size": self.image_size,
            "width": encoder["width"], "out_dim": encoder["out_dim"],
            "color_method": self.color_method, "attributes": {k: list(v) for k, v in
                                                              ATTRIBUTES.items()},
            "training": self.training_info, "holdout_accuracy": self.holdout_accuracy,
        }

    def save(self, directory: str | os.PathLike) -> Path:
        """Write ``attribute_judge.safetensors`` + ``attribute_judge.json`` into ``directory``."""
        return save_network(directory, self.net, self.config(), weights_name=WEIGHTS_NAME,
                            config_name=CONFIG_NAME)

    @classmethod
    def load(cls, directory: str | os.PathLike) -> AttributeJudge:
        """Rebuild a judge written by :meth:`save`."""
        config, state = read_network(directory, weights_name=WEIGHTS_NAME, config_name=CONFIG_NAME,
                                     file_format=FORMAT, version=VERSION, what="attribute judge")
        if config.get("attributes") != {k: list(v) for k, v in ATTRIBUTES.items()}:
            raise ModelFolderError(f"{Path(directory) / CONFIG_NAME} was trained on other attribute "
                                   "values than this polymodal's shapes dataset; train the judge again")
        judge = cls(config["image_size"], width=config["width"], out_dim=config["out_dim"],
                    color_method=config["color_method"])
        load_network_state(judge.net, state, directory)
        judge.training_info = dict(config.get("training") or {})
        judge.holdout_accuracy = dict(config.get("holdout_accuracy") or {})
        return judge

    def __repr__(self) -> str:
        return (f"AttributeJudge(image_size={self.image_size}, color_method="
                f"{self.color_method!r})")


def _column(truth, name: str) -> list:
    """One attribute column of a DataFrame or mapping, as a list (a clear error if absent)."""
    if isinstance(truth, pd.DataFrame | Mapping) and name in truth:
        return list(truth[name])
    have = list(truth.columns) if isinstance(truth, pd.DataFrame) else (
        list(truth) if isinstance(truth, Mapping) else type(truth).__name__)
    raise DataError(f"truth has no {name!r} column (it has {have}); pass a table with columns "
                    f"{list(ATTRIBUTES)}, one row per image")
