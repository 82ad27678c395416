"""Judges: the feature spaces generated images are scored in.

A generator's Fréchet distance, KID, precision/recall and memorisation figures are only
as meaningful as the features they are computed on. Inception features need weights from
the internet, so polymodal scores in the features of a *judge*: a compact CNN trained on
the real images' labels (:class:`Judge`), saved next to the generator so that scores
stay comparable over time. Its penultimate layer gives the features and its head gives
conditional accuracy ("is a sample asked to be a 7 seen as a 7?"). Where there are no
labels, :class:`PixelJudge` scores in (downsampled) pixel space and needs no training.

Both take uint8 images ``(N, H, W, C)``, the format ``Generator.sample`` returns.

Reference: Heusel et al. 2017 (FID) scores in a classifier's penultimate features; the
same idea with a judge trained on the user's own data needs no download.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors
from torch import nn
from torch.utils.data import TensorDataset

from polymodal.errors import DataError, ModelFolderError
from polymodal.files import write_bytes, write_json
from polymodal.models.encoders import ImageEncoder
from polymodal.train import TrainConfig, Trainer
from polymodal.train.seed import preserved_rng_state, seed_everything

JUDGE_FORMAT = "polymodal-judge"
JUDGE_VERSION = 1
WEIGHTS_NAME = "judge.safetensors"
CONFIG_NAME = "judge.json"
# Images per forward pass when computing features (bounds memory, not results).
FEATURE_BATCH = 512


def as_uint8_images(images, *, what: str = "images") -> np.ndarray:
    """Check and normalise an image batch to uint8 ``(N, H, W, C)``; (N, H, W) gains C=1."""
    arr = np.asarray(images)
    if arr.ndim == 3:
        arr = arr[..., None]
    if arr.ndim != 4 or arr.shape[-1] not in (1, 3):
        raise DataError(
            f"{what} must be uint8 images shaped (N, H, W, C) with C 1 or 3; got shape "
            f"{arr.shape}. Pass Generator.sample's output or a stack of decoded images."
        )
    if arr.dtype != np.uint8:
        raise DataError(
            f"{what} must have dtype uint8 (pixel values 0..255); got {arr.dtype}. Convert "
            "with np.clip(x, 0, 255).astype(np.uint8)."
        )
    return arr


def _to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 (N, H, W, C) -> float (N, C, H, W) in [-1, 1], the encoders' input range."""
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 127.5 - 1.0


def _json_scalar(value):
    """A class value as plain JSON (numpy scalars become Python ones)."""
    return value.item() if isinstance(value, np.generic) else value


def sorted_classes(labels: Sequence) -> list:
    """Distinct label values in a stable order: by value when comparable, else as text."""
    distinct = list(dict.fromkeys(_json_scalar(v) for v in labels))
    try:
        return sorted(distinct)
    except TypeError:
        return sorted(distinct, key=str)


class _JudgeNet(nn.Module):
    """ImageEncoder -> (B, D) features -> linear head -> (B, K) logits."""

    def __init__(self, encoder: ImageEncoder, num_classes: int):
        super().__init__()
        self.encoder = encoder
        self.head = nn.Linear(encoder.config()["out_dim"], num_classes)

    def features(self, images: torch.Tensor) -> torch.Tensor:  # (B, C, H, W)
        return self.encoder(images)  # (B, D)

    def forward(self, images: torch.Tensor) -> torch.Tensor:  # (B, C, H, W)
        return self.head(F.silu(self.features(images)))  # (B, K)


def save_network(directory: str | os.PathLike, net: nn.Module, config: dict, *,
                 weights_name: str, config_name: str) -> Path:
    """Write a network's weights (safetensors) and its JSON config into ``directory``,
    each atomically; the pair :func:`read_network` reads back."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.contiguous() for k, v in net.state_dict().items()}
    write_bytes(directory / weights_name, save_safetensors(state))
    write_json(directory / config_name, config)
    return directory


def read_network(directory: str | os.PathLike, *, weights_name: str, config_name: str,
                 file_format: str, version: int, what: str) -> tuple[dict, dict]:
    """``(config, state_dict)`` of a folder written by :func:`save_network`, after checking
    both files exist and the config's format/version; one clear ModelFolderError if not."""
    directory = Path(directory)
    config_path, weights_path = directory / config_name, directory / weights_name
    for path in (config_path, weights_path):
        if not path.is_file():
            raise ModelFolderError(f"{path} is missing: {directory} is not a saved {what} "
                                   f"folder (expected {config_name} and {weights_name}).")
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelFolderError(f"{config_path} is not valid JSON ({exc}).") from None
    if config.get("format") != file_format or config.get("version") != version:
        raise ModelFolderError(
            f"{config_path} has format {config.get('format')!r} version "
            f"{config.get('version')!r}; this polymodal reads {file_format!r} version "
            f"{version}. Train the {what} again."
        )
    return config, load_safetensors(weights_path.read_bytes())


