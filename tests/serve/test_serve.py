"""The web service, through FastAPI's test client and once as a real server process.

Two small real models are trained once for the module: a Predictor on the 8-row table
with every modality, and a Generator on digits. Only the overload test uses a stand-in
(a generator that blocks until released), because it needs requests to be in flight at
a moment the test chooses.
"""

from __future__ import annotations

import base64
import io
import json
import signal
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from polymodal import Generator, Predictor
from polymodal.cli import main
from polymodal.errors import ConfigError, ModelFolderError
from polymodal.serve import ServedModel, ServeLimits, create_app, load_models
from polymodal.serve.registry import folder_kind

pytestmark = pytest.mark.usefixtures("one_thread")

LOCAL = "http://localhost"  # the test client's default host, "testserver", would get 400



# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def table_dir(model_dirs) -> Path:
    return model_dirs["table"]


@pytest.fixture(scope="module")
def predictor_dir(model_dirs) -> Path:
    return model_dirs["predictor"]


@pytest.fixture(scope="module")
def generator_dir(model_dirs) -> Path:
    return model_dirs["generator"]


@pytest.fixture(scope="module")
def models(predictor_dir, generator_dir) -> dict[str, ServedModel]:
    return load_models([predictor_dir, generator_dir])


@pytest.fixture(scope="module")
def client(models):
    limits = ServeLimits(max_rows=16, max_images=32, max_steps=50, max_image_pixels=100_000,
                         max_upload_bytes=200_000)
    with TestClient(create_app(models, limits), base_url=LOCAL) as test_client:
        yield test_client


def png(pixels: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def decode_png(text: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(text))))


@pytest.fixture(scope="module")
def row(table_dir) -> dict:
    """One complete row of the table as a JSON client sends it."""
    return {"image": b64((table_dir / "images/img_1.png").read_bytes()),
            "audio": b64((table_dir / "audio/clip_1.wav").read_bytes()),
            "caption": "a bright green tile", "price": 12.5, "color": "green", "tags": "b",
            "date": "2024-01-06"}


def assert_error(response, status: int, *needles: str, field: str | None = None) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"detail", "field"}, body
    for needle in needles:
        assert needle in body["detail"], (needle, body)
    if field is not None:
        assert body["field"] == field, body
    return body


# ------------------------------------------------------------------- models, health


def test_health_and_models_describe_what_is_served(client, models):
    health = client.get("/health").json()
    assert health["status"] == "ok" and health["models"] == ["digits-gen", "shop"]
    assert health["capacity"] == 1 + 8  # default max_workers + max_queue
    listed = {m["name"]: m for m in client.get("/models").json()["models"]}
    shop, gen = listed["shop"], listed["digits-gen"]
    assert shop["kind"] == "predictor" and shop["problem_type"] == "binary"
    assert shop["classes"] == ["no", "yes"] and shop["label"] == "label"
    columns = {c["name"]: c for c in shop["columns"]}
    assert columns["image"]["modality"] == "image" and not columns["image"]["required"]
    assert columns["price"]["modality"] == "numeric" and columns["price"]["required"]
    assert "id" not in columns and "label" not in columns  # not features
    assert shop["versions"]["polymodal"]
    assert gen["kind"] == "generator" and gen["image_shape"] == [1, 8, 8]
    assert gen["conditions"]["label"]["classes"] == [str(d) for d in range(10)]


def test_folder_kind_is_read_from_the_folder(predictor_dir, generator_dir, tmp_path):
    assert folder_kind(predictor_dir) == "predictor"
    assert folder_kind(generator_dir) == "generator"
    with pytest.raises(ModelFolderError, match="config.json"):
        folder_kind(tmp_path)


def test_load_models_refuses_clashing_or_miscounted_names(predictor_dir):
    with pytest.raises(ConfigError, match="two models are named 'shop'"):
        load_models([predictor_dir, predictor_dir])
    with pytest.raises(ConfigError, match="--name was given 1 time"):
        load_models([predictor_dir, predictor_dir], ["a"])
    with pytest.raises(ConfigError, match="'a/b'"):
        load_models([predictor_dir], ["a/b"])
    assert set(load_models([predictor_dir, predictor_dir], ["a", "b"])) == {"a", "b"}


