"""The shared training loop: determinism, exact resume, budget, early stopping, NaN, EMA,
checkpoints and config errors — on tiny MLPs over synthetic tensors."""

from __future__ import annotations

import json
import math
import os
import random
import time

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from polymodal.data.batch import Batch
from polymodal.errors import ConfigError, DiskFullError
from polymodal.train import (
    CHECKPOINT_NAME,
    Callback,
    Checkpoint,
    ModelEMA,
    TrainConfig,
    Trainer,
    build_optimizer,
    ema_decay,
    load_checkpoint,
    lr_at,
    save_checkpoint,
)
from polymodal.train.progress import progress_enabled

# --- fixtures -----------------------------------------------------------------------------

N_ROWS, N_FEATURES = 64, 4


def make_data(seed: int = 0) -> TensorDataset:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(N_ROWS, N_FEATURES, generator=g)
    y = x @ torch.tensor([1.0, -2.0, 0.5, 3.0]) + 0.1 * torch.randn(N_ROWS, generator=g)
    return TensorDataset(x, y)


def make_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    # Dropout makes the global torch RNG part of the trajectory, so RNG restore is tested.
    return nn.Sequential(nn.Linear(N_FEATURES, 16), nn.ReLU(), nn.Dropout(0.1), nn.Linear(16, 1))


def mse_loss(model: nn.Module, batch) -> tuple[torch.Tensor, dict[str, float]]:
    x, y = batch
    loss = ((model(x).squeeze(-1) - y) ** 2).mean()
    return loss, {"mse": loss.item()}


def make_eval(data: TensorDataset):
    x, y = data.tensors

    def eval_fn(model: nn.Module) -> dict[str, float]:
        return {"loss": float(((model(x).squeeze(-1) - y) ** 2).mean())}

    return eval_fn


def config(**overrides) -> TrainConfig:
    base = dict(batch_size=16, lr=1e-2, warmup_steps=3, max_epochs=3, progress=False,
                log_every_steps=2, checkpoint_every_s=None, device="cpu")
    return TrainConfig(**{**base, **overrides})


def params_of(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def assert_bitwise_equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), f"{name} differs"


class RaiseAtStep(Callback):
    """Simulates a crash (pre-emption, kill) after a given step."""

    def __init__(self, step: int):
        self.step = step

    def on_step_end(self, state, model):
        if state.step == self.step:
            raise KeyboardInterrupt(f"simulated interruption at step {state.step}")


class RecordWeights(Callback):
    """Keeps a copy of the weights after each step and at each evaluation."""

    def __init__(self):
        self.after_step: dict[int, dict[str, torch.Tensor]] = {}
        self.at_eval: dict[int, dict[str, torch.Tensor]] = {}

    def on_step_end(self, state, model):
        self.after_step[state.step] = params_of(model)

    def on_eval(self, state, model):
        self.at_eval[state.step] = params_of(model)


# --- reproducibility ----------------------------------------------------------------------


def test_same_seed_gives_bitwise_identical_weights():
    runs = []
    for seed in (0, 0, 1):
        model = make_model(seed=0)
        Trainer(config(seed=seed)).fit(model, make_data(), loss_fn=mse_loss)
        runs.append(params_of(model))
    assert_bitwise_equal(runs[0], runs[1])
    # A different training seed (data order, dropout) must change the result.
    assert not torch.equal(runs[0]["0.weight"], runs[2]["0.weight"])


