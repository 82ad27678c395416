"""A fitted Generator's model folder: written atomically, read back to sample identically.

The folder holds ``config.json`` (the parameters, the resolved recipe, the network's
shape, the conditions and the training summary), ``schema.json``, the fitted transform,
the weights, ``versions.json``, the training log, the sample grids and ``MODEL_CARD.md``
(:mod:`polymodal.api.model_card`; written for people, never read back). Folders saved
before recipes existed are read with the recipe they were trained with.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import replace
from pathlib import Path

from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from polymodal.api.model_card import CARD_FILE, generator_card
from polymodal.api.model_folder import check_folder, is_model_folder, write_folder_atomically
from polymodal.api.params import saved_params
from polymodal.data.schema import Schema
from polymodal.data.transforms import TableTransform
from polymodal.errors import ConfigError, ModelFolderError
from polymodal.files import atomic_path, read_json, write_json, write_text
from polymodal.models.generator_net import load_network, network_config
from polymodal.recipes.base import from_dict, to_dict
from polymodal.recipes.generator import (
    AUTO_CONDITION_FROM,
    FALLBACK_CONDITION_FROM,
    LEGACY_GUIDANCE_INTERVAL,
    GeneratorRecipe,
    legacy_recipe,
)
from polymodal.train.devices import resolve_device

# 2: config.json holds the resolved recipe (1, without it, still loads).
FORMAT_VERSION = 2
READS = (1, 2)
WEIGHTS_FILE = "weights.safetensors"
# The early snapshot autoguidance guides with (absent when none was kept).
GUIDE_FILE = "guide.safetensors"
REQUIRED_FILES = ("config.json", "schema.json", "transform/transform.json", WEIGHTS_FILE,
                  "versions.json")


def training_folder(target: str | os.PathLike) -> Path:
    """A new hidden sibling of ``target`` for a fit's checkpoints, log and sample grids:
    the model folder at ``target`` stays untouched until the fitted generator is saved
    there whole. Folders that killed fits left beside ``target`` are removed first."""
    target = Path(target).absolute()
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        for stale in target.parent.glob(f".{target.name}.train-*"):
            pid = stale.name.rsplit(".train-", 1)[1].split("-", 1)[0]
            if pid.isdigit() and not _alive(int(pid)):
                shutil.rmtree(stale, ignore_errors=True)
        return Path(tempfile.mkdtemp(prefix=f".{target.name}.train-{os.getpid()}-",
                                     dir=target.parent))
    except OSError as exc:  # else the message names the hidden folder, not --out
        raise ModelFolderError(f"output folder {target} cannot be made in {target.parent} "
                               f"({exc.strerror}); choose a folder you can write in") from None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # another user's process
    return True


def generator_config(generator) -> dict:
    """A fitted ``generator``'s ``config.json`` (see ``Generator.config_dict``)."""
    return {
        "format_version": FORMAT_VERSION, "kind": "generator", "params": saved_params(generator),
        "recipe": to_dict(generator.recipe_), "image_column": generator.image,
        "condition_columns": list(generator.conditions_),
        "image_shape": list(generator.image_shape_),
        "network": network_config(generator.network_), "conditions": generator.conditions_,
        "grid": generator._grid, "training": generator.train_result_,
        "data": getattr(generator, "data_fingerprint_", None),
    }


