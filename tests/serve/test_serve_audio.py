"""Audio through the service: upload a clip (WAV, FLAC or OGG), get a prediction; a bad clip
(not audio, empty, a video, too long) is a 4xx naming its field.

The model is ``tones`` (tests/conftest.py): a predictor whose only feature is the audio
column ``clip``, trained to tell low tones from high ones, so a prediction that is right
for both pitches shows that the uploaded sound reached the model. Requests go over a real
loopback socket, to the application under uvicorn in this process and, once, to a server
started as a user starts it (``polymodal serve``).
"""

from __future__ import annotations

import base64
import io
import json

import httpx
import numpy as np
import pandas as pd
import pytest
import soundfile
from PIL import Image

from polymodal import Generator, Predictor
from polymodal.serve import ServeLimits, create_app, load_models

pytestmark = pytest.mark.usefixtures("one_thread")

LIMITS = ServeLimits(max_audio_s=30, max_upload_bytes=4_000_000)
FORMATS = {"wav": ("WAV", "audio/wav"), "flac": ("FLAC", "audio/flac"),
           "ogg": ("OGG", "audio/ogg")}


@pytest.fixture(scope="module")
def tones_dir(model_dirs):
    return model_dirs["tones"]


@pytest.fixture(scope="module")
def url(tones_dir, model_dirs, clip_gen_dir, live_server):
    models = load_models([tones_dir, model_dirs["predictor"], clip_gen_dir],
                         ["tones", "shop", "clip-gen"])
    with live_server(create_app(models, LIMITS)) as base:
        yield base


def silence(seconds: int, *, file_format: str = "OGG", rate_hz: int = 8000) -> bytes:
    """``seconds`` of silence as a compressed file: long to hear, small to send."""
    buffer = io.BytesIO()
    # Written a second at a time: libsndfile's Vorbis encoder can crash on one huge write.
    with soundfile.SoundFile(buffer, "w", rate_hz, 1, format=file_format) as handle:
        for _ in range(seconds):
            handle.write(np.zeros(rate_hz, dtype=np.float32))
    return buffer.getvalue()


def upload(http, data: bytes, name: str, mime: str = "application/octet-stream",
           model: str = "tones") -> httpx.Response:
    return http.post(f"/models/{model}/predict", files={"clip": (name, data, mime)})


def assert_error(response, status: int, field: str, *needles: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"detail", "field"} and body["field"] == field, body
    assert body["detail"].startswith(f"{field}: "), body
    for needle in needles:
        assert needle in body["detail"], (needle, body)
    return body["detail"]


@pytest.mark.parametrize("extension", sorted(FORMATS))
def test_a_clip_upload_gets_the_prediction_the_python_api_gives(http, tones_dir, make_clip,
                                                               tone_hz, extension):
    file_format, mime = FORMATS[extension]
    predictor = Predictor.load(tones_dir)
    for pitch, hz in tone_hz.items():
        clip = make_clip(hz * 1.02, seed=99, file_format=file_format)  # a tone not trained on
        response = upload(http, clip, f"tone.{extension}", mime)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["predictions"] == [pitch]
        expected = predictor.predict_proba(pd.DataFrame({"clip": [clip]}))
        got = [[row[c] for c in body["classes"]] for row in body["probabilities"]]
        np.testing.assert_allclose(got, expected, atol=1e-5)
        # The same clip as base64 in JSON is the same request.
        as_json = http.post("/models/tones/predict",
                            json={"rows": [{"clip": base64.b64encode(clip).decode()}]})
        assert as_json.json() == body


def test_several_rows_each_with_its_clip(http, make_clip, tone_hz):
    files = {f"clip[{i}]": (f"{i}.flac", make_clip(tone_hz[p], seed=i, file_format="FLAC"),
                            "audio/flac")
             for i, p in enumerate(["high", "low", "low"])}
    response = http.post("/models/tones/predict", data={"rows": "[{}, {}, {}]"}, files=files)
    assert response.status_code == 200, response.text
    assert response.json()["predictions"] == ["high", "low", "low"]


def test_8_bit_stereo_and_8_channel_clips_are_heard_as_mono(http, make_clip, tone_hz):
    for options in ({"subtype": "PCM_U8"}, {"channels": 2}, {"channels": 8, "rate_hz": 8000}):
        clip = make_clip(tone_hz["high"], file_format="WAV", **options)
        response = upload(http, clip, "odd.wav", "audio/wav")
        assert response.status_code == 200, (options, response.text)
        assert response.json()["predictions"] == ["high"], options


