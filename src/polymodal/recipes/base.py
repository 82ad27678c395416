"""What every recipe shares: JSON round trip, overrides by dotted key, one validation error.

A recipe is a dataclass whose fields are numbers, strings, booleans, tuples or nested
recipes. :func:`to_dict` / :func:`from_dict` round-trip it through JSON exactly;
:func:`override` applies ``{"network.width": 64}`` or ``{"network": {"width": 64}}``
(values as given, or as ``--set`` strings parsed by the field's type); an unknown key is
an error naming it and the keys there are.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import numbers
import types
import typing
from typing import Any

from polymodal.errors import ConfigError

# A seed is offset per repeat, rank or epoch and handed to scikit-learn, which takes
# seeds below 2**32 only: the bound leaves room for the offsets.
MAX_SEED = 2**31 - 1


def is_int(value) -> bool:
    """An integer that is not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def seed_problem(seed, name: str = "seed") -> str | None:
    """Why ``seed`` is not a usable seed (an integer in [0, MAX_SEED]), or None."""
    if is_int(seed) and 0 <= seed <= MAX_SEED:
        return None
    return f"{name}={seed!r} must be an integer from 0 to {MAX_SEED}"


# Far beyond what polymodal trains on (32-64 px on a CPU); 100,000 px asked for 480 GB.
MAX_IMAGE_SIZE = 1024


def common_param_problems(params: dict, *, columns_example: str) -> list[str]:
    """What is wrong with the constructor arguments the Predictor and the Generator share
    (``time_limit``, ``seed``, ``columns``, ``text_encoder``, ``image_size``,
    ``verbosity``, ``device``), each problem naming its argument."""
    from polymodal.data.text import TEXT_KINDS
    from polymodal.train.devices import device_problem

    problems = []
    limit = params["time_limit"]
    if limit is not None and not (isinstance(limit, numbers.Real) and not isinstance(limit, bool)
                                  and math.isfinite(limit) and limit > 0):
        problems.append(f"time_limit={limit!r} must be a number of seconds > 0, or None")
    if (problem := seed_problem(params["seed"])) is not None:
        problems.append(problem)
    columns = params["columns"]
    if columns is not None and not (
            isinstance(columns, dict)
            and all(isinstance(k, str) and isinstance(v, str) for k, v in columns.items())):
        problems.append(f"columns={columns!r} must be a dict {{column: modality}}, e.g. "
                        f"{columns_example}")
    if params["text_encoder"] not in TEXT_KINDS:
        problems.append(f"text_encoder={params['text_encoder']!r} must be one of "
                        f"{list(TEXT_KINDS)}")
    size = params["image_size"]
    if size is not None and (not is_int(size) or not 8 <= size <= MAX_IMAGE_SIZE):
        problems.append(f"image_size={size!r} must be an integer in [8, {MAX_IMAGE_SIZE}], or "
                        "None to infer it")
    if not is_int(params["verbosity"]) or params["verbosity"] < 0:
        problems.append(f"verbosity={params['verbosity']!r} must be an integer >= 0")
    if (problem := device_problem(params["device"])) is not None:
        problems.append(problem)
    return problems


def to_dict(recipe) -> dict:
    """The recipe as plain JSON-able values (tuples as lists)."""
    return json.loads(json.dumps(dataclasses.asdict(recipe)))


def from_dict(cls, data: dict, where: str = ""):
    """The recipe ``cls`` from :func:`to_dict`'s output; unknown keys are an error."""
    if not isinstance(data, dict):
        raise ConfigError(f"recipe {where or cls.__name__} must be a JSON object, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    _check_keys(set(data), names, where)
    values = {}
    for name, value in data.items():
        kind = hints[name]
        if dataclasses.is_dataclass(kind):
            values[name] = from_dict(kind, value, f"{where}{name}.")
        elif _origin(kind) is tuple and isinstance(value, list):
            values[name] = tuple(value)
        else:
            values[name] = value
    return cls(**values)


def override(recipe, changes: dict | None):
    """A copy of ``recipe`` with ``changes`` applied (dotted keys or nested dicts).

    String values for non-string fields are parsed by the field's type (as ``--set``
    gives them). Every unknown key is reported in one error.
    """
    if not changes:
        return recipe
    nested: dict = {}
    for key, value in changes.items():
        parts = str(key).split(".")
        node = nested
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"recipe key {key!r} sets both a section and a field")
        if isinstance(value, dict):
            node.setdefault(parts[-1], {}).update(value)
        else:
            node[parts[-1]] = value
    problems: list[str] = []
    result = _apply(recipe, nested, "", problems)
    if problems:
        raise ConfigError("recipe: " + "; ".join(problems))
    return result


