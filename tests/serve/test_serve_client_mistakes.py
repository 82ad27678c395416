"""Client mistakes a new user makes, over a real socket: each is a 4xx naming the field,
never a 500 or a field the client did not send.

A JSON integer of hundreds of digits for a number, conditions the generator cannot use,
a body that is not JSON (or not a form), a form field /edit does not read; and
``polymodal serve`` on a port that is already taken.
"""

from __future__ import annotations

import base64
import io
import json
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from polymodal.serve import create_app, load_models

pytestmark = pytest.mark.usefixtures("one_thread")

HUGE = "9" * 400  # a valid JSON integer no float holds


@pytest.fixture(scope="module")
def numeric_gen_dir(tmp_path_factory, write_tiny_table, one_thread):
    """A generator of the tiny table's images conditioned on its numeric ``price`` and
    categorical ``color``, one epoch."""
    from polymodal import Generator

    folder = tmp_path_factory.mktemp("price-gen")
    rows = pd.read_csv(write_tiny_table(folder))
    table = pd.concat([rows, rows], ignore_index=True)  # 16 images, the fewest a fit takes
    table.attrs["base_dir"] = str(folder)
    Generator(image="image", condition=["price", "color"], recipe={"training.max_epochs": "1"},
              verbosity=0).fit(table).save(folder / "model")
    return folder / "model"


@pytest.fixture(scope="module")
def url(model_dirs, numeric_gen_dir, live_server):
    models = load_models([model_dirs["predictor"], numeric_gen_dir], ["shop", "gen"])
    with live_server(create_app(models)) as base:
        yield base


@pytest.fixture(scope="module")
def row(model_dirs) -> dict:
    table = model_dirs["table"]
    return {"image": base64.b64encode((table / "images/img_1.png").read_bytes()).decode(),
            "caption": "a bright green tile", "price": 12.5, "color": "green", "tags": "b",
            "date": "2024-01-06"}


def png(side: int = 8) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((side, side, 3), 90, np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def assert_error(response, field: str, *needles: str) -> None:
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["field"] == field, body
    for needle in needles:
        assert needle in body["detail"], (needle, body)


def post_json(http, path: str, text: str, content_type: str | None = "application/json"):
    headers = {"content-type": content_type} if content_type else {}
    return http.post(path, content=text.encode(), headers=headers)


def test_an_integer_too_large_for_a_float_is_422_not_500(http, row):
    predict = json.dumps({"rows": [row]}).replace("12.5", HUGE)
    assert_error(post_json(http, "/models/shop/predict", predict), "rows[0].price", "finite")
    generate = '{"n": 1, "steps": 1, "conditions": {"price": ' + HUGE + "}}"
    assert_error(post_json(http, "/models/gen/generate", generate), "conditions.price",
                 "finite numbers")
    edit = http.post("/models/gen/edit", files={"image": ("a.png", png())},
                     data={"conditions": '{"price": ' + HUGE + "}", "steps": "1"})
    assert_error(edit, "conditions.price", "finite numbers")


@pytest.mark.parametrize("conditions, field, needle", [
    ({"color": "ultraviolet"}, "conditions.color", "never saw"),
    ({"colour": "red"}, "conditions", "does not know"),
    ({"color": ["red", "green", "blue"]}, "conditions.color", "3 values for n=2"),
])
def test_conditions_the_generator_cannot_use_name_their_field(http, conditions, field, needle):
    response = http.post("/models/gen/generate",
                         json={"n": 2, "steps": 1, "conditions": conditions})
    assert_error(response, field, needle)


@pytest.mark.parametrize("text, content_type, needle", [
    ('{"n": 2', "application/json", "not valid JSON"),
    ("{n: 2}", "application/json", "not valid JSON"),
    ('{"n": 1}', "text/plain", "'text/plain'"),
    ('{"n": 1}', None, "without a Content-Type"),
    ("", "application/json", "no body"),
    ("[1, 2]", "application/json", "dictionary"),
])
def test_a_generate_body_that_is_not_a_json_object_is_422_naming_the_body(
        http, text, content_type, needle):
    assert_error(post_json(http, "/models/gen/generate", text, content_type), "body", needle)


def test_edit_refuses_form_fields_it_would_ignore(http):
    image = ("a.png", png())
    assert_error(http.post("/models/gen/edit", files={"image": image}, data={"n": "4"}),
                 "n", "not a field")
    assert_error(http.post("/models/gen/edit", files=[("image", image), ("image", image)]),
                 "image", "2 times")
    assert_error(http.post("/models/gen/edit", files={"image": image, "maks": image}),
                 "maks", "not a field")
    encoded = base64.b64encode(png()).decode()
    assert_error(http.post("/models/gen/edit", json={"image": encoded}), "body",
                 "multipart/form-data")
    done = http.post("/models/gen/edit", files={"image": image}, data={"steps": "1"})
    assert done.status_code == 200, done.text  # the same form without them is answered


@pytest.mark.parametrize("files, data, field", [
    ({"photo": ("a.png", png())}, {}, "photo"),
    ({"image[3]": ("a.png", png())}, {}, "image[3]"),
    ({}, {"image": "images/img_1.png"}, "image"),
])
def test_predict_form_fields_it_cannot_use_are_named(http, row, files, data, field):
    rows = json.dumps([{k: v for k, v in row.items() if k != "image"}])
    response = http.post("/models/shop/predict", files=files, data={"rows": rows, **data})
    assert_error(response, field)


def test_serve_on_a_taken_port_is_one_line_and_exit_2(model_dirs):
    exe = Path(sys.executable).with_name("polymodal")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run([str(exe), "serve", str(model_dirs["predictor"]), "--port",
                               str(port)], capture_output=True, text=True, timeout=300)
        assert done.returncode == 2, (done.stdout, done.stderr)
        assert done.stderr.strip().count("\n") == 0 and "Traceback" not in done.stderr
        assert f"--port {port}" in done.stderr and "in use" in done.stderr
        # the taken port still answers its owner: nothing was bound over it
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass
