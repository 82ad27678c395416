"""Built-in datasets, the public way in.

Example::

    from polymodal import datasets
    [d.name for d in datasets.list_datasets()]      # ['digits', 'fashion-mnist', 'shapes']
    train, test = datasets.load("digits", split=True)
    datasets.export("shapes", "shapes-table", n=500)  # train.csv, test.csv, images/*.png

See :mod:`polymodal.data.builtin` for how each dataset is made.
"""

from __future__ import annotations

from polymodal.data.builtin import DatasetInfo, describe, list_datasets, load
from polymodal.data.builtin.export import export

__all__ = ["DatasetInfo", "describe", "export", "list_datasets", "load"]
