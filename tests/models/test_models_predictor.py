"""Tests for the predictor's networks: encoders, fusion, heads and FusionPredictor.

Specs and Batches are written by hand, as ``TableTransform.feature_spec()`` and
``collate`` would produce them, so these tests depend on nothing but ``data/batch.py``.
"""

from __future__ import annotations

import json

import pytest
import torch

from polymodal.data.batch import Batch
from polymodal.errors import ConfigError, DataError
from polymodal.models.encoders import (
    AudioEncoder,
    ImageEncoder,
    TabularEncoder,
    TextEncoder,
    categorical_embedding_dim,
)
from polymodal.models.fusion import AttentionFusion, ConcatFusion, SingleFusion, modality_dropout
from polymodal.models.heads import TaskHead, head_output_dim, predict_from_outputs, task_loss
from polymodal.models.predictor_net import FusionPredictor

pytestmark = pytest.mark.usefixtures("one_thread")

PROBLEMS = {"binary": 1, "multiclass": 4, "regression": 1, "multilabel": 3}
FUSIONS = ("concat", "attention")
WIDTH = 32  # small enough that every test here runs in well under a second on 2 cores


def make_spec(problem_type: str = "multiclass", modalities=("tabular", "text", "image", "audio")) -> dict:
    """A tiny feature spec with the chosen modality groups."""
    spec = {"problem_type": problem_type, "n_outputs": PROBLEMS[problem_type]}
    if "tabular" in modalities:
        spec.update(n_numeric=3, categorical_cardinalities=[4, 7], multilabel_dim=2)
    if "text" in modalities:
        spec["text_dims"] = {"title": 12}
    if "image" in modalities:
        spec["image_shapes"] = {"photo": [3, 8, 8]}
    if "audio" in modalities:
        spec["audio_shapes"] = {"clip": [1, 8, 16]}
    return spec


def make_batch(spec: dict, rows: int = 8, seed: int = 0) -> Batch:
    """Random inputs of the spec's shapes, every cell present, labels of the problem type."""
    g = torch.Generator().manual_seed(seed)
    batch = Batch(index=torch.arange(rows))
    if spec.get("n_numeric"):
        batch.numeric = torch.randn(rows, spec["n_numeric"], generator=g)
    cards = spec.get("categorical_cardinalities", [])
    if cards:
        batch.categorical = torch.stack(
            [torch.randint(0, c, (rows,), generator=g) for c in cards], dim=1)
    if spec.get("multilabel_dim"):
        batch.multilabel = torch.randint(0, 2, (rows, spec["multilabel_dim"]), generator=g).float()
    for col, dim in spec.get("text_dims", {}).items():
        batch.text[col] = torch.randn(rows, dim, generator=g)
    for col, shape in spec.get("image_shapes", {}).items():
        batch.image[col] = torch.rand(rows, *shape, generator=g) * 2 - 1
    for col, shape in spec.get("audio_shapes", {}).items():
        batch.audio[col] = torch.randn(rows, *shape, generator=g)
    for col in [*spec.get("text_dims", {}), *spec.get("image_shapes", {}), *spec.get("audio_shapes", {})]:
        batch.mask[col] = torch.ones(rows, dtype=torch.bool)
    k = spec["n_outputs"]
    batch.label = {
        "binary": lambda: torch.randint(0, 2, (rows,), generator=g),
        "multiclass": lambda: torch.randint(0, k, (rows,), generator=g),
        "regression": lambda: torch.randn(rows, generator=g),
        "multilabel": lambda: torch.randint(0, 2, (rows, k), generator=g).float(),
    }[spec["problem_type"]]()
    return batch


def make_model(spec: dict, fusion: str = "concat", **kwargs) -> FusionPredictor:
    torch.manual_seed(0)
    kwargs = {"width": WIDTH, "modality_dropout": 0.0, "dropout": 0.0, **kwargs}
    return FusionPredictor(spec, fusion=fusion, **kwargs)


# --- FusionPredictor end to end --------------------------------------------------------


