"""A small web service (and web page) over saved Predictors and Generators.

>>> from polymodal.serve import create_app, load_models
>>> app = create_app(load_models(["runs/digits"]))     # any ASGI server can run it

or from the shell: ``polymodal serve runs/digits runs/digits-gen --port 8000``.

Modules: :mod:`~polymodal.serve.app` (routes and error answers),
:mod:`~polymodal.serve.registry` (loading and describing models),
:mod:`~polymodal.serve.rows` (request rows -> a checked table),
:mod:`~polymodal.serve.uploads` (base64 and image uploads checked against the limits),
:mod:`~polymodal.serve.limits` (request caps, the bounded inference pool),
:mod:`~polymodal.serve.server` (uvicorn), ``static/index.html`` (the page).
"""

from __future__ import annotations

from polymodal.serve.app import create_app
from polymodal.serve.limits import ServeLimits
from polymodal.serve.registry import ServedModel, load_models
from polymodal.serve.server import run_server

__all__ = ["ServeLimits", "ServedModel", "create_app", "load_models", "run_server"]
