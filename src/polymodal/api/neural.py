"""The neural candidate of a :class:`~polymodal.api.predictor.Predictor`.

A :class:`~polymodal.models.predictor_net.FusionPredictor` trained with the shared
:class:`~polymodal.train.Trainer` (AdamW, warm-up + cosine, EMA, early stopping on the
validation metric, time limit, resumable checkpoints), with outputs in the predictor's
convention (see :mod:`polymodal.models.classic`): ``(N, K)`` probabilities for binary
(K = 2), multiclass and multilabel, ``(N,)`` standardised values for regression.
Saved as ``weights.safetensors`` + ``model.json`` (the feature spec and network config).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from polymodal.data.batch import Batch
from polymodal.data.dataset import TableDataset, collate, make_loader
from polymodal.errors import ModelFolderError
from polymodal.files import atomic_path, read_json, write_json
from polymodal.models.heads import predict_from_outputs, task_loss
from polymodal.models.predictor_net import FusionPredictor
from polymodal.train import TrainConfig, Trainer, TrainResult
from polymodal.train.loop import TIE_BREAK

WEIGHTS_FILE = "weights.safetensors"
META_FILE = "model.json"
EVAL_BATCH_SIZE = 256


def network_outputs(model: FusionPredictor, batch: Batch) -> np.ndarray:
    """The network's predictions for one batch in the predictor's output convention."""
    device = next(model.parameters()).device
    with torch.no_grad():
        raw = model(batch.to(device, non_blocking=True))  # async from a pinned loader
        # float64 before the softmax/sigmoid, so each row of probabilities sums to 1 exactly enough
        # for scikit-learn's checks.
        values = predict_from_outputs(model.problem_type, raw.double()).cpu().numpy()
    if model.problem_type == "binary":
        values = np.stack([1.0 - values, values], axis=1)  # (B,) P(class 1) -> (B, 2)
    return values.astype(np.float64)


def mirrored(batch: Batch) -> Batch:
    """``batch`` with every image flipped left-right (nothing else changed)."""
    return dataclasses.replace(batch, image={c: x.flip(-1) for c, x in batch.image.items()})


def _loss(model: torch.nn.Module, batch: Batch, *, label_smoothing: float = 0.0) -> torch.Tensor:
    # ``model`` may be DDP-wrapped: call it, and read the problem type from the batch's owner.
    network = model.module if hasattr(model, "module") else model
    return task_loss(network.problem_type, model(batch), batch.label,
                     label_smoothing=label_smoothing)


class NeuralCandidate:
    """A fusion network over every modality, trained on a time budget.

    Args:
        spec: the fitted transform's ``feature_spec()``.
        network: keyword arguments of :class:`FusionPredictor` (fusion, width, dropouts).
        seed: seeds the initial weights (and, through the train config, everything else).
        label_smoothing: of the classification targets while training (0 = none).
        tta_hflip: predict the mean of the outputs for each row's images and for their
            mirror images (test-time augmentation; for networks trained with mirroring).
    """

    def __init__(self, spec: dict, network: dict, *, seed: int = 0, label_smoothing: float = 0.0,
                 tta_hflip: bool = False):
        self.spec = spec
        self.network = dict(network)
        self.seed = seed
        self.label_smoothing = float(label_smoothing)
        self.tta_hflip = bool(tta_hflip)
        # The initial weights depend on the seed only, and the caller's RNG is left as it was.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.model_ = FusionPredictor(spec, **self.network)
        self.result_: TrainResult | None = None

    def fit(self, train: TableDataset, val: TableDataset | None, *, config: TrainConfig,
            score: Callable[[np.ndarray], float] | None, metric_name: str, metric_mode: str,
            tie_break: Callable[[np.ndarray], float] | None = None,
            out_dir: str | os.PathLike | None = None, resume: bool = False,
            callbacks: Sequence = (), validate: bool = True) -> TrainResult:
        """Train on ``train``, keeping the weights that score best on ``val``.

        ``score(outputs)`` is the validation metric of the (N_val, ...) outputs;
        ``tie_break(outputs)``, when given, a lower-is-better value that decides between
        evaluations of equal metric (:data:`polymodal.train.loop.TIE_BREAK`). Under
        ``torchrun`` only rank 0 evaluates: the other ranks pass ``val=None``. With
        ``validate=False`` (a cross-validation fold, trained for a fixed number of steps)
        nothing is evaluated and the final weights (EMA when on) are kept.
        """
        val_loader = (None if val is None else
                      make_loader(val, batch_size=EVAL_BATCH_SIZE, shuffle=False, seed=0))

        def evaluate(model: torch.nn.Module) -> dict[str, float]:
            if val_loader is None:
                raise RuntimeError("only rank 0 evaluates the network")
            outputs = np.concatenate([network_outputs(model, b) for b in val_loader])
            metrics = {metric_name: float(score(outputs))}
            if tie_break is not None:
                metrics[TIE_BREAK] = float(tie_break(outputs))
            return metrics

        trainer = Trainer(config, out_dir=out_dir)
        loss_fn = functools.partial(_loss, label_smoothing=self.label_smoothing)
        self.result_ = trainer.fit(self.model_, train, collate_fn=collate, loss_fn=loss_fn,
                                   eval_fn=evaluate if validate else None,
                                   metric_name=metric_name,
                                   metric_mode=metric_mode, resume=resume, callbacks=callbacks)
        self.model_.eval()
        return self.result_

    def predict_outputs(self, batch: Batch) -> np.ndarray:
        self.model_.eval()
        outputs = network_outputs(self.model_, batch)
        if self.tta_hflip and batch.image:
            outputs = 0.5 * (outputs + self.mirror_outputs(batch))
        return outputs

    def mirror_outputs(self, batch: Batch) -> np.ndarray:
        """The network's outputs for the batch with every image mirrored left-right."""
        self.model_.eval()
        return network_outputs(self.model_, mirrored(batch))

    # --- persistence ------------------------------------------------------------------

    def save(self, directory: str | os.PathLike) -> Path:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().to("cpu").contiguous() for k, v in self.model_.state_dict().items()}
        with atomic_path(directory / WEIGHTS_FILE) as tmp:
            save_file(state, str(tmp))
        write_json(directory / META_FILE, {"spec": self.model_.spec, "network": self.model_.config(),
                                           "seed": self.seed,
                                           "label_smoothing": self.label_smoothing,
                                           "tta_hflip": self.tta_hflip})
        return directory

    @classmethod
    def load(cls, directory: str | os.PathLike) -> NeuralCandidate:
        directory = Path(directory)
        meta_path, weights_path = directory / META_FILE, directory / WEIGHTS_FILE
        for path in (meta_path, weights_path):
            if not path.is_file():
                raise ModelFolderError(f"{path} is missing; the model folder is incomplete — "
                                       "save the predictor again")
        try:
            meta = read_json(meta_path)
            candidate = cls(meta["spec"], meta["network"], seed=meta.get("seed", 0),
                            label_smoothing=meta.get("label_smoothing", 0.0),
                            tta_hflip=meta.get("tta_hflip", False))
            candidate.model_.load_state_dict(load_file(str(weights_path)))
        except (OSError, ValueError, KeyError, TypeError, RuntimeError, SafetensorError) as exc:
            raise ModelFolderError(f"{directory} holds an unreadable or mismatched network "
                                   f"({exc}); save the predictor again") from None
        candidate.model_.eval()
        return candidate


def default_halflife_images(num_train_rows: int, batch_size: int) -> float:
    """EMA half-life: a quarter of an epoch, within [one batch, 5,000 images]."""
    return float(min(5000.0, max(batch_size, 0.25 * num_train_rows)))


def default_warmup_steps(num_train_rows: int, batch_size: int, max_epochs: int) -> int:
    """Linear warm-up over ~5% of the planned steps, at most 100."""
    planned = max_epochs * math.ceil(num_train_rows / batch_size)
    return int(max(1, min(100, planned // 20)))
