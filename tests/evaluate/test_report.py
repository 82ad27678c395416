"""The predictor report: modality ablation, permutation importance, figures, Markdown/HTML.

Most tests run over ``StandInPredictor``, a test double of the Predictor interface
(``predict_proba``/``predict`` with ``drop=``, ``evaluate``, ``schema_``, ``classes_``,
``leaderboard``, ``cleaning_report_``, ``training_history_``) built on scikit-learn,
so that which columns the model uses is known exactly. The real data layer
(``infer_schema``, ``clean_report``) supplies the schema and cleaning report.
"""

from __future__ import annotations

import base64
import io
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from sklearn.linear_model import LogisticRegression, Ridge

from polymodal.data.cells import cell_tags
from polymodal.data.cleaning import clean_report
from polymodal.data.schema import infer_schema
from polymodal.errors import ConfigError, DataError
from polymodal.evaluate import plots
from polymodal.evaluate.explain import modality_ablation, permutation_importance
from polymodal.evaluate.metrics import compute_metrics
from polymodal.evaluate.predictor_report import write_predictor_report
from polymodal.evaluate.report import MIN_ROWS_FOR_METRICS, Document, config_table

_WORDS = ["apple", "stone", "river", "cloud", "paper", "glass", "tiger", "lemon", "piano", "chair"]


def _table(num_rows: int, problem_type: str, seed: int = 0) -> pd.DataFrame:
    """Columns: x (informative number), z (noise number), color (noise category),
    note (noise text, which the stand-in ignores), label (from x alone)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=num_rows)
    z = rng.normal(size=num_rows)
    noisy = x + 0.3 * rng.normal(size=num_rows)
    if problem_type == "binary":
        label = np.where(noisy > 0, "high", "low")
    elif problem_type == "multiclass":
        label = np.array(["small", "medium", "large"])[np.digitize(noisy, [-0.5, 0.5])]
    elif problem_type == "regression":
        label = 3.0 * x + 0.3 * rng.normal(size=num_rows)
    else:  # multilabel: "hot" follows x, "cold" its opposite, "odd" is noise
        label = [
            "|".join(t for t, on in (("hot", v > 0.3), ("cold", v < -0.3), ("odd", r > 0.5)) if on)
            or "none"
            for v, r in zip(noisy, rng.random(num_rows), strict=True)
        ]
    notes = [" ".join(rng.choice(_WORDS, size=4)) for _ in range(num_rows)]
    return pd.DataFrame(
        {
            "x": x,
            "z": z,
            "color": rng.choice(["red", "green", "blue"], size=num_rows),
            "note": notes,
            "label": label,
        }
    )


class StandInPredictor:
    """A test double of polymodal's Predictor over a scikit-learn linear model.

    Uses numeric columns (mean-imputed) and one-hot categorical columns; ignores text.
    ``drop=`` masks columns as missing: numbers become the training mean, categories
    an all-zero one-hot, the way a presence mask of False reads in the real model.
    """

    def __init__(self, problem_type: str):
        self.problem_type = problem_type

    def fit(self, df: pd.DataFrame) -> StandInPredictor:
        overrides = {"note": "text", "color": "categorical"}
        if self.problem_type == "multilabel":
            overrides["label"] = "multilabel"
        self.schema_ = infer_schema(
            df, label="label", overrides=overrides, problem_type=self.problem_type
        )
        assert self.schema_.problem_type == self.problem_type
        self.problem_type_ = self.problem_type
        self.cleaning_report_ = clean_report(df, self.schema_)
        self.numeric_ = self.schema_.by_modality("numeric")
        self.means_ = {c: float(df[c].mean()) for c in self.numeric_}
        self.vocab_ = {c: sorted(df[c].unique()) for c in self.schema_.by_modality("categorical")}
        features = self._features(df)
        if self.problem_type == "regression":
            self.classes_ = None
            self.model_ = Ridge().fit(features, df["label"].to_numpy(dtype=float))
        elif self.problem_type == "multilabel":
            self.classes_ = sorted({t for cell in df["label"] for t in cell_tags(cell, "|")})
            targets = self._multi_hot(df)
            self.model_ = [
                LogisticRegression().fit(features, targets[:, k]) for k in range(len(self.classes_))
            ]
        else:
            self.classes_ = sorted(df["label"].unique())
            self.model_ = LogisticRegression(max_iter=500).fit(features, df["label"])
        self.training_history_ = [
            {
                "step": s,
                "epoch": s // 5,
                "loss": 1.0 / (s + 1),
                "metrics": {"val_accuracy": 0.5 + s / 40},
                "elapsed_s": 0.1 * s,
            }
            for s in range(0, 20, 2)
        ]
        return self

    def _multi_hot(self, df: pd.DataFrame) -> np.ndarray:
        return np.array(
            [[t in cell_tags(c, "|") for t in self.classes_] for c in df["label"]], dtype=int
        )

    def _features(self, df: pd.DataFrame, drop=None) -> np.ndarray:
        drop = set(drop or ())
        blocks = []
        for c in self.numeric_:
            values = df[c].to_numpy(dtype=float)
            if c in drop:
                values = np.full(len(df), self.means_[c])
            blocks.append(np.where(np.isnan(values), self.means_[c], values)[:, None])
        for c, vocab in self.vocab_.items():
            onehot = (df[c].to_numpy()[:, None] == np.array(vocab)[None, :]).astype(float)
            blocks.append(onehot * (c not in drop))
        return np.hstack(blocks)  # (N, F)

    def predict_proba(self, df: pd.DataFrame, *, drop=None) -> pd.DataFrame:
        features = self._features(df, drop)
        if self.problem_type == "multilabel":
            proba = np.stack([m.predict_proba(features)[:, 1] for m in self.model_], axis=1)
        else:
            proba = self.model_.predict_proba(features)
        return pd.DataFrame(proba, columns=self.classes_, index=df.index)

    def predict(self, df: pd.DataFrame, *, drop=None):
        if self.problem_type == "regression":
            return self.model_.predict(self._features(df, drop))
        proba = self.predict_proba(df, drop=drop).to_numpy()
        return np.asarray(self.classes_)[proba.argmax(axis=1)]

    def evaluate(self, df: pd.DataFrame) -> dict:
        if self.problem_type == "regression":
            return compute_metrics(
                "regression", df["label"].to_numpy(dtype=float), self.predict(df)
            )
        proba = self.predict_proba(df).to_numpy()
        if self.problem_type == "multilabel":
            return compute_metrics(
                "multilabel", self._multi_hot(df), proba, label_names=self.classes_
            )
        y_true = np.array([self.classes_.index(v) for v in df["label"]])
        return compute_metrics(self.problem_type, y_true, proba)

    def leaderboard(self) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "model": ["linear"],
                "val_accuracy": [0.9],
                "fit_time_s": [0.01],
                "predict_time_s": [0.001],
                "chosen": [True],
            }
        )

    def get_params(self) -> dict:
        return {"label": "label", "problem_type": self.problem_type, "seed": 0}


@pytest.fixture(scope="module")
def binary():
    train, test = _table(300, "binary", seed=1), _table(200, "binary", seed=2)
    return StandInPredictor("binary").fit(train), test


def _is_png(data: bytes) -> tuple[int, int]:
    image = Image.open(io.BytesIO(data))
    image.load()
    assert image.format == "PNG"
    return image.size


# --------------------------------------------------------------------------- ablation


def test_ablation_finds_the_modality_the_model_uses_and_not_the_ignored_one(binary):
    predictor, test = binary
    ablation = modality_ablation(predictor, test)
    assert list(ablation["masked"])[0] == "none"
    assert set(ablation["masked"]) == {"none", "numeric", "categorical", "text"}
    by_modality = ablation.set_index("masked")
    full = by_modality.loc["none", "value"]
    assert full > 0.85 and by_modality.loc["none", "metric"] == "accuracy"
    # Masking the numbers leaves the model guessing; masking the text it ignores changes nothing.
    assert by_modality.loc["numeric", "value"] < 0.65
    assert by_modality.loc["numeric", "contribution"] > 0.2
    assert by_modality.loc["text", "contribution"] == 0.0
    assert by_modality.loc["text", "value"] == full
    assert ablation["masked"].iloc[1] == "numeric"  # largest contribution first
    assert by_modality.loc["numeric", "columns"] == "x, z"


def test_ablation_contribution_is_positive_for_lower_is_better_metrics():
    predictor = StandInPredictor("regression").fit(_table(200, "regression", seed=3))
    ablation = modality_ablation(predictor, _table(100, "regression", seed=4)).set_index("masked")
    assert ablation.loc["none", "metric"] == "rmse"
    # RMSE rises without the numbers: change > 0, but contribution (= helps) is also > 0.
    assert ablation.loc["numeric", "change"] > 1.0
    assert ablation.loc["numeric", "contribution"] == pytest.approx(
        ablation.loc["numeric", "change"]
    )


def test_rows_without_a_known_label_are_not_scored(binary):
    predictor, test = binary
    test = test.copy()
    test.loc[0, "label"] = None
    test.loc[1, "label"] = "a class never seen"
    ablation = modality_ablation(predictor, test)
    assert ablation.attrs["num_rows_scored"] == len(test) - 2
    with pytest.raises(DataError, match="no row"):
        modality_ablation(predictor, test.assign(label=None))


def test_ablation_needs_the_label_column(binary):
    predictor, test = binary
    with pytest.raises(DataError, match="'label'"):
        modality_ablation(predictor, test.drop(columns="label"))


# --------------------------------------------------------------------------- permutation


def test_permutation_importance_ranks_the_informative_column_first(binary):
    predictor, test = binary
    importance = permutation_importance(predictor, test, n_repeats=3, seed=0)
    assert set(importance["column"]) == {"x", "z", "color", "note"}
    assert importance["column"].iloc[0] == "x"
    by_column = importance.set_index("column")
    assert by_column.loc["x", "importance_mean"] > 0.2
    assert by_column.loc["x", "importance_mean"] > by_column.loc["z", "importance_mean"] + 0.15
    assert (
        by_column.loc["note", "importance_mean"] == 0.0
        and by_column.loc["note", "importance_std"] == 0.0
    )
    assert by_column.loc["x", "modality"] == "numeric"
    assert importance.attrs["baseline"] > 0.85


def test_permutation_importance_is_deterministic_for_a_seed(binary):
    predictor, test = binary
    first = permutation_importance(predictor, test, n_repeats=2, seed=7, max_rows=120)
    again = permutation_importance(predictor, test, n_repeats=2, seed=7, max_rows=120)
    other = permutation_importance(predictor, test, n_repeats=2, seed=8, max_rows=120)
    pd.testing.assert_frame_equal(first, again)
    assert first.attrs["num_rows_scored"] == 120
    assert not np.allclose(
        first.set_index("column")["importance_mean"].sort_index(),
        other.set_index("column")["importance_mean"].sort_index(),
    )


@pytest.mark.parametrize(
    "kwargs", [{"n_repeats": 0}, {"max_rows": -1}, {"n_repeats": 1.5}, {"seed": -2}]
)
def test_permutation_importance_rejects_bad_settings(binary, kwargs):
    predictor, test = binary
    name = next(iter(kwargs))
    with pytest.raises(ConfigError, match=name):
        permutation_importance(predictor, test, **kwargs)


# --------------------------------------------------------------------------- plots


def test_every_plot_returns_a_png(binary):
    predictor, test = binary
    rng = np.random.default_rng(0)
    y_true = rng.integers(0, 3, size=60)
    proba = rng.dirichlet([1, 1, 1], size=60)  # (N, K)
    ablation = modality_ablation(predictor, test)
    importance = permutation_importance(predictor, test, n_repeats=1)
    history = predictor.training_history_
    figures = {
        "confusion": plots.confusion_matrix_png(
            y_true, proba.argmax(axis=1), ["a", "b", "a rather long class name"]
        ),
        "calibration": plots.calibration_png(y_true, proba),
        "scatter": plots.regression_scatter_png(
            rng.normal(size=40), rng.normal(size=40), label="price"
        ),
        "per_label": plots.per_label_f1_png({"hot": 0.9, "cold": 0.7, "odd": 0.1}),
        "ablation": plots.ablation_png(ablation),
        "importance": plots.importance_png(importance),
        "accuracy_bars": plots.accuracy_bars_png(["real only", "real + synthetic"], [0.87, 0.88],
                                                 title="held-out accuracy"),
        "training": plots.training_curve_png(history, metric="accuracy"),
    }
    for name, png in figures.items():
        width, height = _is_png(png)
        assert 200 <= width <= 1200 and 150 <= height <= 1200, (name, width, height)


def test_plots_skip_what_they_cannot_draw():
    many = [f"class {k}" for k in range(plots.MAX_CONFUSION_CLASSES + 1)]
    assert plots.confusion_matrix_png(np.zeros(5, int), np.zeros(5, int), many) is None
    assert plots.training_curve_png([]) is None
    assert plots.training_curve_png([{"step": 0, "loss": None, "metrics": {}}]) is None


# --------------------------------------------------------------------------- document + report


def _check_self_contained(html: str) -> None:
    assert "http://" not in html and "https://" not in html
    assert "<script" not in html.lower()
    sources = re.findall(r'src="([^"]*)"', html)
    assert sources, "the report has no images"
    for src in sources:
        assert src.startswith("data:image/png;base64,"), src[:60]
        _is_png(base64.b64decode(src.split(",", 1)[1], validate=True))
    assert not re.search(r'href="(?!#)', html)


def _markdown_links(md: str) -> list[str]:
    return re.findall(r"\]\(([^)]+)\)", md)


@pytest.mark.parametrize("problem_type", ["binary", "multiclass", "regression", "multilabel"])
def test_report_folder_is_complete_and_self_contained(tmp_path: Path, problem_type: str):
    predictor = StandInPredictor(problem_type).fit(_table(200, problem_type, seed=5))
    test = _table(80, problem_type, seed=6)
    command = "polymodal evaluate runs/model test.csv --out report"
    result = write_predictor_report(
        predictor, test, tmp_path / "report", command=command, n_repeats=1
    )

    out = tmp_path / "report"
    assert result["report_md"] == out / "report.md" and result["report_html"] == out / "report.html"
    assert result["metrics"] == predictor.evaluate(test)
    assert set(result["importance"]["column"]) == {"x", "z", "color", "note"}
    expected = {"ablation.png", "importance.png", "training_curve.png"} | {
        "binary": {"confusion_matrix.png", "calibration.png"},
        "multiclass": {"confusion_matrix.png", "calibration.png"},
        "regression": {"predicted_vs_true.png"},
        "multilabel": {"per_label_f1.png"},
    }[problem_type]
    assert {p.name for p in out.glob("*.png")} == expected
    assert {p.name for p in result["figures"]} == expected

    md = result["report_md"].read_text()
    links = _markdown_links(md)
    assert set(links) == expected
    for link in links:
        _is_png((out / link).read_bytes())
    html = result["report_html"].read_text()
    _check_self_contained(html)
    assert html.count("<img ") == len(expected)
    # What the report must say: metrics, leaderboard, ablation, schema reasons, cleaning, command.
    for text in (
        "Metrics",
        "Leaderboard",
        "What each modality contributes",
        "Permutation importance",
        "Schema",
        "Cleaning findings",
        command,
        "| problem_type |",  # the resolved config, as a table
    ):
        assert text in md, text
    assert predictor.schema_.columns["x"].reason in md
    primary = {
        "binary": "accuracy",
        "multiclass": "accuracy",
        "regression": "rmse",
        "multilabel": "f1_macro",
    }
    assert f"| {primary[problem_type]} |" in md
    assert not list(out.glob(".*.tmp"))  # atomic writes left no temporary files


def test_document_renders_every_section_kind(tmp_path: Path):
    png = plots.per_label_f1_png({"a": 0.5})
    doc = Document("A <title> & more")
    doc.add_heading("Numbers").add_text("x < y | z").add_list(["one", "two"]).add_code(
        '{"a": 1}', language="json"
    )
    doc.add_table(
        pd.DataFrame({"name": ["a|b", "c"], "value": [0.123456, float("nan")]}),
        caption="t",
        max_rows=1,
    )
    doc.add_image(png, "A figure", filename="fig.png")
    md_path, html_path = doc.write(tmp_path)
    md = md_path.read_text()
    assert md.startswith("# A <title> & more\n")
    assert "| a\\|b | 0.1235 |" in md and "... and 1 more rows" in md and "| c |" not in md
    assert "![A figure](fig.png)" in md and (tmp_path / "fig.png").read_bytes() == png
    html = html_path.read_text()
    assert "<title>A &lt;title&gt; &amp; more</title>" in html
    assert "<p>x &lt; y | z</p>" in html and "<li>two</li>" in html
    assert "<figcaption>A figure</figcaption>" in html
    _check_self_contained(html)
    with pytest.raises(ValueError, match="fig.png"):
        doc.add_image(png, "again", filename="fig.png")
    with pytest.raises(ValueError, match="plain name"):
        doc.add_image(png, "escape", filename="../fig.png")
    with pytest.raises(ValueError, match="PNG"):
        doc.add_image(b"GIF89a", "not a png")


def _section_ids(html: str) -> list[str]:
    return re.findall(r'<details id="([^"]+)"', html)


def test_html_has_contents_and_collapsible_sections(tmp_path: Path):
    doc = Document("Sections")
    doc.add_text("Before any section.")
    doc.add_heading("1. The data").add_text("rows")
    doc.add_heading("Metrics").add_heading("Per class", level=3).add_text("numbers")
    doc.add_heading("Metrics").add_warning("only 8 rows < 100")
    doc.add_heading("Reproduce", collapsed=True).add_table(config_table({"a": {"b": 1}}))
    doc.add_image(plots.per_label_f1_png({"a": 0.5}), "A figure", filename="fig.png")
    html = doc.to_html()
    ids = _section_ids(html)
    assert ids == ["the-data", "metrics", "metrics-2", "reproduce"]
    toc = re.search(r'<nav class="toc".*?</nav>', html, re.S).group(0)
    assert re.findall(r'href="#([^"]+)"', toc) == ids  # every section, in order
    assert html.count("<details") == html.count("</details>") == 4
    assert '<details id="reproduce"><summary>' in html  # collapsed: no "open"
    assert '<details id="the-data" open><summary><h2>1. The data</h2></summary>' in html
    assert html.index("Before any section.") < html.index("<details")  # the intro stays out
    assert "<h3>Per class</h3>" in html and "<strong>Warning:</strong> only 8 rows" in html
    md = doc.to_markdown()
    assert "> **Warning:** only 8 rows < 100" in md and "<details" not in md
    _check_self_contained(html)


def test_config_table_flattens_nested_settings():
    frame = config_table({"preset": "fast", "net": {"width": 64, "drop": [0.1, 0.2]},
                          "empty": {}, "none": None})
    assert frame.to_dict("records") == [
        {"setting": "preset", "value": "fast"}, {"setting": "net.width", "value": "64"},
        {"setting": "net.drop", "value": "[0.1, 0.2]"}, {"setting": "empty", "value": "{}"},
        {"setting": "none", "value": "–"}]


@pytest.mark.parametrize("num_rows", [MIN_ROWS_FOR_METRICS - 1, MIN_ROWS_FOR_METRICS])
def test_metrics_on_few_rows_carry_a_warning_and_no_json_is_dumped(tmp_path, num_rows):
    predictor = StandInPredictor("binary").fit(_table(200, "binary", seed=5))
    result = write_predictor_report(predictor, _table(num_rows, "binary", seed=6),
                                    tmp_path / "report", n_repeats=1)
    html = result["report_html"].read_text()
    md = result["report_md"].read_text()
    warned = f"only {num_rows:,} rows" in md
    assert warned == (num_rows < MIN_ROWS_FOR_METRICS)
    assert warned == ('class="warning"' in html)
    assert "<pre>" not in html and '"problem_type":' not in html  # the config is a table
    assert "<caption>Resolved config</caption>" in html
    assert _section_ids(html)[0] == "metrics"


# --------------------------------------------------------------------------- the real Predictor


def test_report_on_the_real_predictor_end_to_end(tiny_table: Path, tmp_path: Path, monkeypatch):
    from threadpoolctl import threadpool_limits

    from polymodal.api import Predictor

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    # One OpenMP thread: on a busy 2-core machine the gradient-boosting candidate's spinning
    # threads otherwise turn a 0.5 s fit on 8 rows into 15 s.
    with threadpool_limits(limits=1):
        predictor = Predictor(
            label="label", time_limit=None, text_encoder="hashed", seed=0, verbosity=0
        ).fit(tiny_table)
        # A path, as the CLI passes it: image/audio paths resolve against the table's folder,
        # also in the shuffled copies permutation importance scores.
        result = write_predictor_report(
            predictor,
            tiny_table,
            tmp_path / "report",
            command="polymodal evaluate m t.csv",
            n_repeats=1,
        )

    features = predictor.schema_.features()
    modalities = {predictor.schema_.modality(c) for c in features}
    assert {"image", "audio", "text", "numeric", "categorical"} <= modalities
    ablation, importance = result["ablation"], result["importance"]
    assert set(ablation["masked"]) == {"none"} | modalities
    assert set(importance["column"]) == set(features)
    assert np.isfinite(ablation["value"]).all() and np.isfinite(importance["importance_mean"]).all()
    # The unmasked score computed here agrees with the predictor's own evaluate().
    assert ablation["value"].iloc[0] == pytest.approx(result["metrics"]["accuracy"])

    out = tmp_path / "report"
    pngs = {p.name for p in out.glob("*.png")}
    assert {"confusion_matrix.png", "calibration.png", "ablation.png", "importance.png"} <= pngs
    md = result["report_md"].read_text()
    assert set(_markdown_links(md)) == pngs
    assert "| params.preset |" in md and "polymodal evaluate m t.csv" in md
    _check_self_contained(result["report_html"].read_text())


def _markdown_table_rows(md: str, heading: str) -> list[dict]:
    """The first table after ``## heading`` in a Markdown report, as dicts of cell text."""
    lines = md[md.index(f"## {heading}"):].splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    header = [c.strip() for c in lines[start].strip("|").split("|")]
    rows = []
    for line in lines[start + 2:]:  # after the header and its |---| line
        if not line.startswith("|"):
            break
        rows.append(dict(zip(header, (c.strip() for c in line.strip("|").split("|")),
                             strict=True)))
    return rows


def test_the_report_credits_an_audio_column_the_model_relies_on(write_tones_table, tmp_path,
                                                               run_cli, one_thread):
    """Pitch is heard only in the clips; a numeric and a text column are noise. Through
    ``polymodal evaluate``, the ablation credits audio and not the others, and permutation
    importance ranks the clip column first."""
    from threadpoolctl import threadpool_limits

    from polymodal.api import Predictor

    table = write_tones_table(tmp_path / "data")
    df = pd.read_csv(table)
    rng = np.random.default_rng(3)
    df["loudness"] = rng.normal(size=len(df))
    df["note"] = [" ".join(rng.choice(["take", "one", "two", "studio", "mic"], 3)) for _ in df.index]
    df.to_csv(table, index=False)
    with threadpool_limits(limits=1):
        Predictor("pitch", time_limit=None, text_encoder="hashed", seed=0, verbosity=0
                  ).fit(table).save(tmp_path / "model")
        code, _, err = run_cli("evaluate", tmp_path / "model", table, "--out", tmp_path / "report")
    assert code == 0, err

    md = (tmp_path / "report" / "report.md").read_text()
    ablation = {row["masked"]: row for row in
                _markdown_table_rows(md, "What each modality contributes")}
    assert set(ablation) == {"none", "audio", "numeric", "text"}
    assert ablation["audio"]["columns"] == "clip"
    assert float(ablation["audio"]["contribution"]) >= 0.3  # accuracy falls towards chance
    assert abs(float(ablation["numeric"]["contribution"])) <= 0.1
    assert abs(float(ablation["text"]["contribution"])) <= 0.1
    importance = _markdown_table_rows(md, "Permutation importance")
    assert importance[0]["column"] == "clip" and importance[0]["modality"] == "audio"
    assert (tmp_path / "report" / "ablation.png").stat().st_size > 0