def test_limits_must_be_positive():
    with pytest.raises(ConfigError, match="max_workers=0"):
        ServeLimits(max_workers=0)


def test_openapi_documents_both_bodies_and_png_answers(client):
    doc = client.get("/openapi.json").json()
    predict = doc["paths"]["/models/{name}/predict"]["post"]
    assert set(predict["requestBody"]["content"]) == {
        "application/json", "multipart/form-data", "application/x-www-form-urlencoded"}
    assert {"404", "413", "422", "503"} <= set(predict["responses"])
    generate = doc["paths"]["/models/{name}/generate"]["post"]
    assert set(generate["responses"]["200"]["content"]) == {"application/json", "image/png"}
    edit = doc["paths"]["/models/{name}/edit"]["post"]
    assert "multipart/form-data" in edit["requestBody"]["content"]
    # The 422 answer is our {"detail", "field"}, not FastAPI's default list.
    ref = generate["responses"]["422"]["content"]["application/json"]["schema"]["$ref"]
    assert ref.endswith("/ErrorBody")


def test_index_page_is_served(client):
    response = client.get("/")
    assert response.status_code == 200 and "text/html" in response.headers["content-type"]
    assert "/models" in response.text and "<script>" in response.text
    assert "http://" not in response.text and "https://" not in response.text  # no network


# -------------------------------------------------------------------------- predict


def test_predict_json_matches_the_python_api(client, predictor_dir, row):
    rows = [row, {**row, "price": None, "color": "red", "caption": "a red block"}]
    response = client.post("/models/shop/predict", json={"rows": rows})
    assert response.status_code == 200, response.text
    body = response.json()
    predictor = Predictor.load(predictor_dir)
    frame = pd.DataFrame([{**r, "image": base64.b64decode(r["image"]),
                           "audio": base64.b64decode(r["audio"])} for r in rows])
    expected = predictor.predict_proba(frame)
    assert body["classes"] == ["no", "yes"]
    assert body["predictions"] == list(predictor.predict(frame))
    got = pd.DataFrame(body["probabilities"])[["no", "yes"]].to_numpy()
    np.testing.assert_allclose(got, expected, atol=1e-6)


def test_predict_names_categories_the_model_never_learned(client, row):
    response = client.post("/models/shop/predict",
                           json={"rows": [row, {**row, "color": "teal"}, {**row, "color": "teal"}]})
    assert response.status_code == 200, response.text
    assert response.json()["unseen_categories"] == {"color": {"teal": 2}}
    known = client.post("/models/shop/predict", json={"rows": [row]})
    assert known.status_code == 200 and known.json()["unseen_categories"] == {}


def test_predict_multipart_files_match_base64(client, row, table_dir):
    image = (table_dir / "images/img_1.png").read_bytes()
    audio = (table_dir / "audio/clip_1.wav").read_bytes()
    fields = {k: v for k, v in row.items() if k not in ("image", "audio")}
    multipart = client.post("/models/shop/predict", data={"rows": json.dumps([fields])},
                            files={"image": ("a.png", image, "image/png"),
                                   "audio": ("a.wav", audio, "audio/wav")})
    as_json = client.post("/models/shop/predict", json={"rows": [row]})
    assert multipart.status_code == 200, multipart.text
    assert multipart.json() == as_json.json()
    # COLUMN[ROW] names a file for one of several rows; a data: URL works as base64.
    two = client.post("/models/shop/predict",
                      data={"rows": json.dumps([fields, {**fields, "image": None}])},
                      files={"image[0]": ("a.png", image, "image/png")})
    assert two.status_code == 200 and len(two.json()["predictions"]) == 2
    data_url = client.post("/models/shop/predict", json={"rows": [
        {**row, "image": "data:image/png;base64," + row["image"]}]})
    assert data_url.json() == as_json.json()


