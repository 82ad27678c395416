"""Which device a run uses: names, the absent-GPU error, and autocast."""

from __future__ import annotations

import pytest
import torch

from polymodal.errors import ConfigError
from polymodal.train import DEVICES, TrainConfig, resolve_device
from polymodal.train.devices import autocast_bf16, device_problem

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


def test_bf16_autocast_only_when_asked_or_on_a_gpu_with_bf16():
    cpu = torch.device("cpu")
    assert autocast_bf16(cpu, "auto") is False
    assert autocast_bf16(cpu, "fp32") is False
    assert autocast_bf16(cpu, "bf16") is True
    if torch.cuda.is_available():
        assert autocast_bf16(torch.device("cuda"), "auto") is torch.cuda.is_bf16_supported()