def load_network_state(net: nn.Module, state: dict, directory: str | os.PathLike) -> None:
    """Load ``state`` into ``net``; a mismatch is a ModelFolderError naming the folder."""
    try:
        net.load_state_dict(state)
    except RuntimeError as exc:
        raise ModelFolderError(f"the weights in {directory} do not match its config: {exc}") from None


class Judge:
    """A small image classifier trained on real images' labels, used to score generators.

    Build one with :meth:`Judge.train` (or :meth:`Judge.load`). ``features`` gives the
    penultimate ``(N, D)`` features that FD/KID/precision-recall are computed in,
    ``predict`` the class index of each image (into ``classes``).

    Args:
        classes: the class values, in index order.
        image_shape: ``(H, W, C)`` of the images it judges.
        width: channels of the encoder's first stage (``ImageEncoder``'s ``width``).
        out_dim: feature dimension ``D``.
    """

    kind = "trained"

    def __init__(self, classes: Sequence, image_shape: Sequence[int], *, width: int = 16,
                 out_dim: int = 64):
        self.classes = [_json_scalar(c) for c in classes]
        if len(self.classes) < 2:
            raise DataError(
                f"a judge needs at least 2 classes to learn from; got {self.classes!r}. Use "
                "judge='pixels' for data with a single class or no labels."
            )
        self.image_shape = tuple(int(s) for s in image_shape)
        height, width_px, channels = self.image_shape
        encoder = ImageEncoder(channels, [height, width_px], width=width, out_dim=out_dim)
        self.net = _JudgeNet(encoder, len(self.classes)).eval()
        self.training_info: dict = {}
        self._index = {str(c): i for i, c in enumerate(self.classes)}

    # ------------------------------------------------------------------ training

    @classmethod
    def train(
        cls,
        images,
        labels: Sequence,
        *,
        classes: Sequence | None = None,
        time_limit_s: float | None = 30.0,
        max_epochs: int = 30,
        batch_size: int = 64,
        lr: float = 2e-3,
        width: int = 16,
        out_dim: int = 64,
        seed: int = 0,
    ) -> Judge:
        """Train a judge on uint8 images ``(N, H, W, C)`` and their label values.

        Runs the shared :class:`~polymodal.train.Trainer` for at most ``max_epochs`` or
        ``time_limit_s`` seconds (``None``: epochs only), seeded: when the epochs, not the
        clock, end the run, two runs give the same weights. The caller's global RNG state
        is left as it was.
        """
        images = as_uint8_images(images)
        labels = list(labels)
        if len(labels) != len(images):
            raise DataError(f"Judge.train got {len(images)} images but {len(labels)} labels; "
                            "pass one label per image.")
        with preserved_rng_state():
            seed_everything(seed)  # the initial weights are drawn from the global RNG
            judge = cls(sorted_classes(labels) if classes is None else classes,
                        images.shape[1:], width=width, out_dim=out_dim)
            targets = torch.from_numpy(judge.class_indices(labels))
            batch = max(1, min(batch_size, len(images)))
            config = TrainConfig(
                batch_size=batch, lr=lr, warmup_steps=min(20, math.ceil(len(images) / batch)),
                max_epochs=max_epochs, time_limit_s=time_limit_s, seed=seed, device="cpu",
                progress=False, checkpoint_every_s=None, log_every_steps=50,
            )
            start = time.perf_counter()
            result = Trainer(config).fit(judge.net, TensorDataset(_to_tensor(images), targets),
                                         loss_fn=_cross_entropy)
        judge.net.eval()
        judge.training_info = {
            "num_images": len(images), "steps": result.steps, "epochs": round(result.epochs, 3),
            "stop_reason": result.stop_reason, "train_s": round(time.perf_counter() - start, 2),
            "seed": seed,
        }
        return judge

    # ------------------------------------------------------------------ use

    def class_indices(self, labels: Sequence) -> np.ndarray:
        """Label values -> indices into ``classes``; an unknown value is a DataError."""
        out = np.array([self._index.get(str(_json_scalar(v)), -1) for v in labels], dtype=np.int64)
        if (out < 0).any():
            unknown = sorted({str(v) for v, i in zip(labels, out, strict=True) if i < 0})
            raise DataError(f"label value(s) {unknown[:10]} are not among the judge's classes "
                            f"{self.classes}; score only classes the judge was trained on.")
        return out

    def _check_shape(self, images: np.ndarray) -> None:
        if tuple(images.shape[1:]) != self.image_shape:
            raise DataError(
                f"the judge was trained on images shaped (H, W, C) = {self.image_shape}; got "
                f"{tuple(images.shape[1:])}. Resize the images to the generator's size, or "
                "train a new judge on images of this size."
            )

    @torch.no_grad()
    def _run(self, images, method: str) -> np.ndarray:
        images = as_uint8_images(images)
        self._check_shape(images)
        out = [getattr(self.net, method)(_to_tensor(images[i : i + FEATURE_BATCH]))
               for i in range(0, len(images), FEATURE_BATCH)]
        if not out:
            return np.zeros((0, 0), dtype=np.float32)
        return torch.cat(out).numpy()

    def features(self, images) -> np.ndarray:
        """Penultimate features ``(N, D)`` float32 of uint8 images ``(N, H, W, C)``."""
        return self._run(images, "features")

    def predict(self, images) -> np.ndarray:
        """Class index ``(N,)`` (into ``classes``) of each image."""
        return self._run(images, "forward").argmax(axis=1).astype(np.int64)

    def accuracy(self, images, labels: Sequence) -> float:
        """Share of images whose predicted class is their label value."""
        targets = self.class_indices(list(labels))
        return float((self.predict(images) == targets).mean()) if len(targets) else float("nan")

    # ------------------------------------------------------------------ persistence

    def config(self) -> dict:
        """What :meth:`load` needs to rebuild the network, as plain JSON."""
        encoder = self.net.encoder.config()
        return {
            "format": JUDGE_FORMAT, "version": JUDGE_VERSION, "classes": self.classes,
            "image_shape": list(self.image_shape), "width": encoder["width"],
            "out_dim": encoder["out_dim"], "training": self.training_info,
        }

    def save(self, directory: str | os.PathLike) -> Path:
        """Write ``judge.safetensors`` + ``judge.json`` into ``directory`` (atomically)."""
        return save_network(directory, self.net, self.config(), weights_name=WEIGHTS_NAME,
                            config_name=CONFIG_NAME)

    @classmethod
    def load(cls, directory: str | os.PathLike) -> Judge:
        """Rebuild a judge written by :meth:`save`."""
        config, state = read_network(directory, weights_name=WEIGHTS_NAME, config_name=CONFIG_NAME,
                                     file_format=JUDGE_FORMAT, version=JUDGE_VERSION, what="judge")
        judge = cls(config["classes"], config["image_shape"], width=config["width"],
                    out_dim=config["out_dim"])
        load_network_state(judge.net, state, directory)
        judge.training_info = dict(config.get("training") or {})
        return judge

    def __repr__(self) -> str:
        return (f"Judge(classes={self.classes}, image_shape={self.image_shape}, "
                f"out_dim={self.net.encoder.config()['out_dim']})")


