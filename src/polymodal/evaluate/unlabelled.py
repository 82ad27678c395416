"""What a fit did with the training rows whose label was empty, in words for the model
card and the report (the numbers are the predictor's ``unlabelled_``)."""

from __future__ import annotations


def unlabelled_sentence(summary: dict | None) -> str | None:
    """One sentence: how many rows had no label, what they trained, and whether validation
    (labelled rows only) kept it; None when every row was labelled."""
    if not summary or not summary.get("num_rows"):
        return None
    count = f"{summary['num_rows']:,} training row(s) had no label"
    if summary.get("method") != "self_training":
        return f"{count}; they were left out of training."
    metric = next((k[len("val_"):] for k in summary if k.startswith("val_")
                   and not k.endswith("_labelled_only")), "metric")
    before = summary.get(f"val_{metric}_labelled_only")
    after = summary.get(f"val_{metric}")
    scores = ("" if before is None or after is None
              else f" (validation {metric} {before:.4f} labelled rows only, {after:.4f} with "
                   "pseudo-labels)")
    if summary.get("used"):
        return (f"{count}: the network self-trained on {summary['num_pseudo_labelled']:,} of "
                f"them, pseudo-labelled where it was confident{scores}.")
    if summary.get("not_run") == "torchrun":
        return (f"{count}; under torchrun the network does not self-train, so they were left "
                "out of training.")
    if not any("skipped" not in r for r in summary.get("rounds", [])):
        return (f"{count}: the network had no time left to self-train on them (a longer "
                "time limit gives it some), so it trained on labelled rows only.")
    return (f"{count}: the network tried self-training on them, which did not validate "
            f"better, so the network trained on labelled rows only is used{scores}.")