def test_interrupted_then_resumed_run_is_bitwise_identical(tmp_path):
    data = make_data()
    # 64 rows / 16 = 4 steps per epoch; 4 epochs = 16 steps. EMA on, evals every 5 steps.
    cfg = config(max_epochs=4, ema_halflife_images=200, eval_every_steps=5,
                 checkpoint_every_s=0, restore_best_weights=False)

    straight = make_model()
    Trainer(cfg, out_dir=tmp_path / "straight").fit(
        straight, data, loss_fn=mse_loss, eval_fn=make_eval(data))

    interrupted = make_model()
    with pytest.raises(KeyboardInterrupt):
        # Crash after step 7 (mid-epoch 1): its last checkpoint is from step 6.
        Trainer(cfg, out_dir=tmp_path / "resumed").fit(
            interrupted, data, loss_fn=mse_loss, eval_fn=make_eval(data),
            callbacks=[RaiseAtStep(7)])
    assert load_checkpoint(tmp_path / "resumed" / CHECKPOINT_NAME).trainer["state"]["step"] == 6

    resumed = make_model(seed=123)  # fresh process: different initial weights, RNG
    result = Trainer(cfg, out_dir=tmp_path / "resumed").fit(
        resumed, data, loss_fn=mse_loss, eval_fn=make_eval(data), resume=True)

    assert result.resumed_from_step == 6
    assert result.steps == 16 and result.stop_reason == "max_epochs"
    assert_bitwise_equal(params_of(straight), params_of(resumed))  # EMA weights
    a = load_checkpoint(tmp_path / "straight" / CHECKPOINT_NAME)
    b = load_checkpoint(tmp_path / "resumed" / CHECKPOINT_NAME)
    assert_bitwise_equal(a.model, b.model)  # live weights
    assert_bitwise_equal(a.ema, b.ema)
    assert a.trainer["state"]["best_metric"] == b.trainer["state"]["best_metric"]


def test_evaluation_and_callbacks_do_not_change_the_trajectory():
    class DrawRandom:  # any object with the hook's name works as a callback
        def on_step_end(self, state, model):
            torch.rand(3), np.random.rand(), random.random()

    def noisy_eval(model):
        return {"loss": float(torch.rand(()))}  # e.g. a generator sampling noise

    plain, observed = make_model(), make_model()
    Trainer(config()).fit(plain, make_data(), loss_fn=mse_loss)
    Trainer(config(eval_every_steps=1, restore_best_weights=False)).fit(
        observed, make_data(), loss_fn=mse_loss, eval_fn=noisy_eval, callbacks=[DrawRandom()])
    assert_bitwise_equal(params_of(plain), params_of(observed))


def test_resume_refuses_a_different_batch_size(tmp_path):
    Trainer(config(max_epochs=1), out_dir=tmp_path).fit(make_model(), make_data(),
                                                         loss_fn=mse_loss)
    with pytest.raises(ConfigError, match="batch_size=16.*batch_size=8"):
        Trainer(config(max_epochs=2, batch_size=8), out_dir=tmp_path).fit(
            make_model(), make_data(), loss_fn=mse_loss, resume=True)


# --- stopping -----------------------------------------------------------------------------


def test_time_limit_is_honoured_and_best_weights_are_kept():
    data = make_data()
    evals = []

    def slow_loss(model, batch):
        time.sleep(0.01)  # ~10 ms steps: the 3 s budget means ~300 steps, 60+ on a loaded machine
        return mse_loss(model, batch)

    def eval_fn(model):
        evals.append(len(evals))
        # Best (lowest) at the 3rd evaluation, worse ever after.
        return {"score": abs(len(evals) - 3) + 0.5}

    # The first optimiser in a process imports torch._dynamo (~2 s): not the loop's doing.
    build_optimizer(make_model(), lr=1e-3, weight_decay=0.0, betas=(0.9, 0.999))
    recorder = RecordWeights()
    model = make_model()
    limit_s = 3.0
    start = time.perf_counter()
    result = Trainer(config(max_epochs=None, time_limit_s=limit_s, eval_every_steps=10)).fit(
        model, data, loss_fn=slow_loss, eval_fn=eval_fn, metric_name="score",
        callbacks=[recorder])
    took_s = time.perf_counter() - start

    assert result.stop_reason == "time_limit"
    assert took_s < limit_s + 0.5, f"took {took_s:.2f}s for a {limit_s}s budget"
    assert result.wall_s > 0.7 * limit_s  # and did not give up early
    assert result.best_step == 30 and result.best_metric == 0.5
    assert_bitwise_equal(params_of(model), recorder.at_eval[30])
    # The LR plan was estimated from the measured pace and decayed over it.
    lrs = [h["lr"] for h in result.history if h["event"] == "train"]
    assert lrs[-1] < 0.6 * max(lrs)


