"""``leukos serve``: run the web service (REST API, CDS Hooks, web UI) with uvicorn."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from leukos.cli.main import app, user_errors


@app.command()
@user_errors
def serve(
    host: str = typer.Option("127.0.0.1", help="Interface to bind. Loopback by default."),
    port: int = typer.Option(8000, help="TCP port."),
    examples: Path | None = typer.Option(None, help="Folder of example cases for the UI (default: ./examples)."),
    dev: bool = typer.Option(False, "--dev", help="Switch authentication off (loopback only, loud warning)."),
    format: str = typer.Option("text", "--format", help="text|json: how the start-up line is printed."),
) -> None:
    """Serve the REST API, CDS Hooks 2.0 services and the web UI. Settings: LEUKOS_* variables."""
    import json
    import logging

    import uvicorn

    from leukos.service.app import create_app, settle_gc, warm_up
    from leukos.service.settings import ServiceSettings

    if examples is None and Path("examples").is_dir():
        examples = Path("examples")
    overrides = {"host": host, "port": port, "examples_dir": examples}
    if dev:
        overrides["auth_disabled"] = True
    settings = ServiceSettings.from_env(os.environ, **overrides)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    url = f"http://{settings.host}:{settings.port}/"
    if format == "json":
        typer.echo(json.dumps({"url": url, "auth": "disabled" if settings.auth_disabled else "on"}))
    else:
        typer.echo(f"leukos web service on {url} (API docs {url}docs, CDS Hooks {url}cds-services)")
    # access_log off: request lines would carry case ids / query strings into the application log.
    service = create_app(settings)
    warm_up(service)  # the first patient's call as quick as the next ones
    settle_gc()  # start-up objects out of the collector's generations; thresholds for serving
    uvicorn.run(service, host=settings.host, port=settings.port, access_log=False,
                log_level="info", server_header=False)
