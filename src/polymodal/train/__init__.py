"""polymodal.train: one explicit, time-budgeted, reproducible, resumable training loop.

>>> from polymodal.train import Trainer, TrainConfig
>>> trainer = Trainer(TrainConfig(max_epochs=5, lr=3e-3), out_dir="runs/x")
>>> result = trainer.fit(model, dataset, loss_fn=lambda m, b: m.loss(b))  # doctest: +SKIP

Generic: it knows nothing of tables or images. Modules: ``config`` (TrainConfig),
``loop`` (Trainer), ``devices`` (which device a run uses), ``state`` (TrainState, TrainResult, Callback), ``batches`` (data order,
device transfer), ``schedule`` (AdamW groups, warm-up + cosine), ``ema``, ``checkpoint``
(the file), ``resume`` (a run into a checkpoint and back), ``budget`` (time limit),
``seed`` (RNG), ``distributed`` (torchrun), ``progress``.
"""

from polymodal.train.checkpoint import CHECKPOINT_NAME, Checkpoint, load_checkpoint, save_checkpoint
from polymodal.train.config import TrainConfig
from polymodal.train.devices import DEVICES, resolve_device
from polymodal.train.ema import ModelEMA, ema_decay
from polymodal.train.loop import Trainer
from polymodal.train.schedule import build_optimizer, lr_at
from polymodal.train.seed import seed_everything
from polymodal.train.state import STOP_REASONS, Callback, TrainResult, TrainState

__all__ = [
    "CHECKPOINT_NAME",
    "DEVICES",
    "STOP_REASONS",
    "Callback",
    "Checkpoint",
    "ModelEMA",
    "TrainConfig",
    "TrainResult",
    "TrainState",
    "Trainer",
    "build_optimizer",
    "ema_decay",
    "load_checkpoint",
    "lr_at",
    "resolve_device",
    "save_checkpoint",
    "seed_everything",
]
