"""``polymodal serve``, ``export``, ``inspect-model``, ``demo`` and ``version``: using
saved models, and the main job on built-in data."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console

from polymodal.cli.common import (
    Device,
    Verbosity,
    app,
    command,
    device_option,
    info,
    out,
)


@command(app, "serve", example="polymodal serve runs/price runs/gen --port 8000")
def serve(
    model_dirs: list[Path] = typer.Argument(..., help="Model folders (Predictor or Generator) to serve."),
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to bind; 0.0.0.0 exposes the models to the network."),
    port: int = typer.Option(8000, "--port", help="TCP port."),
    name: list[str] = typer.Option([], "--name", help="A model's name in URLs, one per folder in order (default: folder names)."),
    workers: int = typer.Option(1, "--workers", help="Inference threads."),
    max_queue: int = typer.Option(8, "--max-queue", help="Requests that may wait for a worker before others get 503."),
    device: Device = device_option(),
    allow_host: list[str] = typer.Option([], "--allow-host", help="Another name clients reach the server by (Host header), beyond localhost and --host; '*' allows any."),
    cors_origin: list[str] = typer.Option([], "--cors-origin", help="An origin whose web pages may call the API, e.g. http://localhost:3000 (default: none)."),
) -> None:
    """Serve models over HTTP with a web page at /, until Ctrl+C (which lets running requests finish)."""
    from polymodal.serve import ServeLimits, run_server

    def ready(models) -> None:
        for served in models.values():
            info(f"serving {served.kind} [bold]{served.name}[/] from {served.path}")
        shown = f"[{host}]" if ":" in host else host
        out.print(f"web page and API on http://{shown}:{port}/ (API docs at /docs)")
        if host in ("0.0.0.0", "::") and not allow_host:
            out.print("note: requests that name this machine by another name or address get "
                      "400; add --allow-host NAME for each name clients use")

    limits = ServeLimits(max_workers=workers, max_queue=max_queue)
    log_level = ("warning", "info", "debug")[Verbosity.level]
    run_server(model_dirs, host=host, port=port, names=name or None, limits=limits,
               allow_hosts=allow_host, cors_origins=cors_origin, on_ready=ready,
               device=device.value, log_level=log_level)


@command(app, "export", example="polymodal export runs/price --format onnx --out deploy/price")
def export(
    model_dir: Path = typer.Argument(..., help="A model folder (Predictor or Generator)."),
    out_dir: Path = typer.Option(..., "--out", "-o", help="Folder to write the export to."),
    format: str = typer.Option("onnx", "--format", help="onnx (the only format so far)."),
    force: bool = typer.Option(False, "--force", help="Replace an earlier export in --out."),
) -> None:
    """Export a saved model as ONNX graphs with a numpy runtime.py that needs no torch:
    a predictor scores raw rows, a generator samples images (see OUT/README.md)."""
    from polymodal.workflows.export import export_model

    kind, path = export_model(model_dir, out_dir, format=format, force=force)
    out.print(f"exported the {kind} to {path} (usage in {path / 'README.md'})", soft_wrap=True)


@command(app, "inspect-model", example="polymodal inspect-model runs/price")
def inspect_model(
    model_dir: Path = typer.Argument(..., help="A model folder (Predictor or Generator)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document instead."),
) -> None:
    """List a model folder's files, kinds and versions, and whether it would load — without
    loading it. Loading a folder never runs code from it; exit 2 when it would be refused."""
    from polymodal.api.model_folder import inspect_folder

    report = inspect_folder(model_dir)
    if as_json:
        out.print_json(json.dumps(report.to_dict()))
    else:
        out.print(f"[bold]{report.path}[/]: {report.kind or 'unknown'} model, format_version "
                  f"{report.format_version or 'missing'}")
        if report.versions:
            out.print("written with " + ", ".join(f"{k} {v}" for k, v in report.versions.items()),
                      highlight=False)
        width = max((len(f.path) for f in report.files), default=0)
        for f in report.files:
            out.print(f"  {f.path:<{width}}  {f.size_bytes:>11,} B  {f.kind:<11}  {f.detail}",
                      highlight=False, soft_wrap=True)
            if f.problem:
                out.print(f"  [bold red]refused:[/] {f.problem}", highlight=False, soft_wrap=True)
        for note in report.notes:
            out.print(f"note: {note}", highlight=False)
        out.print("loads as data, runs no code: " + ("yes" if report.loadable else "[bold red]no[/]"))
    if not report.loadable:
        raise typer.Exit(2)


# ---------------------------------------------------------------------------- demo


@command(app, "demo", example="polymodal demo --time-limit 300 --out demo-out")
def demo(
    out_dir: Path = typer.Option(Path("demo-out"), "--out", help="Where the demo writes its files."),
    dataset: str = typer.Option("shapes", "--dataset", help="shapes (text-to-image) or fashion-mnist."),
    time_limit: float = typer.Option(
        200.0, "--time-limit", help="Seconds for the whole demo; the predictor, generator and "
                                    "augmentation each train in a share of the time left."
    ),
    n_rows: int | None = typer.Option(None, "--n-rows", help="Rows of the table (default: 1,500 shapes / 12,000 Fashion-MNIST)."),
    seed: int = typer.Option(0, "--seed"),
    device: Device = device_option(),
) -> None:
    """The main job on built-in data: inspect, predict, generate, edit, evaluate, augment, report."""
    from polymodal.workflows.demo import run_demo

    console = out if Verbosity.level > 0 else Console(quiet=True)
    result = run_demo(out_dir=out_dir, dataset=dataset, time_limit_s=time_limit, n_rows=n_rows,
                      seed=seed, console=console, verbosity=min(Verbosity.level, 1),
                      device=device.value)
    if Verbosity.level == 0:
        out.print(f"report: {result.out_dir / 'report.html'}", highlight=False)


@command(app, "version", example="polymodal version")
def version() -> None:
    """Print polymodal's version and its main dependencies'."""
    from polymodal import versions

    for k, v in versions().items():
        out.print(f"{k} {v}")
