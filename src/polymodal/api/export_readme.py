"""The README.md of an ONNX export: its input contract and a short usage example."""

from __future__ import annotations

_SPEC_FIELDS = """\
## preprocess.json

- `columns`: the raw columns the export reads, with their modality.
- `numeric`: per numeric column `median` (fills a missing cell), `mean`, `std`
  (value -> `(value - mean) / std`, clipped to +-`numeric_clip`), `indicator` (a 0/1
  missing flag is appended after all scaled numbers).
- `datetime`: per date column the standardisation of its year and days since 1970, then
  sine/cosine of month, weekday and hour; appended after the numbers.
- `categorical`: per column its `vocabulary`; index 0 = unseen value, 1 = missing,
  2.. = the vocabulary in order. `numbers`: the value of each index when the categories
  are numbers (the classic models read it).
- `multilabel`: per column its `delimiter` and `tags` (multi-hot, in that order).
- `text`: per column the hashed n-gram encoder (`dim` buckets; CRC32 of word unigrams,
  bigrams and character 3-grams, sublinear counts, L2-normalised).
- `image`: per column `[C, H, W]`: the image is resized (bicubic) so its longer side
  fits, padded with black, centred, pixels mapped to [-1, 1].
- `mask_inputs`: the graph input holding each column's presence flag (False = missing
  or unreadable).
"""


_RUNTIME_NOTE = ("`runtime.py` loads `cells.py` (raw cells to arrays: CSV, numbers, dates, "
                 "tags, hashed text, images) from its own folder; keep the two together.")


def _minilm_note(spec: dict) -> str:
    """A line on the MiniLM files, when a text column is embedded with MiniLM."""
    columns = [e["column"] for e in spec.get("text", []) if e["kind"] != "hashed"]
    if not columns:
        return ""
    return (f"\nText column(s) {', '.join(f'`{c}`' for c in columns)} are embedded with MiniLM: "
            "`minilm.onnx` (the transformer, mean pooling, L2 norm), `minilm_vocab.txt` and "
            "`minilm.py` (its WordPiece tokenizer in plain Python), loaded by `runtime.py`.")


def predictor_readme(p, spec: dict) -> str:
    label = spec["label"]
    models = ", ".join(f"`{m['file']}` (weight {spec['weights'][n]:.3g})"
                       for n, m in spec["models"].items())
    columns = "\n".join(f"| `{c}` | {m} |" for c, m in spec["columns"].items())
    out = {"regression": f"(N,) values of `{label['column']}` in its units",
           "multilabel": "(N, K) probability of each tag (`label.classes` order)"}.get(
        label["problem_type"], "(N, K) class probabilities (`label.classes` order)")
    first = next(iter(spec["columns"]), "column")
    return f"""# ONNX export of a polymodal predictor of `{label['column']}`

Problem: {label['problem_type']}; model: {spec['chosen']} ({models}).
Scored with onnxruntime and numpy alone (Pillow for image columns): no torch, no polymodal.
{_RUNTIME_NOTE}{_minilm_note(spec)}

## Input contract

One row is a dict of raw cells (or a CSV row): the same columns as the training table,
the label not needed. A missing key, `None`, NaN or a blank string is a missing cell.
Image cells are file paths (relative to `base_dir`), bytes or arrays.

| column | modality |
|---|---|
{columns}

Output of `predict_proba`: {out}; `predict` gives labels as in the training table.

## Usage

```python
import sys
sys.path.insert(0, "EXPORT_DIR")      # this folder
import runtime

model = runtime.load("EXPORT_DIR")
rows, base_dir = runtime.read_csv("table.csv")   # or a list of dicts
probabilities = model.predict_proba(rows, base_dir=base_dir)
labels = model.predict([{{"{first}": ...}}])        # one raw row
print(model.classes, probabilities[:3], labels)
```

## Graphs

Every `.onnx` file has a dynamic batch dimension. `neural.onnx` takes the encoded row
(`numeric` (N, F) float32, `categorical` (N, F) int64, `multilabel`, `text_i`,
`image_i` (N, C, H, W), `mask_i` (N,) bool) and returns the probabilities; a
scikit-learn or LightGBM model's graph takes `flat` (N, F) float32 (see `runtime.py`,
`flat_features`). The outputs of the models listed above are averaged with their weights.

Parity with `polymodal predict`: within 1e-4 (polymodal's tests hold it). One exception:
numpy computes images' edge statistics (a feature of the scikit-learn models) within
float rounding of torch, so a tree may send a row whose feature sits that close to a
split the other way.

{_SPEC_FIELDS}"""


def generator_readme(g, spec: dict) -> str:
    channels, height, width = spec["image_shape"]
    condition = spec["condition"]
    columns = "none (unconditional)" if condition is None else ", ".join(
        f"`{c}` ({spec['columns'][c]})" for c in condition["columns"])
    example = ("" if condition is None else
               f"conditions={{\"{condition['columns'][0]}\": ...}}, ")
    sampling = spec["sampling"]
    return f"""# ONNX export of a polymodal image generator of `{spec['image_column']}`

{width}x{height} images with {channels} channel(s); conditions: {columns}.
`unet.onnx` is the velocity network of the rectified flow; `condition.onnx` encodes the
condition columns to the vector the UNet takes. `runtime.py` integrates the flow with
numpy ({sampling['sampler']}, {sampling['num_steps']} steps, guidance {sampling['guidance']}
inside t in {sampling['guidance_interval']}{_annealed(sampling)} by default), with onnxruntime
alone.
{_RUNTIME_NOTE}{_minilm_note(spec)}

## Input contract

`sample(n, conditions={{column: value or a list of n (or k dividing n) values}})`; a
column not given is sampled unconditionally. Returns uint8 (n, H, W, C).
`unet.onnx`: `x` (N, C, H, W) float32, `t` (N,) float32 in [0, 1] (1 = noise),
`cond` (N, D) float32 (zeros = no condition) -> velocity (N, C, H, W).
polymodal draws the starting noise with torch; `noise=` (n, C, H, W) takes it as given,
so an image polymodal sampled is reproduced from torch's noise for the same seed.

## Usage

```python
import sys
sys.path.insert(0, "EXPORT_DIR")      # this folder
import runtime
from PIL import Image

model = runtime.load("EXPORT_DIR")
images = model.sample(8, {example}seed=0)
for i, image in enumerate(images):
    Image.fromarray(image.squeeze()).save(f"sample_{{i}}.png")
print(images.shape, images.dtype)
```

{_SPEC_FIELDS}"""


def _annealed(sampling: dict) -> str:
    """Where the export withholds the condition for the first steps, it says from when."""
    start = sampling.get("condition_from", 1.0)
    return "" if start >= 1.0 else f", the condition withheld above t = {start:g}"