@pytest.mark.parametrize("fusion", FUSIONS)
@pytest.mark.parametrize("problem_type", list(PROBLEMS))
def test_forward_loss_backward_every_problem_type(problem_type, fusion):
    spec = make_spec(problem_type)
    model = make_model(spec, fusion)
    batch = make_batch(spec)
    outputs = model(batch)
    expected = (8,) if problem_type in ("binary", "regression") else (8, PROBLEMS[problem_type])
    assert outputs.shape == expected
    loss = task_loss(problem_type, outputs, batch.label)
    assert loss.dim() == 0 and torch.isfinite(loss)
    loss.backward()
    # Every encoder receives gradient: each modality really feeds the output.
    for key, encoder in model.encoders.items():
        grad = sum(p.grad.abs().sum() for p in encoder.parameters() if p.grad is not None)
        assert grad > 0, f"encoder {key} got no gradient"
    assert model.encode(batch).shape == (8, WIDTH)


@pytest.mark.parametrize("modality, name", [("tabular", "tabular"), ("text", "title"),
                                            ("image", "photo"), ("audio", "clip")])
def test_each_modality_alone(modality, name):
    spec = make_spec("multiclass", modalities=(modality,))
    model = make_model(spec)
    batch = make_batch(spec)
    assert model.modalities() == [name]
    outputs = model(batch)
    assert outputs.shape == (8, 4)
    task_loss("multiclass", outputs, batch.label).backward()
    assert all(p.grad is not None for p in model.parameters())


@pytest.mark.parametrize("modality, name", [("tabular", "tabular"), ("text", "title"),
                                            ("image", "photo"), ("audio", "clip")])
def test_single_fusion_passes_one_modality_through(modality, name):
    spec = make_spec("multiclass", modalities=(modality,))
    model = make_model(spec, "single")
    assert isinstance(model.fusion, SingleFusion) and model.modalities() == [name]
    batch = make_batch(spec)
    outputs = model(batch)
    assert outputs.shape == (8, 4)
    task_loss("multiclass", outputs, batch.label).backward()
    assert all(p.grad is not None for p in model.parameters())
    # The fused embedding is silu(the encoder's token).
    model.eval()
    tokens, _ = model._tokens(batch, None)
    assert torch.equal(model.encode(batch), torch.nn.functional.silu(tokens[name]))


def test_single_fusion_zeroes_absent_cells_and_needs_one_modality():
    spec = make_spec("binary", modalities=("image",))
    model = make_model(spec, "single").eval()
    batch = make_batch(spec)
    absent = torch.tensor([True, False, True, False, False, False, False, True])
    batch.mask["photo"] = ~absent
    batch.image["photo"][absent] = float("nan")  # must not leak
    fused = model.encode(batch)
    assert torch.equal(fused[absent], torch.zeros(int(absent.sum()), WIDTH))
    assert fused[~absent].abs().sum() > 0 and torch.isfinite(model(batch)).all()
    with pytest.raises(ConfigError, match=r"fusion='single' needs a spec with exactly one "
                                          r"modality; this one has 4: \['tabular', 'title'"):
        make_model(make_spec(), "single")
    with pytest.raises(ConfigError, match="exactly one modality"):
        SingleFusion(["a", "b"], 8)


@pytest.mark.parametrize("fusion", FUSIONS)
def test_absent_inputs_do_not_change_outputs(fusion):
    spec = make_spec("multiclass")
    model = make_model(spec, fusion).eval()
    batch = make_batch(spec)
    absent = torch.tensor([True, False, True, False, False, True, False, False])
    batch.mask["photo"] = ~absent
    batch.mask["clip"] = ~absent
    before = model(batch)

    batch.image["photo"][absent] = torch.randn(int(absent.sum()), 3, 8, 8) * 5
    batch.audio["clip"][absent] = float("nan")  # even NaN placeholders must not leak
    after = model(batch)
    assert torch.equal(before, after)

    # The same perturbation on present rows does change their outputs.
    batch.image["photo"][~absent] = -batch.image["photo"][~absent]
    changed = model(batch)
    assert not torch.allclose(changed[~absent], before[~absent])
    assert torch.equal(changed[absent], before[absent])


@pytest.mark.parametrize("fusion", FUSIONS)
@pytest.mark.parametrize("problem_type", list(PROBLEMS))
def test_one_batch_overfit(problem_type, fusion):
    spec = make_spec(problem_type)
    model = make_model(spec, fusion)
    batch = make_batch(spec, rows=8, seed=1)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(100):
        optimizer.zero_grad()
        loss = task_loss(problem_type, model(batch), batch.label)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    # Measured: every (problem, fusion) ends below 0.002x its first loss.
    assert losses[-1] < 0.01 * losses[0], f"{problem_type}: loss {losses[0]:.3f} -> {losses[-1]:.4f}"