def test_optional_columns_may_be_left_out(client, row):
    minimal = {k: row[k] for k in ("price", "color", "tags", "date")}
    response = client.post("/models/shop/predict", json={"rows": [minimal]})
    assert response.status_code == 200, response.text
    assert response.json()["predictions"][0] in ("no", "yes")


@pytest.mark.parametrize("change, field, needle", [
    ({"price": "cheap"}, "rows[0].price", "expected a number"),
    ({"price": True}, "rows[0].price", "expected a number"),
    ({"caption": 42}, "rows[0].caption", "expected text"),
    ({"color": {"r": 1}}, "rows[0].color", "expected a category"),
    ({"tags": {"a": 1}}, "rows[0].tags", "list of tags"),
    ({"date": "someday"}, "rows[0].date", "date or time"),
    ({"image": "not base64!"}, "rows[0].image", "base64"),
    ({"image": b64(b"these bytes are not a picture")}, "rows[0].image", "not an image"),
    ({"image": 7}, "rows[0].image", "base64"),
    ({"audio": b64(b"RIFF....garbage")}, "rows[0].audio", "not decodable audio"),
    ({"colour": "red"}, "rows[0]", "did you mean 'color'"),
    ({"/etc/passwd": 1}, "rows[0]", "unknown column"),
])
def test_predict_bad_cells_are_422_naming_the_field(client, row, change, field, needle):
    response = client.post("/models/shop/predict", json={"rows": [{**row, **change}]})
    assert_error(response, 422, needle, field=field)


def test_an_image_path_is_never_read_from_the_server(client, row, table_dir):
    path = str(table_dir / "images/img_1.png")  # exists on the server: must not be opened
    response = client.post("/models/shop/predict", json={"rows": [{**row, "image": path}]})
    assert_error(response, 422, "base64", field="rows[0].image")


@pytest.mark.parametrize("body, needle, field", [
    ({"rows": [{"caption": "only text"}]}, "missing column(s) ['price', 'color', 'tags', 'date']",
     "rows[0]"),
    ({"rows": []}, "at least 1", "rows"),
    ({"rows": "all of them"}, "valid list", "rows"),
    ({"rows": [5]}, "valid dictionary", "rows.0"),
    ({"row": [{}]}, "rows: Field required", "rows"),
])
def test_predict_malformed_bodies_are_422(client, body, needle, field):
    assert_error(client.post("/models/shop/predict", json=body), 422, needle, field=field)


def test_predict_rejects_bad_json_and_content_types(client):
    bad_json = client.post("/models/shop/predict", content=b'{"rows": [',
                           headers={"content-type": "application/json"})
    assert_error(bad_json, 422, "not valid JSON", field="body")
    text = client.post("/models/shop/predict", content=b"price=3",
                       headers={"content-type": "text/plain"})
    assert_error(text, 422, "'text/plain' is not accepted")


def test_predict_multipart_mistakes_are_422(client, row, table_dir):
    fields = {k: v for k, v in row.items() if k not in ("image", "audio")}
    text_file = client.post("/models/shop/predict", data={"rows": json.dumps([fields])},
                            files={"image": ("notes.txt", b"just some words", "text/plain")})
    assert_error(text_file, 422, "not an image", field="image")
    wrong_column = client.post("/models/shop/predict", data={"rows": json.dumps([fields])},
                               files={"price": ("p.png", b"x", "image/png")})
    assert_error(wrong_column, 422, "column 'price' is numeric")
    no_row = client.post("/models/shop/predict", data={"rows": json.dumps([fields])},
                         files={"image[3]": ("a.png", b"x", "image/png")})
    assert_error(no_row, 422, "row 3 does not exist")
    bad_rows = client.post("/models/shop/predict", data={"rows": "[{"})
    assert_error(bad_rows, 422, "rows: not valid JSON", field="rows")


def test_unknown_model_is_404_and_wrong_kind_says_which_endpoint(client, row):
    missing = client.post("/models/nope/predict", json={"rows": [row]})
    assert_error(missing, 404, "no model named 'nope'", "['digits-gen', 'shop']", field="name")
    wrong = client.post("/models/shop/generate", json={"n": 1})
    assert_error(wrong, 404, "is a predictor", "/models/shop/predict")
    wrong = client.post("/models/digits-gen/predict", json={"rows": [row]})
    assert_error(wrong, 404, "is a generator", "/generate or /edit")