def test_a_tie_break_value_decides_between_evaluations_of_equal_metric():
    """Accuracy saturates on a small validation set: among evaluations of the same metric
    the one with the lower tie-break loss is kept, and it resets the patience."""
    from polymodal.train.loop import TIE_BREAK

    data = make_data()
    evals = []

    def eval_fn(model):
        evals.append(len(evals))
        # The metric is 1.0 from the 2nd evaluation on; the loss is lowest at the 5th.
        return {"accuracy": 1.0 if len(evals) >= 2 else 0.5,
                TIE_BREAK: abs(len(evals) - 5) + 0.1}

    recorder = RecordWeights()
    model = make_model()
    result = Trainer(config(max_epochs=None, max_steps=80, eval_every_steps=10,
                            early_stopping_patience=3)).fit(
        model, data, loss_fn=mse_loss, eval_fn=eval_fn, metric_name="accuracy",
        metric_mode="max", callbacks=[recorder])
    assert result.best_step == 50 and result.best_metric == 1.0
    assert result.stop_reason == "early_stopping" and len(evals) == 8  # 3 after the 5th
    assert_bitwise_equal(params_of(model), recorder.at_eval[50])


def test_time_limit_counts_the_earlier_parts_of_a_resumed_run(tmp_path):
    def slow_loss(model, batch):
        time.sleep(0.01)
        return mse_loss(model, batch)

    cfg = config(max_epochs=None, time_limit_s=0.5)
    first = Trainer(cfg, out_dir=tmp_path).fit(make_model(), make_data(), loss_fn=slow_loss)
    assert first.stop_reason == "time_limit" and first.steps > 5
    # The budget is spent: a resumed run stops after one more step.
    again = Trainer(cfg, out_dir=tmp_path).fit(make_model(), make_data(), loss_fn=slow_loss,
                                               resume=True)
    assert again.stop_reason == "time_limit"
    assert again.resumed_from_step == first.steps and again.steps == first.steps + 1


def test_early_stopping_after_patience_evaluations_without_improvement():
    data = make_data()
    scores = iter([1.0, 2.0, 3.0, 0.1, 0.1])  # best first, then worse

    recorder = RecordWeights()
    model = make_model()
    result = Trainer(config(max_epochs=20, eval_every_steps=2, early_stopping_patience=2)).fit(
        model, data, loss_fn=mse_loss, eval_fn=lambda m: {"loss": next(scores)},
        callbacks=[recorder])

    assert result.stop_reason == "early_stopping"
    assert result.steps == 6 and result.best_step == 2 and result.best_metric == 1.0
    assert [h["metrics"]["loss"] for h in result.history if h["event"] == "eval"] == [1, 2, 3]
    assert_bitwise_equal(params_of(model), recorder.at_eval[2])


def test_metric_mode_max_keeps_the_highest():
    scores = iter([0.2, 0.9, 0.5])
    result = Trainer(config(max_epochs=3)).fit(
        make_model(), make_data(), loss_fn=mse_loss, eval_fn=lambda m: {"acc": next(scores)},
        metric_name="acc", metric_mode="max")
    assert result.best_metric == 0.9 and result.best_step == 8


@pytest.mark.parametrize("kind", ["loss", "gradient"])
def test_nan_stops_training_and_keeps_the_last_good_weights(tmp_path, kind):
    calls = {"n": 0}

    def flaky_loss(model, batch):
        calls["n"] += 1
        loss, logs = mse_loss(model, batch)
        if calls["n"] == 6:  # the 6th step, i.e. step index 5
            if kind == "loss":
                return loss * float("nan"), logs
            # A finite loss (0) whose gradient is NaN: d sqrt(u)/du at u=0 is inf, times 0.
            return torch.sqrt(0.0 * loss), logs
        return loss, logs

    recorder = RecordWeights()
    model = make_model()
    result = Trainer(config(max_epochs=5, checkpoint_every_s=0), out_dir=tmp_path).fit(
        model, make_data(), loss_fn=flaky_loss, callbacks=[recorder])

    assert result.stop_reason == "nan_loss" and result.nan_step == 5 and result.steps == 5
    assert_bitwise_equal(params_of(model), recorder.after_step[5])
    saved = load_checkpoint(tmp_path / CHECKPOINT_NAME)
    assert saved.trainer["state"]["step"] == 5
    assert_bitwise_equal(saved.model, recorder.after_step[5])
    end = json.loads((tmp_path / "train_log.jsonl").read_text().splitlines()[-1])
    assert end["stop_reason"] == "nan_loss" and end["nan_step"] == 5


