"""Every candidate's outputs over a dataset's rows, in one pass over its batches."""

from __future__ import annotations

import numpy as np

from polymodal.api.neural import EVAL_BATCH_SIZE, NeuralCandidate
from polymodal.data.dataset import TableDataset, make_loader
from polymodal.models.classic import ClassicModel, category_numbers, flat_features
from polymodal.train import resolve_device
from polymodal.train.devices import pins_memory


def candidate_outputs(dataset: TableDataset, models: dict, spec: dict,
                      vocab: dict, device: str | None = None) -> dict[str, np.ndarray]:
    """Each model's outputs over the dataset's rows, in one pass over its batches
    (``vocab``: the fitted transform's categories, for the flat features); the networks
    run on ``device`` (see :func:`polymodal.train.resolve_device`), or where they are."""
    classic = {n: m for n, m in models.items() if isinstance(m, ClassicModel)}
    neural = {n: m for n, m in models.items() if isinstance(m, NeuralCandidate)}
    pin = False
    if device is not None and neural:
        target = resolve_device(device)
        pin = pins_memory(target)
        for model in neural.values():
            model.model_.to(target)
    flats: list[np.ndarray] = []
    parts: dict[str, list[np.ndarray]] = {n: [] for n in neural}
    numbers = category_numbers(vocab)
    for batch in make_loader(dataset, batch_size=EVAL_BATCH_SIZE, shuffle=False, seed=0,
                             pin_memory=pin):
        if classic:
            flats.append(flat_features(batch, spec, numbers))
        for name, model in neural.items():
            parts[name].append(model.predict_outputs(batch))
    outputs = {name: np.concatenate(p) for name, p in parts.items()}
    if classic:
        x = np.concatenate(flats)
        outputs.update({name: m.predict_outputs(x) for name, m in classic.items()})
    return outputs