def write_generator(generator, directory: str | os.PathLike) -> Path:
    """Write a fitted ``generator`` to ``directory`` (see ``Generator.save``)."""
    from polymodal import versions

    target = Path(directory).absolute()
    train_dir = None if generator.out_dir_ is None else Path(generator.out_dir_)
    aside = None
    if (train_dir is not None and target == train_dir and target.is_dir()
            and not is_model_folder(target)):
        # The training folder becomes the model folder: move it aside to copy from it.
        aside = Path(tempfile.mkdtemp(prefix=f".{target.name}.train-", dir=target.parent))
        aside.rmdir()
        os.rename(target, aside)
        train_dir = aside
    state = _cpu_state(generator.network_)
    guide = getattr(generator, "guide_network_", None)
    guide_state = None if guide is None else _cpu_state(guide)

    def write(folder: Path) -> None:
        write_json(folder / "config.json", generator.config_dict())
        write_json(folder / "schema.json", generator.schema_.to_dict())
        generator.transform_.save(folder / "transform")
        with atomic_path(folder / WEIGHTS_FILE) as tmp:
            save_file(state, str(tmp))
        if guide_state is not None:
            with atomic_path(folder / GUIDE_FILE) as tmp:
                save_file(guide_state, str(tmp))
        write_json(folder / "versions.json", versions())
        write_text(folder / CARD_FILE, generator_card(generator, versions()))
        write_text(folder / "train_log.jsonl", "".join(
            json.dumps(r, default=str) + "\n" for r in generator.training_history_))
        samples = None if train_dir is None else train_dir / "samples"
        if samples is not None and samples.is_dir():
            shutil.copytree(samples, folder / "samples")
        else:
            generator._write_grid(generator.network_, folder, generator.train_result_["steps"])
        if train_dir is not None:
            for name in ("checkpoint.safetensors", "train_config.json"):
                if (train_dir / name).is_file():
                    shutil.copy2(train_dir / name, folder / name)

    try:
        path = write_folder_atomically(target, write, format_version=FORMAT_VERSION)
    except BaseException:
        if aside is not None and not target.exists():
            os.rename(aside, target)
        raise
    if aside is not None or (train_dir is not None and train_dir.parent == target.parent
                             and train_dir.name.startswith(f".{target.name}.train-")):
        shutil.rmtree(train_dir, ignore_errors=True)  # a fit into this model folder trained beside it
        generator.out_dir_ = str(path)
    return path


def _cpu_state(network) -> dict:
    return {k: v.detach().to("cpu").contiguous() for k, v in network.state_dict().items()}


def read_generator(cls, directory: str | os.PathLike, device: str = "auto"):
    """The generator of class ``cls`` saved in ``directory``, sampling on ``device`` (see
    ``Generator.load``); the weights load on the CPU and move there to sample."""
    resolve_device(device)  # an absent GPU is one line before any reading
    path = check_folder(directory, format_version=READS, required=REQUIRED_FILES,
                        kind="generator")
    try:
        config = read_json(path / "config.json")
        generator = cls(**{**config["params"], "device": device})
        if "guide" not in config["params"]:
            generator.guide = "unconditional"  # saved before autoguidance existed
        if "spatial_condition" not in config["params"]:
            generator.spatial_condition = False  # saved before the option existed
        if "guidance_interval" not in config["params"]:
            # Saved before it was a parameter: sample as they were sampled then.
            generator.guidance_interval = tuple(
                config.get("sampler", {}).get("guidance_interval", LEGACY_GUIDANCE_INTERVAL))
        recipe = (from_dict(GeneratorRecipe, config["recipe"])
                  if "recipe" in config else legacy_recipe(config))
        if recipe.sampling.condition_from == AUTO_CONDITION_FROM:
            # Saved before condition-annealed sampling: conditioned throughout, as then.
            recipe = replace(recipe, sampling=replace(recipe.sampling,
                                                      condition_from=FALLBACK_CONDITION_FROM))
        generator.recipe_ = recipe
        transform = TableTransform.load(path / "transform")
        network = load_network(config["network"], image_column=config["image_column"],
                               condition_dropout=generator.recipe_.condition.dropout)
        network.load_state_dict(load_file(str(path / WEIGHTS_FILE)))
        guide = None
        if (path / GUIDE_FILE).is_file():
            guide = load_network(config["network"], image_column=config["image_column"],
                                 condition_dropout=generator.recipe_.condition.dropout)
            guide.load_state_dict(load_file(str(path / GUIDE_FILE)))
            guide.eval().requires_grad_(False)
        generator.schema_ = Schema.from_dict(read_json(path / "schema.json"))
        generator.image_shape_ = tuple(config["image_shape"])
        generator.conditions_ = config["conditions"]
        generator._grid = config["grid"]
        generator.train_result_ = config["training"]
        generator.data_fingerprint_ = config.get("data")  # None in folders saved before cards
    except ModelFolderError:
        raise
    except (OSError, ValueError, KeyError, TypeError, RuntimeError, SafetensorError,
            ConfigError) as exc:
        raise ModelFolderError(f"{path} holds an unreadable or mismatched generator ({exc}); "
                               "save the generator again") from None
    network.eval()
    generator.transform_ = transform
    generator.network_ = network
    generator.guide_network_ = guide
    generator.unet_, generator.condition_encoder_ = network.unet, network.condition
    generator.out_dir_ = None
    log = path / "train_log.jsonl"
    try:
        generator.training_history_ = read_json(log, lines=True) if log.is_file() else []
    except (OSError, ValueError) as exc:
        raise ModelFolderError(f"{log} is unreadable ({exc}); save the generator again") from None
    generator._warned_null = set()
    return generator