def test_iterable_datasets_train_epoch_by_epoch():
    class Stream(torch.utils.data.IterableDataset):
        def __iter__(self):
            yield from zip(*make_data().tensors, strict=True)

    result = Trainer(config(max_epochs=2)).fit(make_model(), Stream(), loss_fn=mse_loss)
    assert result.stop_reason == "max_epochs"
    assert result.steps == 2 * N_ROWS // 16 and result.images_seen == 2 * N_ROWS


def test_max_steps_bound():
    result = Trainer(config(max_epochs=None, max_steps=7)).fit(
        make_model(), make_data(), loss_fn=mse_loss)
    assert result.stop_reason == "max_steps" and result.steps == 7
    assert result.images_seen == 7 * 16 and result.epochs == pytest.approx(7 / 4)


# --- EMA ----------------------------------------------------------------------------------


def test_ema_decay_follows_the_half_life_in_images():
    decay = ema_decay(10_000, batch_size=32, halflife_images=320)
    assert decay == pytest.approx(0.5 ** (32 / 320))
    # After halflife_images / batch_size steps an old value's weight has halved.
    assert decay ** (320 / 32) == pytest.approx(0.5)
    # Warm-up ramp: early steps average fast instead of clinging to the initial weights.
    assert ema_decay(0, batch_size=32, halflife_images=320) == pytest.approx(1 / 10)
    assert ema_decay(5, batch_size=32, halflife_images=320) == pytest.approx(6 / 15)


def test_ema_update_is_the_weighted_average():
    model = make_model()
    ema = ModelEMA(model, batch_size=16, halflife_images=100)
    before = params_of(ema.module)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    decay = ema.update(model, step=1000)
    assert decay == pytest.approx(0.5 ** (16 / 100))
    live = params_of(model)
    for name, avg in params_of(ema.module).items():
        torch.testing.assert_close(avg, decay * before[name] + (1 - decay) * live[name])


def test_evaluation_sees_the_ema_weights():
    data = make_data()
    seen = []
    trainer = Trainer(config(max_epochs=2, ema_halflife_images=500, restore_best_weights=False))

    def eval_fn(model):
        seen.append((model is trainer.ema.module, model.training, params_of(model)))
        return make_eval(data)(model)

    model = make_model()
    live_during_eval = RecordWeights()
    trainer.fit(model, data, loss_fn=mse_loss, eval_fn=eval_fn, callbacks=[live_during_eval])

    assert len(seen) == 2 and all(is_ema and not training for is_ema, training, _ in seen)
    last_eval_weights = seen[-1][2]
    live_weights = live_during_eval.after_step[8]
    assert not torch.equal(last_eval_weights["0.weight"], live_weights["0.weight"])
    # The returned model holds the EMA weights.
    assert_bitwise_equal(params_of(model), last_eval_weights)


# --- checkpoints --------------------------------------------------------------------------


def _checkpoint_of(model: nn.Module) -> Checkpoint:
    opt = build_optimizer(model, lr=1e-3, weight_decay=0.01, betas=(0.9, 0.999))
    return Checkpoint(model=model.state_dict(), optimizer=opt.state_dict(),
                      trainer={"state": {"step": 1}})


def test_failed_save_leaves_the_previous_checkpoint_intact(tmp_path, monkeypatch):
    path = tmp_path / CHECKPOINT_NAME
    first = make_model(seed=1)
    save_checkpoint(path, _checkpoint_of(first))
    before = path.read_bytes()

    def disk_full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(DiskFullError, match="no space left"):  # one line, naming the file
        save_checkpoint(path, _checkpoint_of(make_model(seed=2)))
    monkeypatch.undo()

    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [CHECKPOINT_NAME]  # no temp file left
    assert_bitwise_equal(load_checkpoint(path).model, params_of(first))


