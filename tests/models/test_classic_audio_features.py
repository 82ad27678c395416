"""Classic candidates' audio features: every mel band's mean, spread, peak and change."""

import numpy as np
import torch

from polymodal.data.batch import Batch
from polymodal.models.classic import flat_features, flat_layout


def _spec(n_mels: int, frames: int) -> dict:
    return {"n_numeric": 0, "categorical_columns": [], "categorical_cardinalities": [],
            "multilabel_columns": {}, "multilabel_dim": 0, "text_dims": {}, "image_shapes": {},
            "audio_shapes": {"clip": [1, n_mels, frames]}}


def test_audio_features_match_layout_and_describe_each_band():
    spec = _spec(n_mels=6, frames=20)
    log_mel = torch.randn(4, 1, 6, 20, generator=torch.Generator().manual_seed(0))
    batch = Batch(index=torch.arange(4), audio={"clip": log_mel}, mask={"clip": torch.ones(4, dtype=torch.bool)})
    features = flat_features(batch, spec)
    layout = flat_layout(spec)
    assert features.shape == (4, len(layout.names))
    column = {name: features[:, k] for k, name in enumerate(layout.names)}
    bands = log_mel[:, 0].numpy()
    np.testing.assert_allclose(column["clip__mel2_max"], bands[:, 2].max(axis=1), rtol=1e-5)
    np.testing.assert_allclose(column["clip__mel3_delta_std"], np.diff(bands[:, 3], axis=1).std(axis=1), rtol=1e-4)
    np.testing.assert_allclose(column["clip__mel0_mean"], bands[:, 0].mean(axis=1), rtol=1e-4, atol=1e-6)