@pytest.mark.parametrize("fusion", FUSIONS)
def test_config_round_trip_gives_identical_outputs(fusion):
    spec = make_spec("multilabel")
    model = make_model(spec, fusion, modality_dropout=0.2, dropout=0.1).eval()
    saved_spec, saved_config = json.dumps(model.spec), json.dumps(model.config())
    assert json.loads(saved_config) == {"fusion": fusion, "width": WIDTH,
                                        "modality_dropout": 0.2, "dropout": 0.1}

    torch.manual_seed(123)  # a different init, so equality must come from the weights
    loaded = FusionPredictor.from_config(json.loads(saved_spec), json.loads(saved_config))
    batch = make_batch(spec)
    assert not torch.equal(loaded.eval()(batch), model(batch))
    loaded.load_state_dict(model.state_dict())
    assert torch.equal(loaded(batch), model(batch))


def test_from_config_rejects_unknown_key():
    with pytest.raises(ConfigError, match="fusoin"):
        FusionPredictor.from_config(make_spec(), {"fusoin": "concat"})
    with pytest.raises(ConfigError, match="out_dmi"):
        TextEncoder.from_config({"in_dim": 4, "out_dmi": 8})


@pytest.mark.parametrize("module, inputs", [
    (ImageEncoder(3, [8, 12], width=8, out_dim=16), (torch.randn(2, 3, 8, 12),)),
    (TextEncoder(12, out_dim=16, hidden=8), (torch.randn(2, 12),)),
    (AudioEncoder(8, 16, out_dim=16, width=8), (torch.randn(2, 1, 8, 16),)),
    (AudioEncoder(8, 16, out_dim=16, width=8, norm="band"), (torch.randn(2, 1, 8, 16),)),
    (TabularEncoder(2, [3, 5], 2, out_dim=16),
     (torch.randn(2, 2), torch.tensor([[0, 4], [2, 1]]), torch.ones(2, 2))),
    (AttentionFusion(["a", "b"], 8, out_dim=4, num_layers=2, num_heads=2),
     ({"a": torch.randn(2, 8), "b": torch.randn(2, 8)}, {"a": torch.ones(2, dtype=torch.bool),
                                                         "b": torch.tensor([True, False])})),
    (ConcatFusion(["a", "b"], 8, out_dim=4, hidden=8),
     ({"a": torch.randn(2, 8), "b": torch.randn(2, 8)}, {"a": torch.ones(2, dtype=torch.bool),
                                                         "b": torch.tensor([True, False])})),
    (SingleFusion(["a"], 8, modality_dropout=0.1),
     ({"a": torch.randn(2, 8)}, {"a": torch.tensor([True, False])})),
    (TaskHead(8, "multiclass", 5), (torch.randn(2, 8),)),
])
def test_every_module_config_round_trips_through_json(module, inputs):
    module.eval()
    rebuilt = type(module).from_config(json.loads(json.dumps(module.config()))).eval()
    rebuilt.load_state_dict(module.state_dict())
    assert rebuilt.config() == module.config()
    assert torch.equal(rebuilt(*inputs), module(*inputs))


def test_band_normalised_audio_encoder_ignores_a_constant_per_band_and_the_clip_length():
    """Per-band normalisation over the clip: a fixed gain per mel band (a microphone's or a
    speaker's spectral tilt) does not change the output; pooling over time lets one
    encoder take clips of any length."""
    torch.manual_seed(0)
    encoder = AudioEncoder(16, 40, out_dim=8, width=8, norm="band").eval()
    x = torch.randn(3, 1, 16, 40)
    tilt = torch.linspace(-2.0, 3.0, 16)[None, None, :, None]  # (1, 1, M, 1)
    torch.testing.assert_close(encoder(x + tilt), encoder(x), atol=1e-4, rtol=1e-4)
    assert encoder(torch.randn(3, 1, 16, 73)).shape == (3, 8)
    with pytest.raises(ConfigError, match="norm='batch'"):
        AudioEncoder(16, 40, norm="batch")


