"""The schema: each column's modality, and the one-line reason it was chosen.

(Inference is filled in below the types.)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

MODALITIES = (
    "image",
    "text",
    "audio",
    "numeric",
    "categorical",
    "multilabel",
    "datetime",
    "ignored",
)
PROBLEM_TYPES = ("binary", "multiclass", "regression", "multilabel")


@dataclass
class ColumnSchema:
    """One column: its modality, why, and whether the user said so."""

    name: str
    modality: str
    reason: str
    overridden: bool = False


@dataclass
class Schema:
    """Column name -> modality with reasons, plus the label and its problem type."""

    columns: dict[str, ColumnSchema] = field(default_factory=dict)
    label: str | None = None
    problem_type: str | None = None
    problem_reason: str | None = None

    def features(self) -> list[str]:
        """Columns the models use: everything but the label and ignored columns, in table order."""
        return [
            c.name
            for c in self.columns.values()
            if c.name != self.label and c.modality != "ignored"
        ]

    def by_modality(self, modality: str) -> list[str]:
        """Feature columns of one modality, in table order."""
        return [n for n in self.features() if self.columns[n].modality == modality]

    def modality(self, column: str) -> str:
        return self.columns[column].modality

    def to_dict(self) -> dict:
        return {
            "columns": [asdict(c) for c in self.columns.values()],
            "label": self.label,
            "problem_type": self.problem_type,
            "problem_reason": self.problem_reason,
        }

    @classmethod
    def from_dict(cls, d: dict) -> Schema:
        cols = {c["name"]: ColumnSchema(**c) for c in d["columns"]}
        return cls(
            columns=cols,
            label=d.get("label"),
            problem_type=d.get("problem_type"),
            problem_reason=d.get("problem_reason"),
        )