def test_checkpoint_round_trips_optimizer_state(tmp_path):
    model = make_model()
    opt = build_optimizer(model, lr=1e-3, weight_decay=0.01, betas=(0.9, 0.999))
    x, y = make_data().tensors
    mse_loss(model, (x, y))[0].backward()
    opt.step()
    save_checkpoint(tmp_path / "c.safetensors", Checkpoint(
        model=model.state_dict(), optimizer=opt.state_dict(), trainer={"note": "hi"}))
    loaded = load_checkpoint(tmp_path / "c.safetensors")
    fresh = build_optimizer(make_model(), lr=1e-3, weight_decay=0.01, betas=(0.9, 0.999))
    fresh.load_state_dict(loaded.optimizer)
    for i, st in opt.state_dict()["state"].items():
        for key, value in st.items():
            assert torch.equal(fresh.state_dict()["state"][i][key], value)
    assert loaded.trainer == {"note": "hi"}


# --- config, schedule, optimiser ----------------------------------------------------------


def test_unknown_config_key_is_named_with_the_known_ones():
    with pytest.raises(ConfigError) as err:
        TrainConfig.from_dict({"lr": 1e-3, "batchsize": 8})
    message = str(err.value)
    assert "'batchsize'" in message and "did you mean 'batch_size'" in message
    assert "time_limit_s" in message  # lists the known options


def test_validate_reports_every_problem_at_once():
    with pytest.raises(ConfigError) as err:
        TrainConfig(batch_size=0, lr=-1.0, precision="fp8").validate()
    message = str(err.value)
    assert "batch_size=0" in message and "lr=-1.0" in message and "'fp8'" in message


def test_config_round_trips_through_json():
    cfg = TrainConfig(lr=3e-4, betas=(0.8, 0.95), time_limit_s=60.0)
    assert TrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg


def test_lr_warms_up_then_follows_the_cosine_to_the_floor():
    kw = dict(base_lr=1.0, warmup_steps=10, planned_steps=110, min_lr_ratio=0.1)
    assert lr_at(0, **kw) == pytest.approx(0.1)
    assert lr_at(9, **kw) == pytest.approx(1.0)
    assert lr_at(60, **kw) == pytest.approx(0.55)  # half-way down the cosine
    assert lr_at(110, **kw) == pytest.approx(0.1)
    assert lr_at(500, **kw) == pytest.approx(0.1)
    assert lr_at(500, **{**kw, "planned_steps": None}) == 1.0


def test_no_weight_decay_on_biases_norms_and_embeddings():
    model = nn.ModuleDict({"emb": nn.Embedding(5, 4), "lin": nn.Linear(4, 4),
                           "norm": nn.LayerNorm(4)})
    groups = build_optimizer(model, lr=1e-3, weight_decay=0.1, betas=(0.9, 0.999)).param_groups
    decayed = {id(p) for g in groups if g["weight_decay"] > 0 for p in g["params"]}
    assert decayed == {id(model["lin"].weight)}


# --- batches and logs ---------------------------------------------------------------------


def test_trains_on_batch_objects_and_writes_a_json_log(tmp_path):
    data = make_data()

    def collate(rows):
        x = torch.stack([r[0] for r in rows])
        y = torch.stack([r[1] for r in rows])
        return Batch(index=torch.arange(len(rows)), numeric=x, label=y)

    def loss_fn(model, batch: Batch):
        return ((model(batch.numeric).squeeze(-1) - batch.label) ** 2).mean()

    model = make_model()
    before = mse_loss(model.eval(), data.tensors)[0].item()
    result = Trainer(config(max_epochs=15), out_dir=tmp_path).fit(
        model, data, collate_fn=collate, loss_fn=loss_fn, eval_fn=make_eval(data))
    after = result.best_metric
    assert after < 0.5 * before, f"loss {before:.3f} -> {after:.3f}: did not learn"

    records = [json.loads(line) for line in (tmp_path / "train_log.jsonl").read_text().splitlines()]
    assert {r["event"] for r in records} == {"train", "eval", "end"}
    assert all(math.isfinite(r["loss"]) and r["lr"] > 0 for r in records if r["event"] == "train")
    assert json.loads((tmp_path / "train_config.json").read_text())["max_epochs"] == 15


def test_progress_bar_is_off_when_asked_or_under_ci(monkeypatch):
    assert progress_enabled(False) is False
    monkeypatch.setenv("CI", "true")
    assert progress_enabled(True) is False