def test_a_network_saved_before_audio_norm_loads_as_it_was():
    spec = make_spec()
    old = FusionPredictor(spec, width=WIDTH)
    assert "audio_norm" not in old.config()  # what models saved before the option hold
    assert FusionPredictor(spec, **old.config()).encoders.keys() == old.encoders.keys()
    assert FusionPredictor(spec, width=WIDTH, audio_norm="band").config()["audio_norm"] == "band"


def test_fixed_seed_gives_identical_init():
    spec = make_spec("binary")
    states = []
    for seed in (7, 7, 8):
        torch.manual_seed(seed)
        states.append(FusionPredictor(spec, fusion="attention", width=WIDTH).state_dict())
    assert states[0].keys() == states[1].keys()
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])
    assert not all(torch.equal(states[0][k], states[2][k]) for k in states[0])


# --- modality dropout ---------------------------------------------------------------------


def test_modality_dropout_never_drops_all_present_modalities():
    g = torch.Generator().manual_seed(0)
    rows = 2000
    present = {name: torch.rand(rows, generator=g) < 0.6 for name in ("a", "b", "c")}
    before = torch.stack(list(present.values()), dim=1)
    after = torch.stack(list(modality_dropout(present, 0.9, generator=g).values()), dim=1)
    assert not (after & ~before).any(), "dropout revealed an absent modality"
    assert torch.equal(after.any(dim=1), before.any(dim=1)), "a row lost all its modalities"
    assert (after.sum() < 0.6 * before.sum()), "p=0.9 should hide most present modalities"
    # p = 0 is the identity.
    unchanged = modality_dropout(present, 0.0)
    assert all(torch.equal(unchanged[n], present[n]) for n in present)


@pytest.mark.parametrize("fusion", FUSIONS)
def test_modality_dropout_only_in_train_mode(fusion):
    spec = make_spec("multiclass")
    model = make_model(spec, fusion, modality_dropout=0.5, dropout=0.0)
    batch = make_batch(spec, rows=16)
    model.eval()
    assert torch.equal(model(batch), model(batch))
    model.train()
    torch.manual_seed(1)
    first = model(batch)
    assert not torch.equal(first, model(batch))
    # With modality dropout off, train mode is deterministic (no BatchNorm, no dropout).
    plain = make_model(spec, fusion, modality_dropout=0.0, dropout=0.0).train()
    assert torch.equal(plain(batch), plain(batch))


@pytest.mark.parametrize("fusion", FUSIONS)
def test_modality_dropout_keeps_a_rows_only_modality(fusion):
    # Rows with one present modality must look the same in train and eval mode, however
    # high p is: dropout may never take a row's last modality.
    spec = make_spec("multiclass", modalities=("image", "audio"))
    model = make_model(spec, fusion, modality_dropout=0.95, dropout=0.0)
    batch = make_batch(spec, rows=16)
    batch.mask["clip"] = torch.zeros(16, dtype=torch.bool)
    torch.manual_seed(0)
    train_out = model.train()(batch)
    assert torch.equal(train_out, model.eval()(batch))


@pytest.mark.parametrize("fusion", FUSIONS)
def test_every_parameter_is_in_the_graph_under_modality_dropout(fusion):
    # DistributedDataParallel (without find_unused_parameters) needs every parameter to
    # take part in every step, even when a modality was dropped for all rows.
    spec = make_spec("binary")
    model = make_model(spec, fusion, modality_dropout=0.9).train()
    batch = make_batch(spec, rows=2)
    batch.mask["photo"][:] = False
    task_loss("binary", model(batch), batch.label).backward()
    unused = [n for n, p in model.named_parameters() if p.grad is None]
    assert unused == []


# --- drop ablation ----------------------------------------------------------------------------


@pytest.mark.parametrize("fusion", FUSIONS)
def test_drop_ablation_changes_outputs_like_a_missing_column(fusion):
    spec = make_spec("regression")
    model = make_model(spec, fusion).eval()
    batch = make_batch(spec)
    assert model.modalities() == ["tabular", "title", "photo", "clip"]
    full = model(batch)
    for name in model.modalities():
        assert not torch.allclose(model(batch, drop={name}), full), name
    dropped = model(batch, drop={"photo"})
    assert torch.equal(model(batch, drop={"image"}), dropped)
    batch.mask["photo"] = torch.zeros(8, dtype=torch.bool)
    assert torch.equal(model(batch), dropped)
    with pytest.raises(ConfigError, match="'phtoo'"):
        model(batch, drop={"phtoo"})


