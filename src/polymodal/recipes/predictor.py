"""The Predictor's recipe: which candidates train, the fusion network and how it trains.

:func:`resolve_predictor` is a pure function of the schema, the number of training rows
and the user's choices: the preset's settings, then what the table asks for (an image
table trains its network with the image settings; a large one in larger batches; a
single image column needs no fusion), then the user's overrides, validated once. The
result is saved in the model's ``config.json`` and loads back equal; what a model was
trained with is read there, never re-derived. Where a default comes from a measurement,
bench/RESULTS.md has it.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field, replace

from polymodal.data.audio_augment import AUDIO_AUGMENT_DEFAULTS, audio_augment_problems
from polymodal.data.image_encoding import AUGMENT_DEFAULTS
from polymodal.data.schema import OPTIONAL_MODALITIES, PROBLEM_TYPES, Schema
from polymodal.errors import ConfigError
from polymodal.models.classic import CLASSIC_KINDS, supports
from polymodal.recipes.base import common_param_problems, override

PRESETS = ("fast", "best")
FUSIONS = ("concat", "attention", "single")
FUSION_CHOICES = ("auto", "concat", "attention")  # what a user may ask for
AUDIO_NORMS = ("band", "clip")
# Predictor(image_augment=...) names -> TableTransform(augment=...); "auto" is "hflip" when
# a check on the training images finds mirroring keeps labels (api.mirror_check).
IMAGE_AUGMENT_CHOICES = {"none": None, "auto": None,
                         "hflip": {"hflip": True, "shift_px": 0, "rotate_deg": 0.0}}
# Predictor(audio_augment=...) names -> TableTransform(audio_augment=...); "auto" is
# "speech" when the table has audio columns (see resolve_audio_augment).
AUDIO_AUGMENT_CHOICES = {"none": None, "speech": {}}
# Predictor(unlabelled=...): what the rows with an empty label are for.
UNLABELLED_CHOICES = ("auto", "ignore", "self_training")
UNLABELLED_METHODS = ("none", "self_training")
# Large media tables: this many training rows or more (see resolve_predictor).
LARGE_MEDIA_ROWS = 20_000
# Large tables: this many training rows or more train histogram boosting first (see
# resolve_predictor).
LARGE_TABLE_ROWS = 100_000


@dataclass(frozen=True)
class NetworkRecipe:
    """The fusion network: one encoder per modality, fused, then the head."""

    fusion: str = "concat"
    """'concat' (an MLP over the concatenated modality tokens), 'attention' (a transformer
    layer across them) or 'single' (one modality's token through a SiLU: a table of one
    image column and nothing else has nothing to fuse)."""

    width: int = 64
    """Width of every modality token and of the fusion layers (the image encoder is a
    quarter of it)."""

    modality_dropout: float = 0.1
    """Probability of dropping a whole modality of a training row, so the network learns
    to predict from what is left."""

    dropout: float = 0.1
    """Dropout inside the fusion layers and the head."""

    audio_norm: str = "band"
    """How the audio encoder normalises a clip: 'band' (each mel band over the clip's
    frames, which removes a speaker's or microphone's spectral tilt; the frequency axis kept
    through the pooling) or 'clip' (one scale for the whole clip)."""


@dataclass(frozen=True)
class NetworkTrainingRecipe:
    """How the fusion network trains (the rest of the loop's settings are derived)."""

    batch_size: int = 64
    """Rows per optimiser step (at most the number of training rows)."""

    lr: float = 3e-3
    """Peak AdamW learning rate, after warm-up, decayed by a cosine."""

    weight_decay: float = 0.01
    """AdamW decoupled weight decay."""

    min_lr_ratio: float = 0.1
    """Floor of the cosine decay as a fraction of ``lr``."""

    max_epochs: int = 30
    """Passes over the training rows at most; the time limit or early stopping may end
    training sooner."""

    early_stopping_patience: int = 5
    """Evaluations without improvement before training stops."""

    ema: bool = True
    """Evaluate and keep an exponential moving average of the weights (short runs on
    images are better without: it lags)."""

    label_smoothing: float = 0.0
    """Label smoothing of the classification loss (0 for regression and multilabel)."""

    compile: bool = False
    """``torch.compile`` the fusion network before training (see ``TrainConfig.compile``)."""


@dataclass(frozen=True)
class CandidatesRecipe:
    """Which models compete and how the time is shared."""

    classic: tuple[str, ...] = CLASSIC_KINDS
    """scikit-learn candidates over flat features, in the order they train."""

    shares: dict[str, float] = field(default_factory=lambda: {
        "random_forest": 0.08, "extra_trees": 0.08, "linear": 0.05,
        "hist_gradient_boosting": 0.15, "lightgbm": 0.15, "catboost": 0.3})
    """Share of the training budget each classic candidate may use (the network gets the
    rest)."""

    neural: bool = True
    """Train the fusion network."""

    ensemble_rounds: int = 25
    """Rounds of greedy ensemble selection (Caruana et al. 2004) over the validation
    outputs (1 keeps the best single model)."""

    cv_folds: int | str = "auto"
    """Folds of the cross-validation that judges the candidates (the network on tables
    without images or audio) and the ensemble on small tables
    (:mod:`polymodal.api.cross_validation`): ``"auto"`` (5 on tables of
    at most 5,000 labelled rows, 3 when the time left pays for no repeat of 5, none
    above), an integer >= 2, or 0 for the hold-out split alone."""

    cv_repeats: int | str = "auto"
    """Seeded repeats of the k-fold partition: ``"auto"`` (as many as 0.8 of the seconds
    left pay for at the candidates' measured pace, at most 5; 1 without a time limit) or
    an integer >= 1, capped by the time limit."""


@dataclass(frozen=True)
class UnlabelledRecipe:
    """What the training rows whose label is empty train (classification only): the
    network's self-training (:mod:`polymodal.api.self_training`). Validation scores every
    round on labelled rows only and keeps the best network, so a round that does not help
    is not used."""

    method: str = "none"
    """'self_training' (the network, trained on the labelled rows, labels the unlabelled
    rows it is confident of; a student continues from it on both) or 'none' (they are
    left out)."""

    threshold: float = 0.7
    """Smallest predicted probability of an unlabelled row's class for it to be
    pseudo-labelled."""

    rounds: int = 1
    """Pseudo-labelling rounds after the teacher; each labels with the best network so
    far."""

    teacher_share: float = 1.0
    """Share of the network's time the teacher may train in; the rounds share what it
    leaves. At 1.0 the teacher trains as the network would without unlabelled rows, and
    the rounds use the time early stopping leaves (all they need without a time limit),
    so self-training never takes time from the labelled-only network (bench/RESULTS.md,
    'augment_scarcity': a 0.4 share cost more than the rounds gave back)."""

    max_pseudo_ratio: float = 20.0
    """At most this many pseudo-labelled rows per labelled training row."""

    propagate: bool = True
    """Pseudo-label with the mean of the network's class probabilities and those label
    propagation gives over the network's embeddings of labelled and unlabelled rows (a
    row's neighbours vote); False: the network's probabilities alone."""


@dataclass(frozen=True)
class PredictorRecipe:
    """Everything the Predictor trains with, resolved for one table."""

    network: NetworkRecipe = field(default_factory=NetworkRecipe)
    """The fusion network."""

    training: NetworkTrainingRecipe = field(default_factory=NetworkTrainingRecipe)
    """How the fusion network trains."""

    candidates: CandidatesRecipe = field(default_factory=CandidatesRecipe)
    """Which models compete, and their shares of the budget."""

    unlabelled: UnlabelledRecipe = field(default_factory=UnlabelledRecipe)
    """What the rows without a label train."""

    def validate(self) -> None:
        """Raise one :class:`ConfigError` naming every field that is out of range."""
        n, t, c = self.network, self.training, self.candidates
        if not isinstance(c.classic, tuple | list) or not isinstance(c.shares, dict):
            raise ConfigError(f"recipe: candidates.classic={c.classic!r} must be a list of "
                              f"classic kinds and candidates.shares={c.shares!r} a mapping "
                              "of them to numbers")
        problems = []
        if n.fusion not in FUSIONS:
            problems.append(f"network.fusion={n.fusion!r} must be one of {list(FUSIONS)}")
        if n.audio_norm not in AUDIO_NORMS:
            problems.append(f"network.audio_norm={n.audio_norm!r} must be one of "
                            f"{list(AUDIO_NORMS)}")
        if not _int_at_least(n.width, 4):
            problems.append(f"network.width={n.width!r} must be an integer >= 4")
        for name, value in (("network.modality_dropout", n.modality_dropout),
                            ("network.dropout", n.dropout),
                            ("training.label_smoothing", t.label_smoothing)):
            if not _number_in(value, 0.0, 1.0, high_open=True):
                problems.append(f"{name}={value!r} must be a number in [0, 1)")
        if not _int_at_least(t.batch_size, 1):
            problems.append(f"training.batch_size={t.batch_size!r} must be an integer >= 1")
        if not (_number_in(t.lr, 0.0, math.inf) and t.lr > 0):
            problems.append(f"training.lr={t.lr!r} must be a number > 0, e.g. 3e-3")
        if not _number_in(t.weight_decay, 0.0, math.inf):
            problems.append(f"training.weight_decay={t.weight_decay!r} must be a number >= 0")
        if not _number_in(t.min_lr_ratio, 0.0, 1.0):
            problems.append(f"training.min_lr_ratio={t.min_lr_ratio!r} must be in [0, 1]")
        if not _int_at_least(t.max_epochs, 1):
            problems.append(f"training.max_epochs={t.max_epochs!r} must be an integer >= 1")
        if not _int_at_least(t.early_stopping_patience, 1):
            problems.append(f"training.early_stopping_patience={t.early_stopping_patience!r} "
                            "must be an integer >= 1")
        for name in ("ema", "compile"):
            if not isinstance(getattr(t, name), bool):
                problems.append(f"training.{name}={getattr(t, name)!r} must be true or false")
        unknown = [k for k in c.classic if k not in CLASSIC_KINDS]
        if unknown:
            problems.append(f"candidates.classic has unknown kind(s) {unknown}; the kinds are "
                            f"{list(CLASSIC_KINDS)}")
        bad_shares = {k: v for k, v in c.shares.items()
                      if k not in CLASSIC_KINDS or not _number_in(v, 0.0, 1.0)}
        if bad_shares:
            problems.append(f"candidates.shares {bad_shares} must map classic kinds to "
                            "numbers in [0, 1]")
        if not isinstance(c.neural, bool):
            problems.append(f"candidates.neural={c.neural!r} must be true or false")
        if c.cv_folds != "auto" and not (c.cv_folds == 0 or _int_at_least(c.cv_folds, 2)):
            problems.append(f"candidates.cv_folds={c.cv_folds!r} must be 'auto', 0 (no "
                            "cross-validation) or an integer >= 2, e.g. 5")
        if c.cv_repeats != "auto" and not _int_at_least(c.cv_repeats, 1):
            problems.append(f"candidates.cv_repeats={c.cv_repeats!r} must be 'auto' or an "
                            "integer >= 1, e.g. 3")
        if not _int_at_least(c.ensemble_rounds, 1):
            problems.append(f"candidates.ensemble_rounds={c.ensemble_rounds!r} must be an "
                            "integer >= 1")
        problems += _unlabelled_problems(self.unlabelled)
        if not c.classic and not c.neural:
            problems.append("candidates.classic is empty and candidates.neural is false: "
                            "nothing would train")
        if problems:
            raise ConfigError("recipe: " + "; ".join(problems))


def _unlabelled_problems(u: UnlabelledRecipe) -> list[str]:
    problems = []
    if u.method not in UNLABELLED_METHODS:
        problems.append(f"unlabelled.method={u.method!r} must be one of {list(UNLABELLED_METHODS)}")
    if not _number_in(u.threshold, 0.0, 1.0, high_open=True):
        problems.append(f"unlabelled.threshold={u.threshold!r} must be a number in [0, 1), "
                        "e.g. 0.7")
    if not _int_at_least(u.rounds, 1):
        problems.append(f"unlabelled.rounds={u.rounds!r} must be an integer >= 1")
    if not (_number_in(u.teacher_share, 0.0, 1.0) and u.teacher_share > 0):
        problems.append(f"unlabelled.teacher_share={u.teacher_share!r} must be in (0, 1], "
                        "e.g. 0.5")
    if not (_number_in(u.max_pseudo_ratio, 0.0, math.inf) and u.max_pseudo_ratio > 0):
        problems.append(f"unlabelled.max_pseudo_ratio={u.max_pseudo_ratio!r} must be a number "
                        "> 0, e.g. 10")
    if not isinstance(u.propagate, bool):
        problems.append(f"unlabelled.propagate={u.propagate!r} must be true or false")
    return problems


def preset_recipe(preset: str) -> PredictorRecipe:
    """The settings a preset starts from: "fast" fits a 2-core CPU in a minute or two,
    "best" is larger and trains longer (early stopping still ends it)."""
    if preset == "best":
        return PredictorRecipe(
            network=NetworkRecipe(fusion="attention", width=128, modality_dropout=0.15),
            training=NetworkTrainingRecipe(lr=1e-3, weight_decay=0.02, max_epochs=100,
                                           early_stopping_patience=10),
            candidates=CandidatesRecipe(ensemble_rounds=50))
    if preset != "fast":
        raise ConfigError(f"preset={preset!r} must be one of {list(PRESETS)}")
    return PredictorRecipe()


def predictor_param_problems(p: dict) -> list[str]:
    """What is wrong with a Predictor's constructor arguments ``p`` (its ``get_params()``),
    each problem naming the argument, the value and the fix; empty when nothing is."""
    problems = common_param_problems(p, columns_example="{'zip': 'categorical'}")

    if p["label"] is not None and (not isinstance(p["label"], str) or not p["label"]):
        problems.append(f"label={p['label']!r} must be a column name (a non-empty string)")
    if p['problem_type'] not in ("auto", *PROBLEM_TYPES):
        problems.append(f"problem_type={p['problem_type']!r} must be 'auto' or one of "
                        f"{list(PROBLEM_TYPES)}")
    if p['preset'] not in PRESETS:
        problems.append(f"preset={p['preset']!r} must be one of {list(PRESETS)}")
    if p['fusion'] not in FUSION_CHOICES:
        problems.append(f"fusion={p['fusion']!r} must be one of {list(FUSION_CHOICES)}")
    if isinstance(p['image_augment'], dict):
        unknown = sorted(set(p['image_augment']) - set(AUGMENT_DEFAULTS))
        if unknown:
            problems.append(f"image_augment has unknown key(s) {unknown}; the keys are "
                            f"{sorted(AUGMENT_DEFAULTS)}")
    elif not (p['image_augment'] is None or p['image_augment'] in IMAGE_AUGMENT_CHOICES):
        problems.append(f"image_augment={p['image_augment']!r} must be None, one of "
                        f"{list(IMAGE_AUGMENT_CHOICES)} or a dict like "
                        "{'hflip': True, 'shift_px': 2}")
    audio = p['audio_augment']
    if isinstance(audio, dict):
        problems += audio_augment_problems(audio)
    elif not (audio is None or audio == "auto" or audio in AUDIO_AUGMENT_CHOICES):
        problems.append(f"audio_augment={audio!r} must be 'auto', None, one of "
                        f"{list(AUDIO_AUGMENT_CHOICES)} or a dict like "
                        "{'speed': 0.1, 'noise_prob': 0.5}")
    if p['unlabelled'] not in UNLABELLED_CHOICES:
        problems.append(f"unlabelled={p['unlabelled']!r} must be one of "
                        f"{list(UNLABELLED_CHOICES)}")
    if not (isinstance(p['validation_fraction'], numbers.Real)
            and 0 < p['validation_fraction'] <= 0.5):
        problems.append(f"validation_fraction={p['validation_fraction']!r} must be in (0, 0.5], "
                        "e.g. 0.2")
    if p['recipe'] is not None and not isinstance(p['recipe'], dict):
        problems.append(f"recipe={p['recipe']!r} must be a dict of recipe fields, e.g. "
                        "{'network.width': 96}")
    elif p['recipe']:
        try:  # unknown keys and values out of range, before any work
            override(PredictorRecipe(), p['recipe']).validate()
        except ConfigError as exc:
            problems.append(str(exc))
    return problems


def resolve_predictor(schema: Schema, num_train_rows: int, *, preset: str = "fast",
                      fusion: str = "auto", overrides: dict | None = None,
                      num_unlabelled_rows: int = 0, unlabelled: str = "auto"
                      ) -> PredictorRecipe:
    """The recipe for a table with ``schema`` and ``num_train_rows`` training rows.

    In order: the preset; the user's ``fusion`` (``"auto"`` keeps the preset's); what the
    table asks for (below); then ``overrides`` (``{"network.width": 96}``), validated once.

    - Fewer than two modality tokens: attention has nothing to attend to, so concat.
    - Images or audio: flat features (pooled pixels, edge and mel statistics) serve the
      forests and the linear model poorly and the network needs the time, so their shares
      halve; the linear model's solver cannot stop at a time limit and is left out.
    - Images: the image network's settings (bench/RESULTS.md, image_recipe_probe): a wider
      token, larger batches, a higher LR decayed to 0, stronger weight decay, no EMA, and
      label smoothing for classes.
    - Other large tables (``LARGE_TABLE_ROWS`` rows or more): histogram boosting trains
      first, with at least a quarter of what is left: its cost grows linearly with the
      rows (binned features), a forest's faster, so it gives the most model per second
      there; the others are planned from a timed probe (:mod:`polymodal.api.candidate_costs`).
    - Audio (without images): up to 100 epochs with patience 20: augmented clips keep
      teaching after the validation accuracy is saturated; no histogram boosting (over mel
      statistics it generalises worst to unseen speakers, bench/RESULTS.md audio_speakers,
      and its seconds are the network's on the side-by-side thread).
    - Large media tables (``LARGE_MEDIA_ROWS`` rows or more): boosting's share shrinks to a
      third (the network learns far more per second); image tables train in batches of
      256 at a square-root-scaled LR, and one image column alone is not fused. When every
      feature is an image, no classic model trains: the network has the whole budget.
    - Rows with an empty label (``num_unlabelled_rows``) of a classification table, with
      ``unlabelled`` "auto" or "self_training": the network self-trains on them.
    """
    recipe = preset_recipe(preset)
    network, training, candidates = recipe.network, recipe.training, recipe.candidates
    if fusion != "auto":
        if fusion not in FUSIONS[:2]:
            raise ConfigError(f"fusion={fusion!r} must be one of ['auto', 'concat', 'attention']")
        network = replace(network, fusion=fusion)
    tokens = int(any(schema.by_modality(m) for m in ("numeric", "categorical", "multilabel",
                                                      "datetime")))
    tokens += sum(len(schema.by_modality(m)) for m in OPTIONAL_MODALITIES)  # a token each
    if tokens < 2:
        network = replace(network, fusion="concat")

    images = bool(schema.by_modality("image"))
    media = images or bool(schema.by_modality("audio"))
    large = media and num_train_rows >= LARGE_MEDIA_ROWS
    problem = schema.problem_type
    classic = tuple(k for k in candidates.classic
                    if supports(k, problem)
                    and not (media and k in ("linear", "lightgbm", "catboost")))
    shares = dict(candidates.shares)
    if media:
        shares.update({k: shares[k] * 0.5 for k in ("random_forest", "extra_trees")})
    audio_only = bool(schema.by_modality("audio")) and not images
    if audio_only:
        classic = tuple(k for k in classic if k != "hist_gradient_boosting")
    if large:
        shares["hist_gradient_boosting"] /= 3
        if schema.features() == schema.by_modality("image"):
            # Pixels alone: the trees over flat pixel features score far below the network
            # and only take its threads (bench/RESULTS.md, predictor_fashion).
            classic = ()
    elif num_train_rows >= LARGE_TABLE_ROWS and "hist_gradient_boosting" in classic:
        classic = ("hist_gradient_boosting",
                   *(k for k in classic if k != "hist_gradient_boosting"))
        shares["hist_gradient_boosting"] = max(shares["hist_gradient_boosting"], 0.25)
    candidates = replace(candidates, classic=classic, shares=shares)
    if images:
        network = replace(network, width=max(network.width, 128))
        training = replace(training, batch_size=128, lr=3e-3, weight_decay=0.05,
                           min_lr_ratio=0.0, ema=False,
                           label_smoothing=0.1 if problem in ("binary", "multiclass") else 0.0)
        if large:
            training = replace(training, batch_size=256, lr=4.2e-3)
            if fusion == "auto" and schema.features() == schema.by_modality("image") \
                    and len(schema.features()) == 1:
                network = replace(network, fusion="single")
    if audio_only:
        # Augmented clips keep teaching long after a small validation set is all right
        # (bench/RESULTS.md, audio_speakers): more passes and patience; the time limit and
        # early stopping on the validation log loss still end it.
        training = replace(training, max_epochs=max(training.max_epochs, 100),
                           early_stopping_patience=max(training.early_stopping_patience, 20))
    training = replace(training, batch_size=int(max(1, min(training.batch_size,
                                                          num_train_rows))))
    semi = UnlabelledRecipe(method="self_training" if (
        unlabelled != "ignore" and num_unlabelled_rows > 0 and candidates.neural
        and problem in ("binary", "multiclass")) else "none")
    recipe = override(PredictorRecipe(network, training, candidates, semi), overrides)
    recipe.validate()
    return recipe


def resolve_audio_augment(audio_augment: str | dict | None, schema: Schema) -> dict | None:
    """The transform's audio augmentation for ``Predictor(audio_augment=...)``: ``"auto"``
    is ``"speech"`` on a table with audio columns (spoken words keep their label when a
    little faster, higher, shifted, noisier or partly masked), None otherwise; a dict is
    the defaults updated with it."""
    if audio_augment == "auto":
        audio_augment = "speech" if schema.by_modality("audio") else "none"
    chosen = audio_augment if isinstance(audio_augment, dict) \
        else AUDIO_AUGMENT_CHOICES[audio_augment or "none"]
    return None if chosen is None else {**AUDIO_AUGMENT_DEFAULTS, **chosen}


def _int_at_least(value, low: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= low


def _number_in(value, low: float, high: float, *, high_open: bool = False) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return False
    return low <= value < high if high_open else low <= value <= high
