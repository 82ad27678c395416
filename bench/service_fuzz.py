"""Fuzz the web service from its own OpenAPI document with schemathesis, over a real socket.

1. Trains two small models, bounded by epochs (not seconds): a Predictor on 200 rows of
   ``shapes`` (image, caption, categories, numbers) and a Generator on 300 digits
   conditioned on the label, saved under ``bench/out/service_fuzz/``.
2. Starts ``polymodal serve`` on a free 127.0.0.1 port as a subprocess (the project's own
   server start, default limits, one torch thread).
3. Runs ``schemathesis run`` against its ``/openapi.json``: every phase (examples,
   coverage, fuzzing, stateful), valid and invalid data, every check, at most
   ``--max-examples`` cases per operation and phase, a fixed seed, one worker; it goes on
   after a failed check (``--continue-on-failure``), so every operation gets its cases.
4. Reads schemathesis' NDJSON event log and prints the requests made, the answers by
   status, the 5xx answers, the schema violations (answers that are not as documented,
   and schema-invalid requests accepted) and the other findings by check. Exits 1 when
   there is any 5xx or schema violation.

"Schema-valid request rejected" (schemathesis' positive_data_acceptance) is reported but
is not a violation: the document cannot say that an upload must be a PNG, or which
columns a given model's rows need, so random schema-valid requests are mostly refused
with a 422 naming the field, as they should be.

Only loopback is contacted; schemathesis' run is bounded by examples, and the server is
stopped at the end. Usage::

    .venv/bin/python bench/service_fuzz.py                      # a few minutes on 2 cores
    .venv/bin/python bench/service_fuzz.py --max-examples 10    # quick look

This is a benchmark, not a test (tests/serve/test_serve_edge.py runs a short version).
The summary is printed and written to ``bench/out/service_fuzz.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
import warnings
from collections import Counter
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing downloads, even by accident

import httpx  # noqa: E402

OUT = Path(__file__).parent / "out"
# schemathesis checks whose failure means the service does not do what its document says.
VIOLATIONS = ("status_code_conformance", "content_type_conformance",
              "response_headers_conformance", "response_schema_conformance",
              "negative_data_rejection", "missing_required_header", "unsupported_method",
              "allow_header_conformance")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--max-examples", type=int, default=50,
                        help="most cases per operation and phase")
    parser.add_argument("--seed", type=int, default=0, help="schemathesis' random seed")
    parser.add_argument("--startup-s", type=float, default=180.0,
                        help="how long to wait for the server to answer /health")
    return parser.parse_args()


def train_models(folder: Path) -> list[Path]:
    """Fit and save a predictor on shapes and a generator on digits; return their folders."""
    import torch

    from polymodal import Generator, Predictor, datasets

    torch.set_num_threads(1)
    shapes = datasets.load("shapes", n=200, seed=0)
    digits, _ = datasets.load("digits", split=True, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        shop = Predictor("label", time_limit=None, text_encoder="hashed", verbosity=0
                         ).fit(shapes).save(folder / "shapes")
        t1 = time.perf_counter()
        gen = Generator(condition=["label"], time_limit=None, num_steps=4, verbosity=0
                        ).fit(digits.iloc[:300]).save(folder / "digits-gen")
        t2 = time.perf_counter()
    print(f"trained the predictor in {t1 - t0:.1f} s and the generator in {t2 - t1:.1f} s")
    return [Path(shop), Path(gen)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(dirs: list[Path], port: int, startup_s: float, log: Path) -> subprocess.Popen:
    command = [sys.executable, "-m", "polymodal.cli", "serve", *map(str, dirs), "--port",
               str(port)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    # Its log goes to a file: a pipe nobody reads fills up after some hundreds of access
    # lines, and the server then blocks writing the next one.
    with open(log, "w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + startup_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the server exited with {process.returncode}:\n"
                             f"{log.read_text()}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return process
        except httpx.TransportError:
            time.sleep(0.2)
    process.kill()
    raise SystemExit(f"the server did not answer within {startup_s} s")


def stop_server(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def run_schemathesis(url: str, report_dir: Path, *, max_examples: int, seed: int) -> int:
    """``schemathesis run`` over the server's document; its exit status."""
    command = [sys.executable, "-m", "schemathesis.cli", "run", f"{url}/openapi.json",
               "--checks", "all", "--mode", "all", "--max-examples", str(max_examples),
               "--seed", str(seed), "--workers", "1", "--request-timeout", "120",
               "--continue-on-failure",
               "--generation-database", "none", "--no-color", "--report", "ndjson",
               "--report-ndjson-path", str(report_dir / "events.ndjson")]
    with open(report_dir / "schemathesis.log", "w") as log:  # its cache goes there too
        return subprocess.run(command, stdout=log, stderr=subprocess.STDOUT,
                              cwd=report_dir).returncode