def _cross_entropy(model: nn.Module, batch) -> tuple[torch.Tensor, dict[str, float]]:
    images, targets = batch  # (B, C, H, W), (B,)
    logits = model(images)  # (B, K)
    loss = F.cross_entropy(logits, targets)
    return loss, {"accuracy": float((logits.argmax(1) == targets).float().mean())}


class PixelJudge:
    """Raw-pixel features, no training: for generators whose data has no labels.

    Images are average-pooled by a whole factor to at most ``max_side`` pixels a side (so
    FD's covariance stays small enough to estimate from a thousand samples), then
    flattened, in [0, 1].
    It has no classes, so no conditional accuracy or CAS.
    """

    kind = "pixels"
    classes = None

    def __init__(self, *, max_side: int = 16):
        self.max_side = int(max_side)

    def features(self, images) -> np.ndarray:
        """``(N, C * h * w)`` float32 pooled pixels in [0, 1]."""
        x = (_to_tensor(as_uint8_images(images)) + 1.0) / 2.0  # (N, C, H, W) in [0, 1]
        # Whole-pixel windows (28 -> 14, 64 -> 16): every output pixel averages the same area.
        factor = math.ceil(max(x.shape[2:]) / self.max_side)
        if factor > 1:
            x = F.avg_pool2d(x, factor, ceil_mode=True)  # (N, C, H / factor, W / factor)
        return x.flatten(1).numpy()

    def __repr__(self) -> str:
        return f"PixelJudge(max_side={self.max_side})"
