"""The service's edge, over a real socket: Host check, CORS, bounds, JSON depth, the OpenAPI
document, and a short schemathesis run against it.

The server is the real application under uvicorn on a loopback port, serving the small
trained models, with tight limits so that whatever the fuzzer asks for stays cheap.
"""

from __future__ import annotations

import io
import json
import socket
from urllib.parse import urlsplit

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from polymodal.serve import ServeLimits, create_app, load_models

pytestmark = pytest.mark.usefixtures("one_thread")

LIMITS = ServeLimits(max_rows=8, max_images=4, max_steps=3, max_prompt_chars=40,
                     max_image_pixels=10_000, max_upload_bytes=2_000_000, max_json_depth=16)
DEEP = b"[" * 100_000  # once a RecursionError (500) in the JSON parser


@pytest.fixture(scope="module")
def models(model_dirs):
    return load_models([model_dirs["predictor"], model_dirs["generator"]], ["shop", "digits"])


@pytest.fixture(scope="module")
def url(models, live_server):
    with live_server(create_app(models, LIMITS)) as base:
        yield base


def png(pixels: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


def assert_error(response, status: int, field: str | None, *needles: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"detail", "field"} and body["field"] == field, body
    for needle in needles:
        assert needle in body["detail"], (needle, body)
    return body["detail"]


# ------------------------------------------------------------------------ host check


def test_loopback_names_are_answered(http, url):
    port = urlsplit(url).port
    for host in ("localhost", "127.0.0.1", "[::1]", "LOCALHOST"):
        response = http.get("/health", headers={"host": f"{host}:{port}"})
        assert response.status_code == 200, (host, response.text)


@pytest.mark.parametrize("host", ["evil.example", "evil.example:80", "127.0.0.1.evil.example",
                                  "localhost.evil.example", "not a host"])
def test_other_host_headers_get_400_naming_the_fix(http, host):
    response = http.get("/models", headers={"host": host})
    assert_error(response, 400, "host", "--allow-host", "DNS rebinding")
    # Checked before anything else: no model runs for a rebound page.
    assert http.post("/models/shop/predict", json={"rows": [{}]},
                     headers={"host": host}).status_code == 400


def test_a_request_without_a_host_header_gets_400(url):
    port = urlsplit(url).port
    with socket.create_connection(("127.0.0.1", port), timeout=30) as conn:
        conn.sendall(b"GET /health HTTP/1.0\r\n\r\n")
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400"), head
    assert json.loads(body)["field"] == "host"


def test_allow_hosts_adds_names_and_wildcards(models):
    app = create_app(models, LIMITS, allow_hosts=["models.internal", "*.example.org"])
    with TestClient(app, base_url="http://models.internal") as client:
        assert client.get("/health").status_code == 200
        assert client.get("/health", headers={"host": "a.example.org"}).status_code == 200
        assert client.get("/health", headers={"host": "example.com"}).status_code == 400
    with TestClient(create_app(models, LIMITS, allow_hosts=["*"]), base_url="http://any") as client:
        assert client.get("/health").status_code == 200


def test_cli_binds_loopback_and_allows_nothing_else_by_default(model_dirs, monkeypatch,
                                                               run_cli):
    import polymodal.serve

    calls = []
    monkeypatch.setattr(polymodal.serve, "run_server", lambda *a, **kw: calls.append(kw))
    assert run_cli("serve", model_dirs["predictor"])[0] == 0
    assert run_cli("serve", model_dirs["predictor"], "--host", "0.0.0.0", "--allow-host", "box",
                   "--cors-origin", "http://localhost:3000")[0] == 0
    assert [(c["host"], c["allow_hosts"], c["cors_origins"]) for c in calls] == [
        ("127.0.0.1", [], []), ("0.0.0.0", ["box"], ["http://localhost:3000"])]


# ------------------------------------------------------------------------------ CORS


def test_no_cors_unless_asked(http, models):
    origin = {"origin": "http://evil.example"}
    assert "access-control-allow-origin" not in http.get("/models", headers=origin).headers
    preflight = http.options("/models/shop/predict", headers={
        **origin, "access-control-request-method": "POST"})
    assert "access-control-allow-origin" not in preflight.headers
    app = create_app(models, LIMITS, cors_origins=["http://localhost:3000"])
    with TestClient(app, base_url="http://localhost") as client:
        asked = client.get("/models", headers={"origin": "http://localhost:3000"})
        assert asked.headers["access-control-allow-origin"] == "http://localhost:3000"
        other = client.get("/models", headers=origin)
        assert "access-control-allow-origin" not in other.headers


# --------------------------------------------------------------------- bodies, bounds


@pytest.mark.parametrize("path", ["/models/shop/predict", "/models/digits/generate"])
def test_deeply_nested_json_is_422_not_500(http, path):
    response = http.post(path, content=DEEP, headers={"content-type": "application/json"})
    assert_error(response, 422, "body", "100,000 levels", "max_json_depth=16")
    shallow = b'{"rows": [{"tags": [[[[[[[[[[[["a"]]]]]]]]]]]]}]}'  # 15 levels: parsed, then 422
    assert http.post("/models/shop/predict", content=shallow,
                     headers={"content-type": "application/json"}).json()["field"] == "rows[0]"


def test_deeply_nested_json_in_form_fields_is_422(http):
    rows = http.post("/models/shop/predict", data={"rows": DEEP.decode()})
    assert_error(rows, 422, "rows", "max_json_depth=16")
    digit = png(np.zeros((8, 8), np.uint8))
    conditions = http.post("/models/digits/edit", files={"image": ("d.png", digit)},
                           data={"conditions": '{"label": ' + "[" * 5000 + "}"})
    assert_error(conditions, 422, "conditions", "max_json_depth=16")


def test_brackets_inside_strings_do_not_count_as_depth(http):
    caption = "[" * 1000 + '"{' * 100
    response = http.post("/models/shop/predict", json={"rows": [{
        "caption": caption, "price": 1.0, "color": "red", "tags": "a", "date": "2024-01-01"}]})
    assert response.status_code == 200, response.text


def test_long_prompts_are_422_naming_the_limit(http):
    megabyte = http.post("/models/digits/generate", json={"n": 1, "prompt": "x" * 1_000_000})
    assert_error(megabyte, 422, "prompt", "at most 40 characters", "max_prompt_chars=40")
    many = http.post("/models/digits/generate", json={"n": 1, "prompt": ["a"] * 5})
    assert_error(many, 422, "prompt", "max_images=4")
    long_value = http.post("/models/digits/generate",
                           json={"n": 1, "conditions": {"label": "7" * 41}})
    assert_error(long_value, 422, "conditions.label", "max_prompt_chars=40")
    digit = png(np.zeros((8, 8), np.uint8))
    edit = http.post("/models/digits/edit", files={"image": ("d.png", digit)},
                     data={"prompt": "y" * 41})
    assert_error(edit, 422, "prompt", "max_prompt_chars=40")


@pytest.mark.parametrize("body, field, needle", [
    ({"n": 5}, "n", "max_images=4"),
    ({"n": 0}, "n", "greater than or equal to 1"),
    ({"n": 1, "steps": 4}, "steps", "max_steps=3"),
    ({"n": 1, "steps": 0}, "steps", "greater than or equal to 1"),
    ({"n": 1, "seed": -1}, "seed", "greater than or equal to 0"),
    ({"n": 1, "seed": 2**53}, "seed", "less than or equal to 9007199254740991"),
    ({"n": 1, "guidance": -0.5}, "guidance", "greater than or equal to 0"),
    ({"n": 1, "guidance": 20.5}, "guidance", "less than or equal to 20"),
    ({"n": 1, "conditions": {"label": ["1"] * 5}}, "conditions.label", "max_images=4"),
])
def test_generate_bounds_are_422_naming_the_field(http, body, field, needle):
    assert_error(http.post("/models/digits/generate", json=body), 422, field, needle)


@pytest.mark.parametrize("data, field, needle", [
    ({"strength": "1.01"}, "strength", "less than or equal to 1"),
    ({"strength": "-0.1"}, "strength", "greater than or equal to 0"),
    ({"strength": "nan"}, "strength", "finite number"),
    ({"steps": "4"}, "steps", "max_steps=3"),
    ({"guidance": "21"}, "guidance", "less than or equal to 20"),
    ({"seed": str(2**53)}, "seed", "less than or equal to"),
    ({"mask": "null"}, "mask", "expected an uploaded file"),
])
def test_edit_bounds_are_422_naming_the_field(http, data, field, needle):
    digit = png(np.zeros((8, 8), np.uint8))
    response = http.post("/models/digits/edit", files={"image": ("d.png", digit)}, data=data)
    assert_error(response, 422, field, needle)


def test_whole_floats_are_integers_as_json_schema_says(http):
    as_floats = http.post("/models/digits/generate", json={"n": 2.0, "steps": 2.0, "seed": 3.0,
                                                          "conditions": {"label": "4"}})
    as_ints = http.post("/models/digits/generate", json={"n": 2, "steps": 2, "seed": 3,
                                                        "conditions": {"label": "4"}})
    assert as_floats.status_code == 200, as_floats.text
    assert as_floats.json() == as_ints.json()
    for value in (2.5, "2", True):
        assert_error(http.post("/models/digits/generate", json={"n": value}), 422, "n",
                     "valid integer")


def test_an_unreadable_form_is_400_naming_the_body(http):
    response = http.post("/models/shop/predict", content=b"--x\r\n",
                         headers={"content-type": "multipart/form-data"})
    assert_error(response, 400, "body", "boundary")


def test_empty_rows_are_422_naming_rows(http):
    assert_error(http.post("/models/shop/predict", json={"rows": []}), 422, "rows", "at least 1")
    assert_error(http.post("/models/shop/predict", json={"rows": None}), 422, "rows", "valid list")
    assert_error(http.post("/models/shop/predict", data={"rows": "[]"}), 422, "rows", "non-empty")
    too_many = http.post("/models/shop/predict", json={"rows": [{}] * 9})
    assert_error(too_many, 422, "rows", "max_rows=8")


# --------------------------------------------------------------------------- OpenAPI


def test_openapi_lists_model_names_bounds_and_every_4xx(http):
    doc = http.get("/openapi.json").json()
    paths = doc["paths"]

    def name_enum(path: str, method: str) -> list:
        params = paths[path][method]["parameters"]
        return next(p for p in params if p["name"] == "name")["schema"]["enum"]

    assert name_enum("/models/{name}", "get") == ["digits", "shop"]
    assert name_enum("/models/{name}/predict", "post") == ["shop"]
    assert name_enum("/models/{name}/generate", "post") == ["digits"]
    assert name_enum("/models/{name}/edit", "post") == ["digits"]

    generate = doc["components"]["schemas"]["GenerateRequest"]["properties"]
    assert (generate["n"]["minimum"], generate["n"]["maximum"]) == (1, 4)
    assert generate["seed"]["maximum"] == 2**53 - 1
    steps, guidance = generate["steps"]["anyOf"][0], generate["guidance"]["anyOf"][0]
    assert (steps["minimum"], steps["maximum"]) == (1, 3)
    assert (guidance["minimum"], guidance["maximum"]) == (0, 20)
    assert generate["prompt"]["anyOf"][0]["maxLength"] == 40
    edit = doc["paths"]["/models/{name}/edit"]["post"]["requestBody"]["content"][
        "multipart/form-data"]["schema"]
    edit = doc["components"]["schemas"][edit["$ref"].rsplit("/", 1)[1]]["properties"]
    assert (edit["strength"]["minimum"], edit["strength"]["maximum"]) == (0, 1)
    assert edit["steps"]["maximum"] == 3 and "anyOf" not in edit["mask"]  # never null
    bodies = paths["/models/{name}/predict"]["post"]["requestBody"]["content"]
    rows = bodies["application/json"]["schema"]["properties"]["rows"]
    assert (rows["minItems"], rows["maxItems"]) == (1, 8)
    assert rows["examples"] == [[{"color": "blue", "date": "2024-01-31", "price": 1.0,
                                  "tags": "a"}]]  # a row the served predictor accepts
    form = bodies["multipart/form-data"]["schema"]
    assert set(form["properties"]) == {"rows", "image", "audio"}
    assert form["additionalProperties"] is False
    assert list(form["patternProperties"]) == [r"^(audio|image)\[[0-9]+\]$"]

    expected = {"/health": {"400", "413"}, "/models": {"400", "413"},
                "/models/{name}": {"400", "404", "413", "422"},
                "/models/{name}/predict": {"400", "404", "413", "422", "503"},
                "/models/{name}/generate": {"400", "404", "413", "422", "503"},
                "/models/{name}/edit": {"400", "404", "413", "422", "503"}}
    for path, operations in paths.items():
        for operation in operations.values():
            answers = operation["responses"]
            assert {c for c in answers if c.startswith("4") or c.startswith("5")} == expected[path]
            for code in expected[path]:
                ref = answers[code]["content"]["application/json"]["schema"]["$ref"]
                assert ref.endswith("/ErrorBody"), (path, code, ref)


def test_routes_without_models_of_their_kind_are_not_documented(models):
    only_predictor = {"shop": models["shop"]}
    with TestClient(create_app(only_predictor, LIMITS), base_url="http://localhost") as client:
        paths = client.get("/openapi.json").json()["paths"]
        assert "/models/{name}/generate" not in paths and "/models/{name}/edit" not in paths
        assert client.post("/models/shop/generate", json={"n": 1}).status_code == 404


def test_guidance_range_matches_the_generator():
    from polymodal.recipes.generator import GUIDANCE_RANGE
    from polymodal.serve.messages import GUIDANCE_RANGE as SERVED

    assert SERVED == GUIDANCE_RANGE


# ------------------------------------------------------------------------ schemathesis

EXAMPLES_PER_OPERATION = 8  # per generation mode: 6 operations x 2 modes x 8 = 96 requests


@pytest.mark.parametrize("mode", ["positive", "negative"])
def test_the_api_answers_as_its_openapi_says(url, mode):
    """schemathesis' checks on requests it makes from the OpenAPI document: no 5xx, every
    answer as documented, schema-invalid requests refused. Schema-valid requests may still
    be refused (random bytes are no PNG; a row must have the model's columns), so that one
    check is left out. schemathesis' pytest plugin is not used: it does not run under this
    pytest, so the cases are drawn with Hypothesis directly."""
    schemathesis = pytest.importorskip("schemathesis")
    from hypothesis import HealthCheck, given, settings
    from hypothesis.errors import Unsatisfiable
    from schemathesis.specs.openapi.checks import positive_data_acceptance

    schema = schemathesis.openapi.from_url(url + "/openapi.json")
    statuses: dict[str, list[int]] = {}
    for result in schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy(generation_mode=schemathesis.GenerationMode(mode)))
        @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, derandomize=True,
                  database=None, suppress_health_check=list(HealthCheck))
        def conforms(case):
            response = case.call(timeout=60)
            statuses.setdefault(case.operation.label, []).append(response.status_code)
            case.validate_response(response, excluded_checks=[positive_data_acceptance])

        try:
            conforms()
        except Unsatisfiable:  # GET /health and /models take nothing that could be invalid
            assert mode == "negative" and "{name}" not in operation.path, operation.label
    # Every operation was exercised (in negative mode, each that takes something).
    assert len(statuses) == (6 if mode == "positive" else 4), statuses
    assert all(code < 500 for codes in statuses.values() for code in codes), statuses