def test_limits_are_refused_with_413_or_422_naming_them(client, row):
    too_many = client.post("/models/shop/predict", json={"rows": [row] * 17})
    assert_error(too_many, 422, "max_rows=16", field="rows")
    big = png(np.zeros((400, 400, 3), np.uint8))  # 160,000 pixels > 100,000, ~1 KB of PNG
    huge_image = client.post("/models/shop/predict", json={"rows": [{**row, "image": b64(big)}]})
    assert_error(huge_image, 413, "max_image_pixels=100,000", field="rows[0].image")
    body = json.dumps({"rows": [{**row, "caption": "x" * 300_000}]}).encode()
    declared = client.post("/models/shop/predict", content=body,
                           headers={"content-type": "application/json"})
    assert_error(declared, 413, "max_upload_bytes=200,000", field="body")
    # Without Content-Length (chunked), the body is counted as it arrives.
    chunks = (body[i:i + 50_000] for i in range(0, len(body), 50_000))
    streamed = client.post("/models/shop/predict", content=chunks,
                           headers={"content-type": "application/json"})
    assert_error(streamed, 413, "max_upload_bytes=200,000")
    assert client.get("/health").status_code == 200


# ------------------------------------------------------------------------- generate


def test_generate_json_matches_the_python_api(client, generator_dir):
    request = {"n": 6, "conditions": {"label": [3, 3, 3, 7, 7, 7]}, "steps": 4,
               "guidance": 2, "seed": 5}
    response = client.post("/models/digits-gen/generate", json=request)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["width"], body["height"], len(body["images"])) == (8, 8, 6)
    got = np.stack([decode_png(s) for s in body["images"]])  # (6, 8, 8) greyscale
    expected = Generator.load(generator_dir).sample(
        6, conditions={"label": [3, 3, 3, 7, 7, 7]}, num_steps=4, guidance=2, seed=5)
    np.testing.assert_array_equal(got, expected[..., 0])
    again = client.post("/models/digits-gen/generate", json=request).json()
    assert again["images"] == body["images"]  # a seed gives the same images


def test_generate_png_grid_for_accept_image_png(client):
    response = client.post("/models/digits-gen/generate", json={"n": 16, "steps": 2,
                                                                "conditions": {"label": 1}},
                           headers={"accept": "image/png"})
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    grid = Image.open(io.BytesIO(response.content))
    # 4x4 tiles of 8x8 pixels scaled 8x to 64, with 2-pixel padding.
    assert grid.size == (4 * 66 + 2, 4 * 66 + 2)


@pytest.mark.parametrize("body, status, needle, field", [
    ({"n": 0}, 422, "greater than or equal to 1", "n"),
    ({"n": "3"}, 422, "valid integer", "n"),
    ({"n": 33}, 422, "max_images=32", "n"),
    ({"n": 2, "steps": 51}, 422, "max_steps=50", "steps"),
    ({"n": 2, "guidance": -3}, 422, "greater than or equal to 0", "guidance"),
    ({"n": 2, "guidance": 21}, 422, "less than or equal to 20", "guidance"),
    ({"n": 2, "steps": 0}, 422, "greater than or equal to 1", "steps"),
    ({"n": 2, "seed": -1}, 422, "greater than or equal to 0", "seed"),
    ({"n": 2, "seed": 2**53}, 422, "less than or equal to 9007199254740991", "seed"),
    ({"n": 2, "conditions": {"label": 33}}, 422, "never saw", None),
    ({"n": 2, "conditions": {"colour": 1}}, 422, "['colour']", None),
    ({"n": 2, "conditions": {"label": [1, 2, 3]}}, 422, "3 values for n=2", None),
    ({"n": 2, "prompt": "a seven"}, 422, "takes no text prompts", "prompt"),
    ({"n": 2, "step": 5}, 422, "Extra inputs are not permitted", "step"),
    ({"n": 2, "seed": 1.5}, 422, "valid integer", "seed"),
])
def test_generate_bad_requests_are_4xx_naming_the_field(client, body, status, needle, field):
    response = client.post("/models/digits-gen/generate", json=body)
    assert_error(response, status, needle, field=field)


