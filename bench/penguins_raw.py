"""Benchmark: the raw Palmer penguins export (IDs, a row counter, dates, constant columns,
sparse comments, missing isotope values), predicting ``Sex`` — polymodal's default ``fit``
vs a careful scikit-learn pipeline (impute + one-hot + random forest on hand-picked
columns), on the same seeded stratified 80/20 splits, side by side in one run.

The table ships offline in the ``palmerpenguins`` package (in the ``bench`` extra, so
``make install`` installs it):

    .venv/bin/python bench/penguins_raw.py [--time-limit 60] [--seeds 0 1 2]
"""

from __future__ import annotations

import argparse
import statistics
import time
from importlib import resources

import pandas as pd

# The columns a careful analyst keeps: no IDs, counters, constants or free-text comments.
HAND_PICKED_NUMERIC = ["Culmen Length (mm)", "Culmen Depth (mm)", "Flipper Length (mm)",
                       "Body Mass (g)", "Delta 15 N (o/oo)", "Delta 13 C (o/oo)"]
HAND_PICKED_CATEGORICAL = ["Species", "Island", "Clutch Completion"]
LABEL = "Sex"


def load() -> pd.DataFrame:
    path = resources.files("palmerpenguins") / "data" / "penguins-raw.csv"
    df = pd.read_csv(path)
    return df[df[LABEL].notna()].reset_index(drop=True)


def sklearn_pipeline(train: pd.DataFrame, test: pd.DataFrame, seed: int) -> float:
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    columns = ColumnTransformer([
        ("num", SimpleImputer(strategy="median"), HAND_PICKED_NUMERIC),
        ("cat", make_pipeline(SimpleImputer(strategy="most_frequent"),
                              OneHotEncoder(handle_unknown="ignore")), HAND_PICKED_CATEGORICAL),
    ])
    model = make_pipeline(columns, RandomForestClassifier(n_estimators=500, random_state=seed))
    model.fit(train, train[LABEL])
    return float((model.predict(test) == test[LABEL]).mean())


def polymodal_fit(train: pd.DataFrame, test: pd.DataFrame, seed: int, time_limit: float
                  ) -> tuple[float, float, str]:
    from polymodal import Predictor

    start = time.perf_counter()
    predictor = Predictor(LABEL, time_limit=time_limit, seed=seed, verbosity=0).fit(train)
    wall = time.perf_counter() - start
    return float(predictor.evaluate(test)["accuracy"]), wall, predictor.chosen_


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--time-limit", type=float, default=60.0)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    from sklearn.model_selection import train_test_split

    df = load()
    rows = []
    for seed in args.seeds:
        train, test = train_test_split(df, test_size=0.2, random_state=seed, stratify=df[LABEL])
        ours, wall, chosen = polymodal_fit(train, test, seed, args.time_limit)
        peer = sklearn_pipeline(train, test, seed)
        rows.append({"seed": seed, "train_rows": len(train), "polymodal": round(ours, 4),
                     "sklearn_pipeline": round(peer, 4), "difference": round(ours - peer, 4),
                     "polymodal_wall_s": round(wall, 1), "wall/limit": round(wall / args.time_limit, 2),
                     "chosen": chosen})
    table = pd.DataFrame(rows)
    print(table.to_string(index=False))
    print(f"median accuracy: polymodal {statistics.median(table['polymodal']):.4f}, "
          f"sklearn pipeline {statistics.median(table['sklearn_pipeline']):.4f}; "
          f"median difference {statistics.median(table['difference']):+.4f}")


if __name__ == "__main__":
    main()