@pytest.mark.parametrize("data, name, status, needles", [
    (b"just some words, not a recording", "notes.txt", 422, ["not decodable audio",
                                                             "upload a WAV, FLAC or OGG"]),
    (b"", "empty.wav", 422, ["empty"]),
    ("video", "phone.mp4", 422, ["a video file, not audio"]),
    ("ten minutes", "long.ogg", 413, ["600.0 s long", "max_audio_s=30"]),
    ("cut wav", "cut.wav", 422, ["not decodable audio"]),
])
def test_bad_clips_are_4xx_naming_the_field(http, make_clip, video_bytes, data, name, status,
                                            needles):
    if data == "video":
        data = video_bytes
    elif data == "ten minutes":
        data = silence(600)
    elif data == "cut wav":
        data = make_clip(300.0)[:30]  # the RIFF header, cut off before its format chunk
    assert_error(upload(http, data, name), status, "clip", *needles)
    as_json = http.post("/models/tones/predict",
                        json={"rows": [{"clip": base64.b64encode(data).decode()}]})
    assert_error(as_json, status, "rows[0].clip", *needles)


def test_a_long_clip_is_refused_from_its_header_in_every_format(http):
    for file_format in ("WAV", "FLAC", "OGG"):
        data = silence(31, file_format=file_format)
        assert_error(upload(http, data, "long"), 413, "clip", "31.0 s long", "max_audio_s=30")


def test_a_bad_clip_for_one_row_names_that_row(http, make_clip, tone_hz, video_bytes):
    files = {"clip[0]": ("a.wav", make_clip(tone_hz["low"]), "audio/wav"),
             "clip[1]": ("b.mp4", video_bytes, "video/mp4")}
    response = http.post("/models/tones/predict", data={"rows": "[{}, {}]"}, files=files)
    assert_error(response, 422, "clip[1]", "video file")


def test_a_clip_for_a_model_with_every_modality(http, make_clip, video_bytes):
    clip = make_clip(440.0, seconds=0.2, rate_hz=8000, file_format="OGG")
    row = {"price": 3.0, "color": "red", "tags": "a", "date": "2024-01-03"}
    response = http.post("/models/shop/predict", data={"rows": json.dumps([row])},
                         files={"audio": ("a.ogg", clip, "audio/ogg")})
    assert response.status_code == 200, response.text
    assert response.json()["predictions"][0] in ("no", "yes")
    assert_error(http.post("/models/shop/predict", data={"rows": json.dumps([row])},
                           files={"audio": ("a.mp4", video_bytes, "video/mp4")}),
                 422, "audio", "video file")


def test_a_generator_conditioned_on_audio_takes_clips_as_base64_never_as_paths(
        http, clip_gen_dir, make_clip, video_bytes):
    clips = [make_clip(hz, seconds=1.0, rate_hz=8000, file_format="FLAC") for hz in (220, 1760)]
    # A clip's base64 is longer than a text condition may be (max_prompt_chars): that
    # bound is for texts, not files.
    assert min(len(base64.b64encode(c)) for c in clips) > LIMITS.max_prompt_chars
    request = {"n": 4, "steps": 2, "seed": 3,
               "conditions": {"audio": [base64.b64encode(c).decode() for c in clips]}}
    response = http.post("/models/clip-gen/generate", json=request)
    assert response.status_code == 200, response.text
    expected = Generator.load(clip_gen_dir).sample(4, conditions={"audio": clips}, num_steps=2,
                                                   seed=3)
    got = np.stack([np.asarray(Image.open(io.BytesIO(base64.b64decode(s))))
                    for s in response.json()["images"]])
    np.testing.assert_array_equal(got, expected)
    # A path on the server is never opened, even one that is a real clip.
    server_clip = str(clip_gen_dir.parent / "audio" / "clip_1.wav")
    assert_error(http.post("/models/clip-gen/generate",
                           json={"n": 2, "steps": 2, "conditions": {"audio": server_clip}}),
                 422, "conditions.audio", "base64")
    bad = {"n": 2, "steps": 2, "conditions": {"audio": [request["conditions"]["audio"][0],
                                                        base64.b64encode(video_bytes).decode()]}}
    assert_error(http.post("/models/clip-gen/generate", json=bad), 422, "conditions.audio[1]",
                 "video file")


def test_polymodal_serve_answers_a_clip_upload(serve_process, tones_dir, make_clip, tone_hz,
                                              video_bytes):
    with serve_process(tones_dir, "--name", "tones") as (_process, url), \
            httpx.Client(base_url=url, timeout=60) as http:
        columns = http.get("/models/tones").json()["columns"]
        assert [(c["name"], c["modality"]) for c in columns] == [("clip", "audio")]
        clip = make_clip(tone_hz["high"] * 0.98, seed=7, file_format="FLAC")
        response = upload(http, clip, "tone.flac", "audio/flac")
        assert response.status_code == 200, response.text
        assert response.json()["predictions"] == ["high"]
        assert_error(upload(http, silence(61), "long.ogg"), 413, "clip", "max_audio_s=60")
        assert_error(upload(http, video_bytes, "phone.mp4"), 422, "clip", "video file")
        assert http.get("/health").json()["status"] == "ok"