@pytest.mark.parametrize("path, body, field, needle", [
    ("shop/predict", b'{"rows": [{"price": 1e999, "color": "red", "tags": "a", "date": "2024-01-01"}]}',
     "rows[0].price", "finite number"),
    ("shop/predict", b'{"rows": [{"price": NaN, "color": "red", "tags": "a", "date": "2024-01-01"}]}',
     "rows[0].price", "finite number"),
    ("digits-gen/generate", b'{"n": 2, "guidance": NaN}', "guidance", "finite number"),
    ("digits-gen/generate", b'{"n": 2, "conditions": {"label": Infinity}}', "conditions.label",
     "finite number"),
    ("digits-gen/generate", b'{"n": 2, "seed": 99999999999999999999999}', "seed",
     "less than or equal"),
])
def test_non_finite_and_overflowing_numbers_are_422(client, path, body, field, needle):
    # Python's JSON parser takes NaN, Infinity and 1e999; none of them may reach a model.
    response = client.post(f"/models/{path}", content=body,
                           headers={"content-type": "application/json"})
    assert_error(response, 422, needle, field=field)


# ----------------------------------------------------------------------------- edit


def test_edit_returns_the_edited_image(client):
    digit = (np.arange(64, dtype=np.uint8).reshape(8, 8) * 4)
    response = client.post("/models/digits-gen/edit", files={"image": ("d.png", png(digit))},
                           data={"strength": "0.6", "conditions": '{"label": 2}', "seed": "1",
                                 "steps": "4"})
    assert response.status_code == 200, response.text
    edited = decode_png(response.json()["images"][0])
    assert edited.shape == (8, 8) and not np.array_equal(edited, digit)
    as_png = client.post("/models/digits-gen/edit", files={"image": ("d.png", png(digit))},
                         data={"strength": "0.6", "conditions": '{"label": 2}', "seed": "1",
                               "steps": "4"}, headers={"accept": "image/png"})
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(as_png.content))), edited)


def test_edit_with_a_keep_everything_mask_returns_the_input(client):
    digit = (np.arange(64, dtype=np.uint8).reshape(8, 8) * 4)
    keep_all = np.full((8, 8), 255, np.uint8)
    response = client.post("/models/digits-gen/edit",
                           files={"image": ("d.png", png(digit)), "mask": ("m.png", png(keep_all))},
                           data={"strength": "1", "steps": "3"})
    assert response.status_code == 200, response.text
    np.testing.assert_array_equal(decode_png(response.json()["images"][0]), digit)


def test_edit_bad_uploads_are_4xx_naming_the_field(client):
    digit = png(np.zeros((8, 8), np.uint8))
    cases = [
        ({"image": ("x.png", b"\x89PNG\r\n\x1a\n broken")}, {}, 422, "image", "corrupt"),
        ({"image": ("x.txt", b"hello")}, {}, 422, "image", "not an image"),
        ({"image": ("x.png", digit)}, {"strength": "1.5"}, 422, "strength", "less than or equal"),
        ({"image": ("x.png", digit)}, {"strength": "lots"}, 422, "strength", "valid number"),
        ({"image": ("x.png", digit)}, {"conditions": "{label: 2"}, 422, "conditions", "JSON"),
        ({"image": ("x.png", digit)}, {"steps": "51"}, 422, "steps", "max_steps=50"),
        ({"image": ("x.png", digit), "mask": ("m.png", png(np.zeros((4, 4), np.uint8)))}, {},
         422, "mask", "differs from the image's 8x8"),
        ({"image": ("big.png", png(np.zeros((400, 400), np.uint8)))}, {}, 413, "image",
         "max_image_pixels"),
        ({"mask": ("m.png", digit)}, {}, 422, "image", "Field required"),
    ]
    for files, data, status, field, needle in cases:
        response = client.post("/models/digits-gen/edit", files=files, data=data)
        assert_error(response, status, needle, field=field)