def dotted_keys(changes: dict | None) -> dict:
    """``changes`` with nested sections flattened to dotted keys (``{"a": {"b": 1}}`` ->
    ``{"a.b": 1}``), to ask whether a field was overridden."""
    flat: dict = {}
    for key, value in (changes or {}).items():
        if isinstance(value, dict):
            flat.update({f"{key}.{k}": v for k, v in dotted_keys(value).items()})
        else:
            flat[str(key)] = value
    return flat


def _apply(recipe, changes: dict, where: str, problems: list[str]):
    hints = typing.get_type_hints(type(recipe))
    names = {f.name for f in dataclasses.fields(recipe)}
    unknown = sorted(set(changes) - names)
    for key in unknown:
        problems.append(_unknown_message(where + key, key, names))
    values = {}
    for name, value in changes.items():
        if name not in names:
            continue
        kind = hints[name]
        current = getattr(recipe, name)
        if dataclasses.is_dataclass(kind):
            if not isinstance(value, dict):
                problems.append(f"{where}{name} is a section; set its fields, e.g. "
                                f"{where}{name}.{dataclasses.fields(kind)[0].name}=...")
                continue
            values[name] = _apply(current, value, f"{where}{name}.", problems)
        elif _origin(kind) is dict:
            # A mapping field takes its keys one by one: the others keep their values.
            try:
                given = json.loads(value) if isinstance(value, str) else value
                if not isinstance(given, dict):
                    raise ValueError(value)
                value_type = typing.get_args(kind)[1]
                values[name] = {**current, **{str(k): _parse(v, value_type) if isinstance(v, str)
                                              else v for k, v in given.items()}}
            except (ValueError, TypeError):
                problems.append(f"{where}{name}={value!r} must map names to "
                                f"{_type_name(typing.get_args(kind)[1])} values, e.g. "
                                f"{where}{name}.KEY=VALUE")
        else:
            try:
                values[name] = _parse(value, kind) if isinstance(value, str) else value
                if _origin(kind) is tuple and isinstance(values[name], list):
                    values[name] = tuple(values[name])
            except (ValueError, TypeError):
                problems.append(f"{where}{name}={value!r} must be of type {_type_name(kind)}")
    return dataclasses.replace(recipe, **values)


def _parse(text: str, kind) -> Any:
    """A ``--set`` string as a value of the field's type."""
    union = _origin(kind) in (typing.Union, types.UnionType)
    options = [a for a in typing.get_args(kind) if a is not type(None)] if union else [kind]
    if union and type(None) in typing.get_args(kind) and text.strip().lower() in ("none", "null"):
        return None
    for option in options:
        if option is str:
            return text
        if option is bool:
            lowered = text.strip().lower()
            if lowered in ("true", "1", "yes"):
                return True
            if lowered in ("false", "0", "no"):
                return False
            continue
        if option in (int, float):
            try:
                return option(text)
            except ValueError:
                continue
        if _origin(option) in (tuple, list, dict):
            try:
                value = json.loads(text)
            except json.JSONDecodeError:
                value = _comma_items(text, option)  # random_forest,extra_trees
                if value is None:
                    continue
            if not isinstance(value, dict if _origin(option) is dict else list):
                continue
            return tuple(value) if _origin(option) is tuple else value
    raise ValueError(text)


def _comma_items(text: str, kind) -> list | None:
    """``a,b,c`` as a list for a tuple or list field, each item parsed by its element
    type; None when ``kind`` is a mapping or an item does not parse."""
    if _origin(kind) is dict:
        return None
    args = [a for a in typing.get_args(kind) if a is not Ellipsis] or [str]
    items = [item.strip() for item in text.split(",")] if text.strip() else []
    try:
        return [_parse(item, args[min(i, len(args) - 1)]) for i, item in enumerate(items)]
    except ValueError:
        return None


def _origin(kind):
    return typing.get_origin(kind)


def _type_name(kind) -> str:
    return getattr(kind, "__name__", str(kind).replace("typing.", ""))


def _check_keys(keys: set, names: set, where: str) -> None:
    unknown = sorted(keys - names)
    if unknown:
        raise ConfigError("recipe: " + "; ".join(_unknown_message(where + k, k, names)
                                                  for k in unknown))


def _unknown_message(path: str, key: str, names: set) -> str:
    close = difflib.get_close_matches(key, sorted(names), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"unknown key {path!r}{hint}; the keys there are {sorted(names)}"