def summarise(events_path: Path) -> dict:
    """Requests, statuses and failed checks from schemathesis' NDJSON event log."""
    statuses: Counter = Counter()
    failed: Counter = Counter()
    per_operation: Counter = Counter()
    elapsed_s = None
    for line in events_path.read_text().splitlines():
        event = json.loads(line)
        if "EngineFinished" in event:
            elapsed_s = event["EngineFinished"].get("running_time")
        finished = event.get("ScenarioFinished")
        if finished is None:
            continue
        recorder = finished.get("recorder") or {}
        for interaction in (recorder.get("interactions") or {}).values():
            response = interaction.get("response")
            statuses["no answer" if response is None else str(response["status_code"])] += 1
            per_operation[recorder.get("label", "?")] += 1
        for checks in (recorder.get("checks") or {}).values():
            for check in checks:
                if check.get("status") == "failure":
                    failed[check["name"]] += 1
    server_errors = sum(n for code, n in statuses.items() if code.startswith("5"))
    return {
        "requests": sum(statuses.values()),
        "statuses": dict(sorted(statuses.items())),
        "server_errors": server_errors,
        "schema_violations": sum(failed[name] for name in VIOLATIONS),
        "failed_checks": dict(failed),
        "requests_per_operation": dict(per_operation),
        "schemathesis_s": elapsed_s,
    }


def main() -> int:
    args = parse_args()
    import schemathesis

    folder = OUT / "service_fuzz"
    folder.mkdir(parents=True, exist_ok=True)
    dirs = train_models(folder)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = start_server(dirs, port, args.startup_s, folder / "server.log")
    try:
        code = run_schemathesis(url, folder, max_examples=args.max_examples, seed=args.seed)
        health = httpx.get(url + "/health", timeout=10).json()
    finally:
        stop_server(server)
    summary = summarise(folder / "events.ndjson")
    summary.update({"schemathesis": schemathesis.__version__, "exit_code": code,
                    "max_examples": args.max_examples, "seed": args.seed,
                    "healthy_after": health["status"] == "ok"})
    print(f"schemathesis {summary['schemathesis']}, --max-examples {args.max_examples}, "
          f"seed {args.seed}: {summary['schemathesis_s'] or 0:.0f} s")
    print(f"requests: {summary['requests']:,} {summary['statuses']}")
    for operation, n in sorted(summary["requests_per_operation"].items()):
        print(f"  {operation}: {n:,}")
    print(f"5xx answers: {summary['server_errors']}")
    print(f"schema violations: {summary['schema_violations']}")
    others = {k: v for k, v in summary["failed_checks"].items() if k not in VIOLATIONS}
    print(f"other findings by check: {others or 'none'}")
    print(f"server healthy afterwards: {summary['healthy_after']}")
    (OUT / "service_fuzz.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"logs: {folder / 'schemathesis.log'}, {folder / 'server.log'}; summary: "
          f"{OUT / 'service_fuzz.json'}")
    return 1 if summary["server_errors"] or summary["schema_violations"] else 0


if __name__ == "__main__":
    sys.exit(main())
