"""Which device a run uses: names, the absent-GPU error, autocast and pinned loaders."""

from __future__ import annotations

import pytest
import torch

from polymodal.data.batch import Batch
from polymodal.data.dataset import make_loader
from polymodal.errors import ConfigError
from polymodal.train import DEVICES, TrainConfig, resolve_device
from polymodal.train.devices import autocast_dtype, device_problem, pins_memory

NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA device")


def test_cpu_and_auto_resolve_without_a_gpu():
    assert resolve_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected


@NO_CUDA
@pytest.mark.parametrize("name", ["cuda", "cuda:0"])
def test_an_absent_gpu_is_one_line_naming_the_value_and_the_fix(name):
    with pytest.raises(ConfigError) as info:
        resolve_device(name)
    message = str(info.value)
    assert "\n" not in message and repr(name) in message and "'cpu'" in message


@pytest.mark.parametrize("name", ["tpu", "", 0, None, "cuda:x"])
def test_an_unknown_device_is_a_problem(name):
    assert device_problem(name) is not None
    with pytest.raises(ConfigError):
        resolve_device(name)


def test_mps_only_when_there():
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        assert resolve_device("mps").type == "mps"
    else:
        assert device_problem("mps") is not None


def test_the_train_config_accepts_every_device_name():
    for name in DEVICES:
        TrainConfig(device=name).validate()
    with pytest.raises(ConfigError):
        TrainConfig(device="tpu").validate()


def test_the_cli_offers_the_same_devices():
    from polymodal.cli import Device

    assert tuple(d.value for d in Device) == DEVICES


def test_autocast_dtype_by_precision_and_device(monkeypatch):
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert autocast_dtype(cpu, "auto") is None and autocast_dtype(cpu, "fp32") is None
    assert autocast_dtype(cpu, "bf16") is torch.bfloat16
    with pytest.raises(ConfigError, match="fp16"):  # fp16 needs CUDA (and loss scaling)
        autocast_dtype(cpu, "fp16")
    # A CUDA GPU under "auto": bf16 where it computes in bf16, else fp16 (scaled).
    for has_bf16, expected in ((True, torch.bfloat16), (False, torch.float16)):
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda has=has_bf16: has)
        assert autocast_dtype(cuda, "auto") is expected
    assert autocast_dtype(cuda, "fp16") is torch.float16 and autocast_dtype(cuda, "fp32") is None


def test_loaders_pin_memory_only_for_cuda():
    assert pins_memory(torch.device("cuda")) and pins_memory(torch.device("cuda:1"))
    assert not pins_memory(torch.device("cpu")) and not pins_memory(torch.device("mps"))


def test_a_batch_pins_every_tensor(monkeypatch):
    """A DataLoader pins a :class:`Batch` through its ``pin_memory`` method (it leaves an
    object without one as it is): every tensor, those in the dicts too, is pinned."""
    batch = Batch(index=torch.arange(3), numeric=torch.ones(3, 2), text={"t": torch.ones(3, 4)},
                  image={"i": torch.zeros(3, 1, 2, 2)}, mask={"t": torch.ones(3, dtype=torch.bool)})
    if torch.cuda.is_available():
        pinned = batch.pin_memory()
    else:  # pinning needs an accelerator: record the calls instead
        seen = []
        monkeypatch.setattr(torch.Tensor, "pin_memory",
                            lambda self: seen.append(self.shape) or self.clone())
        pinned = batch.pin_memory()
        assert len(seen) == 5
    assert pinned.categorical is None and set(pinned.text) == {"t"}
    assert torch.equal(pinned.image["i"], batch.image["i"])
    assert make_loader(_Rows(), batch_size=2, shuffle=False, seed=0, pin_memory=True).pin_memory
    assert not make_loader(_Rows(), batch_size=2, shuffle=False, seed=0).pin_memory


class _Rows(torch.utils.data.Dataset):
    def __len__(self) -> int:
        return 4

    def __getitem__(self, i: int) -> dict:
        return {"index": torch.tensor(i)}