def _train_on_cuda(precision: str):
    """(forward dtypes seen, the model, the result) of a short CUDA run at ``precision``."""
    data = make_data()
    dtypes = []

    def loss_fn(model, batch):
        x, y = batch
        out = model(x).squeeze(-1)
        dtypes.append(out.dtype)
        return ((out.float() - y) ** 2).mean()

    model = make_model()
    result = Trainer(config(device="cuda", precision=precision, max_epochs=15)).fit(
        model, data, loss_fn=loss_fn, eval_fn=lambda m: make_eval(
            TensorDataset(*(t.cuda() for t in data.tensors)))(m))
    return dtypes, model, result


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_bf16_autocast_trains():
    dtypes, model, result = _train_on_cuda("auto")
    assert set(dtypes) == {torch.bfloat16}
    assert next(model.parameters()).dtype == torch.float32  # weights stay fp32
    assert result.best_metric < 2.0


def test_cpu_bf16_is_fast_only_with_amx_tiles(tmp_path, monkeypatch):
    from polymodal.train import config as config_module

    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    for flags, expected in (("fpu avx512f avx512_bf16 amx_bf16 amx_tile", True),
                            ("fpu avx2 avx512f avx512_bf16", False)):
        info = tmp_path / "cpuinfo"
        info.write_text(f"processor\t: 0\nflags\t\t: {flags}\n")
        monkeypatch.setattr(config_module, "CPUINFO", str(info))
        config_module.cpu_has_fast_bf16.cache_clear()
        assert config_module.cpu_has_fast_bf16() is expected
        # ... and only for images large enough to gain from it.
        assert config_module.bf16_pays_for_images([(1, 28, 28)]) is expected
        assert config_module.bf16_pays_for_images([(3, 32, 32), (1, 8, 8)]) is False
        assert config_module.bf16_pays_for_images([]) is False
    # oneDNN capped at AVX2 (to measure a plain AVX2 CPU on an AMX one): no fast bf16.
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    config_module.cpu_has_fast_bf16.cache_clear()
    assert config_module.cpu_has_fast_bf16() is False
    monkeypatch.setattr(config_module, "CPUINFO", str(tmp_path / "missing"))
    config_module.cpu_has_fast_bf16.cache_clear()
    assert config_module.cpu_has_fast_bf16() is False
    config_module.cpu_has_fast_bf16.cache_clear()


def test_the_optimizer_is_fused_on_cpu():
    opt = build_optimizer(make_model(), lr=1e-3, weight_decay=0.01, betas=(0.9, 0.999))
    assert opt.defaults["fused"] is True


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_fp16_autocast_trains_with_loss_scaling():
    dtypes, model, result = _train_on_cuda("fp16")
    assert set(dtypes) == {torch.float16}
    assert next(model.parameters()).dtype == torch.float32  # weights stay fp32
    assert result.stop_reason != "nan_loss" and result.best_metric < 2.0


def test_compiled_training_matches_eager_and_keeps_the_weight_names():
    """TrainConfig.compile: the same steps give the same weights (up to kernel rounding),
    under the same state-dict names, so EMA, checkpoints and saved models are unchanged."""
    from torch.utils.data import TensorDataset

    gen = torch.Generator().manual_seed(0)
    x = torch.randn(96, 8, generator=gen)
    y = (x[:, 0] > 0).long()
    from torch._dynamo.utils import counters

    weights, frames = {}, {}
    for compiled in (False, True):
        before = counters["frames"]["ok"]
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2))
        config = TrainConfig(max_steps=4, batch_size=32, compile=compiled, progress=False,
                             checkpoint_every_s=None, seed=0)
        Trainer(config).fit(model, TensorDataset(x, y), loss_fn=lambda m, b: torch.nn.functional
                            .cross_entropy(m(b[0]), b[1]))
        weights[compiled] = model.state_dict()
        frames[compiled] = counters["frames"]["ok"] - before
    assert frames[False] == 0 and frames[True] > 0  # it did compile, and only when asked
    assert list(weights[True]) == list(weights[False])
    for name, value in weights[False].items():
        assert torch.allclose(weights[True][name], value, atol=1e-5), name