# ------------------------------------------------------------------------- overload


class BlockingGenerator:
    """A stand-in generator whose ``sample`` waits until the test releases it."""

    conditions_: dict = {}
    image_shape_ = (1, 8, 8)

    def __init__(self):
        self.release = threading.Event()
        self.started = threading.Semaphore(0)

    def sample(self, n, **_):
        self.started.release()
        assert self.release.wait(10), "the test never released the generator"
        return np.zeros((n, 8, 8, 1), np.uint8)


def test_a_full_queue_answers_503_and_health_stays_responsive():
    blocking = BlockingGenerator()
    served = {"slow": ServedModel(name="slow", kind="generator", model=blocking)}
    limits = ServeLimits(max_workers=1, max_queue=1, retry_after_s=2)
    results: list[int] = []
    with TestClient(create_app(served, limits), base_url=LOCAL) as client:
        def generate():
            results.append(client.post("/models/slow/generate", json={"n": 1}).status_code)

        threads = [threading.Thread(target=generate) for _ in range(2)]
        for t in threads:
            t.start()
        assert blocking.started.acquire(timeout=10)  # one job runs, one waits in the queue
        deadline = time.monotonic() + 10
        while client.get("/health").json()["in_flight"] < 2:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        refused = client.post("/models/slow/generate", json={"n": 1})
        assert_error(refused, 503, "busy", "max_workers + max_queue")
        assert refused.headers["retry-after"] == "2"
        health = client.get("/health").json()  # answered while the worker is blocked
        assert health["in_flight"] == 2 and health["rejected"] == 1
        blocking.release.set()
        for t in threads:
            t.join(10)
        assert results == [200, 200]
        assert client.post("/models/slow/generate", json={"n": 1}).status_code == 200


# -------------------------------------------------------------------------------- cli


def test_cli_serve_refuses_a_missing_folder_in_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["serve", str(tmp_path / "nothing-here")])
    err = capsys.readouterr().err
    assert exc.value.code == 2
    assert "nothing-here" in err and "Traceback" not in err


def test_real_server_over_http_and_graceful_shutdown(predictor_dir, generator_dir, row,
                                                    serve_process):
    with serve_process(predictor_dir, generator_dir, "--name", "shop", "--name", "digits"
                       ) as (process, url):
        with httpx.Client(base_url=url, timeout=60) as http:
            assert {m["name"] for m in http.get("/models").json()["models"]} == {"shop", "digits"}
            predicted = http.post("/models/shop/predict", json={"rows": [row]})
            assert predicted.status_code == 200 and predicted.json()["predictions"][0] in ("no", "yes")
            grid = http.post("/models/digits/generate", json={"n": 4, "steps": 2},
                             headers={"accept": "image/png"})
            assert grid.status_code == 200 and grid.content.startswith(b"\x89PNG")
            bad = http.post("/models/digits/generate", json={"n": "many"})
            assert bad.status_code == 422 and bad.json()["field"] == "n"
            assert http.get("/models/shop").json()["kind"] == "predictor"
            assert http.get("/models/nope").json()["field"] == "name"

            # A long request is in flight when SIGTERM arrives: it still gets its answer.
            answer: dict = {}

            def slow_request():
                answer["response"] = http.post("/models/digits/generate",
                                               json={"n": 32, "steps": 20})

            thread = threading.Thread(target=slow_request)
            thread.start()
            deadline = time.monotonic() + 30
            while httpx.get(url + "/health").json()["in_flight"] == 0:
                assert time.monotonic() < deadline
                time.sleep(0.02)
            process.send_signal(signal.SIGTERM)
            thread.join(60)
            assert answer["response"].status_code == 200
            assert len(answer["response"].json()["images"]) == 32
        # uvicorn exits by re-raising the signal once the in-flight work is done.
        assert process.wait(timeout=30) in (0, -signal.SIGTERM)
        log = process.stdout.read()
        assert "127.0.0.1" in log and "Finished server process" in log
