"""Numeric and datetime columns as standardised features for :class:`~polymodal.data.transforms.TableTransform`.

``fit_*`` learns a column's statistics from the training rows (JSON-able dicts, saved with
the transform); ``encode_*`` applies them. Missing values are imputed with the training
median and flagged, and standardised values are clipped to ``±NUMERIC_CLIP`` so one wild
value at predict time cannot saturate a model.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from polymodal.data.cells import column_numbers, day_first, parse_dates, seconds_since_epoch

# Standardised numbers are clipped so one wild value at predict time cannot saturate a model.
NUMERIC_CLIP = 10.0

DATETIME_FEATURES = (
    "year",
    "days",
    "month_sin",
    "month_cos",
    "dow_sin",
    "dow_cos",
    "hour_sin",
    "hour_cos",
)


def column_floats(cells: pd.Series) -> np.ndarray:
    """Numbers as float64, parsed as schema inference parsed them ("1,234" -> 1234);
    anything unparseable (and +-inf) becomes NaN."""
    values = np.array(column_numbers(cells), dtype=np.float64)  # a writable copy
    values[~np.isfinite(values)] = np.nan
    return values


# ---------------------------------------------------------------------- numeric


def fit_numeric(cells: pd.Series) -> dict:
    values = column_floats(cells)
    finite = values[~np.isnan(values)]
    if finite.size == 0:  # an all-missing column: every row reads 0 plus its indicator
        return {"median": 0.0, "mean": 0.0, "std": 1.0, "indicator": True}
    std = float(finite.std())
    return {
        "median": float(np.median(finite)),
        "mean": float(finite.mean()),
        # A constant column would divide by zero; it carries no information either way.
        "std": std if std > 1e-12 else 1.0,
        "indicator": bool(finite.size < values.size),
    }


def encode_numeric(cells: pd.Series, stats: dict) -> tuple[np.ndarray, np.ndarray]:
    """(N,) standardised values with missing ones imputed by the median, and (N,) missing."""
    values = column_floats(cells)
    missing = np.isnan(values)
    filled = np.where(missing, stats["median"], values)
    scaled = np.clip((filled - stats["mean"]) / stats["std"], -NUMERIC_CLIP, NUMERIC_CLIP)
    return scaled.astype(np.float32), missing


# ---------------------------------------------------------------------- datetime


def _to_datetime(cells: pd.Series, dayfirst: bool = False) -> pd.Series:
    """Timestamps in UTC (naive ones are taken as UTC); unparseable cells become NaT."""
    if pd.api.types.is_datetime64_any_dtype(cells):
        series = cells
    else:
        series = parse_dates(cells, dayfirst=dayfirst, utc=True)
    series = pd.Series(series)
    if series.dt.tz is None:
        series = series.dt.tz_localize("UTC")
    return series.dt.tz_convert("UTC")


def _datetime_parts(cells: pd.Series, dayfirst: bool) -> dict[str, np.ndarray]:
    ts = _to_datetime(cells, dayfirst)
    days = seconds_since_epoch(ts) / 86400.0
    return {
        "days": days,
        "year": np.asarray(ts.dt.year, dtype=np.float64),
        "month": np.asarray(ts.dt.month, dtype=np.float64),
        "dow": np.asarray(ts.dt.day_of_week, dtype=np.float64),
        "hour": np.asarray(ts.dt.hour + ts.dt.minute / 60.0, dtype=np.float64),
    }


def fit_datetime(cells: pd.Series) -> dict:
    """The column's statistics; ``dayfirst`` (saved only when True) is decided on the
    training rows and reused at predict time, where a batch may hold no day over 12."""
    dayfirst = day_first(cells)
    parts = _datetime_parts(cells, dayfirst)
    days, years = parts["days"], parts["year"]
    ok = ~np.isnan(days)
    order = {"dayfirst": True} if dayfirst else {}
    if not ok.any():
        return {
            "days_median": 0.0,
            "days_mean": 0.0,
            "days_std": 1.0,
            "year_mean": 1970.0,
            "year_std": 1.0,
            "indicator": True,
            **order,
        }
    days_std, year_std = float(days[ok].std()), float(years[ok].std())
    return {
        **order,
        "days_median": float(np.median(days[ok])),
        "days_mean": float(days[ok].mean()),
        "days_std": days_std if days_std > 1e-12 else 1.0,
        "year_mean": float(years[ok].mean()),
        "year_std": year_std if year_std > 1e-12 else 1.0,
        "indicator": bool(not ok.all()),
    }


def encode_datetime(cells: pd.Series, stats: dict) -> tuple[np.ndarray, np.ndarray]:
    """(N, 8 [+1]) features in DATETIME_FEATURES order (+ missing indicator), and (N,) missing.

    Year and days since 1970 are standardised; month, weekday and hour are encoded as
    points on a circle so December sits next to January. A missing timestamp takes the
    training median for the linear features and 0 (no direction) for the cyclic ones.
    """
    parts = _datetime_parts(cells, bool(stats.get("dayfirst", False)))
    missing = np.isnan(parts["days"])
    median_year = float(pd.Timestamp(stats["days_median"] * 86400.0, unit="s").year)
    days = np.where(missing, stats["days_median"], parts["days"])
    year = np.where(missing, median_year, parts["year"])
    columns = [
        np.clip((year - stats["year_mean"]) / stats["year_std"], -NUMERIC_CLIP, NUMERIC_CLIP),
        np.clip((days - stats["days_mean"]) / stats["days_std"], -NUMERIC_CLIP, NUMERIC_CLIP),
    ]
    for name, period, offset in (("month", 12.0, 1.0), ("dow", 7.0, 0.0), ("hour", 24.0, 0.0)):
        angle = 2.0 * np.pi * (np.nan_to_num(parts[name]) - offset) / period
        columns += [np.where(missing, 0.0, np.sin(angle)), np.where(missing, 0.0, np.cos(angle))]
    if stats["indicator"]:
        columns.append(missing.astype(np.float64))
    return np.stack(columns, axis=1).astype(np.float32), missing