@pytest.mark.parametrize("fusion_cls", [ConcatFusion, AttentionFusion])
def test_fusion_tells_absent_from_a_zero_embedding(fusion_cls):
    # Absent is not "embedding all zeros": the presence bits (concat) and the key padding
    # mask (attention) must make a difference the zeroed token alone would not.
    torch.manual_seed(0)
    fusion = fusion_cls(["a", "b"], 8, out_dim=4).eval()
    tokens = {"a": torch.randn(2, 8), "b": torch.zeros(2, 8)}
    both = {"a": torch.ones(2, dtype=torch.bool), "b": torch.ones(2, dtype=torch.bool)}
    only_a = {"a": torch.ones(2, dtype=torch.bool), "b": torch.zeros(2, dtype=torch.bool)}
    assert not torch.allclose(fusion(tokens, both), fusion(tokens, only_a))


def test_attention_fusion_row_with_everything_absent():
    torch.manual_seed(0)
    fusion = AttentionFusion(["a", "b"], 8, out_dim=4, num_heads=2).eval()
    tokens = {"a": torch.randn(3, 8), "b": torch.randn(3, 8)}
    present = {"a": torch.tensor([True, False, False]), "b": torch.tensor([True, False, False])}
    out = fusion(tokens, present)
    assert torch.isfinite(out).all()
    assert torch.equal(out[1], out[2])  # nothing to see: the learned constant
    assert not torch.equal(out[0], out[1])


# --- encoders ------------------------------------------------------------------------------


@pytest.mark.parametrize("size, num_strides", [(8, 1), (28, 2), (32, 2), (64, 3), ([32, 48], 2)])
def test_image_encoder_depth_follows_image_size(size, num_strides):
    torch.manual_seed(0)
    encoder = ImageEncoder(1, size, width=8, out_dim=16).eval()
    strides = [m for m in encoder.modules()
               if isinstance(m, torch.nn.Conv2d) and m.stride == (2, 2) and m.kernel_size == (3, 3)]
    assert len(strides) == num_strides
    height, width = (size, size) if isinstance(size, int) else size
    images = torch.rand(2, 1, height, width) * 2 - 1
    out = encoder(images)
    assert out.shape == (2, 16)
    channels_last = encoder(images.to(memory_format=torch.channels_last))
    assert torch.allclose(out, channels_last, atol=1e-5)


def test_tabular_encoder_embedding_sizes_and_bad_index():
    assert [categorical_embedding_dim(c) for c in (2, 10, 1000)] == [2, 6, 16]
    encoder = TabularEncoder(0, [3], 0, out_dim=4)
    assert encoder(None, torch.tensor([[0], [2]]), None).shape == (2, 4)
    with pytest.raises(DataError, match="index 3"):
        encoder(None, torch.tensor([[3]]), None)
    with pytest.raises(ConfigError, match="cardinality 1"):
        TabularEncoder(0, [1], 0)


# --- heads -----------------------------------------------------------------------------------


def test_predictions_and_losses_by_problem_type():
    logits = torch.tensor([[2.0, -1.0, 0.5], [0.0, 0.0, 0.0]])
    probs = predict_from_outputs("multiclass", logits)
    assert torch.allclose(probs.sum(dim=1), torch.ones(2))
    assert predict_from_outputs("binary", torch.tensor([0.0, 100.0])).tolist() == [0.5, 1.0]
    assert torch.equal(predict_from_outputs("regression", logits[0]), logits[0])
    assert ((0 < predict_from_outputs("multilabel", logits)) & (predict_from_outputs("multilabel", logits) < 1)).all()
    assert head_output_dim("binary", 2) == 1 and head_output_dim("multiclass", 5) == 5
    # A perfect binary logit has near-zero loss; the wrong one does not.
    assert task_loss("binary", torch.tensor([20.0, -20.0]), torch.tensor([1, 0])) < 1e-6
    assert task_loss("binary", torch.tensor([-20.0, 20.0]), torch.tensor([1, 0])) > 10


def test_user_mistakes_raise_clear_errors():
    with pytest.raises(DataError, match=r"\[0, 3\)"):
        task_loss("multiclass", torch.zeros(2, 3), torch.tensor([0, 3]))
    with pytest.raises(DataError, match="expected \\(2,\\)"):
        task_loss("regression", torch.zeros(2), torch.zeros(2, 1))
    with pytest.raises(ConfigError, match="'ordinal'"):
        head_output_dim("ordinal", 3)
    with pytest.raises(ConfigError, match="'late'"):
        FusionPredictor(make_spec(), fusion="late")
    with pytest.raises(ConfigError, match="no features"):
        FusionPredictor({"problem_type": "binary", "n_outputs": 1})

    spec = make_spec("binary")
    model = make_model(spec)
    batch = make_batch(spec)
    batch.image["photo"] = torch.zeros(8, 3, 16, 16)
    with pytest.raises(DataError, match="'photo'.*\\(8, 3, 8, 8\\)"):
        model(batch)
    del batch.image["photo"]
    with pytest.raises(DataError, match="no image tensor for column 'photo'"):
        model(batch)


def test_encoder_only_network_for_conditioning():
    spec = {k: v for k, v in make_spec().items() if k not in ("problem_type", "n_outputs")}
    model = make_model(spec)
    batch = make_batch({**spec, "problem_type": "binary", "n_outputs": 1})
    assert model.head is None
    assert model.encode(batch).shape == (8, WIDTH)
    with pytest.raises(ConfigError, match="encode"):
        model(batch)


@pytest.mark.parametrize("problem_type, outputs, labels, known", [
    ("binary", torch.tensor([3.0, -2.0, 0.5]), torch.tensor([1, -1, 0]), [0, 2]),
    ("multiclass", torch.randn(3, 4), torch.tensor([-1, 3, 0]), [1, 2]),
    ("regression", torch.tensor([0.5, 1.0, -1.0]), torch.tensor([float("nan"), 2.0, 0.0]), [1, 2]),
])
def test_missing_labels_add_no_loss(problem_type, outputs, labels, known):
    # The loss over a batch with missing labels equals the loss over its labelled rows.
    expected = task_loss(problem_type, outputs[known], labels[known])
    assert torch.allclose(task_loss(problem_type, outputs, labels), expected)
    # No known label at all: zero loss, and backward still runs.
    outputs = outputs.clone().requires_grad_()
    missing = torch.full_like(labels, float("nan") if labels.is_floating_point() else -1)
    loss = task_loss(problem_type, outputs, missing)
    loss.backward()
    assert loss.item() == 0.0 and torch.equal(outputs.grad, torch.zeros_like(outputs))


def test_multilabel_loss_skips_nan_entries():
    outputs = torch.tensor([[2.0, -1.0], [0.0, 1.0]])
    labels = torch.tensor([[1.0, float("nan")], [0.0, 1.0]])
    expected = torch.nn.functional.binary_cross_entropy_with_logits(
        torch.tensor([2.0, 0.0, 1.0]), torch.tensor([1.0, 0.0, 1.0]))
    assert torch.allclose(task_loss("multilabel", outputs, labels), expected)


def test_label_smoothing_matches_torch_and_smooths_binary_targets():
    logits = torch.tensor([[2.0, -1.0, 0.5], [0.1, 0.2, 3.0]])
    labels = torch.tensor([0, 2])
    expected = torch.nn.functional.cross_entropy(logits, labels, label_smoothing=0.1)
    assert torch.allclose(task_loss("multiclass", logits, labels, label_smoothing=0.1), expected)
    assert task_loss("multiclass", logits, labels, label_smoothing=0.1) > task_loss(
        "multiclass", logits, labels)  # confident right answers cost more when smoothed
    # Binary: targets 1 -> 0.95 and 0 -> 0.05, so even a perfect logit keeps some loss.
    smoothed = task_loss("binary", torch.tensor([20.0, -20.0]), torch.tensor([1, 0]),
                         label_smoothing=0.1)
    assert smoothed > 0.5
    with pytest.raises(ValueError, match="label_smoothing"):
        task_loss("multiclass", logits, labels, label_smoothing=1.0)
