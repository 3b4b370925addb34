"""``leukos serve``: run the web service (REST API, CDS Hooks, web UI) with uvicorn."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from leukos.cli.main import app, user_errors


@app.command()
@user_errors
def serve(
    host: str | None = typer.Option(None, help="Interface to bind (default: LEUKOS_HOST, else 127.0.0.1)."),
    port: int | None = typer.Option(None, help="TCP port (default: LEUKOS_PORT, else 8000)."),
    examples: Path | None = typer.Option(None, help="Folder of example cases for the UI (default: ./examples)."),
    dev: bool = typer.Option(False, "--dev", help="Switch authentication off (loopback only, loud warning)."),
    format: str = typer.Option("text", "--format", help="text|json: how the start-up line is printed."),
) -> None:
    """Serve the REST API, CDS Hooks 2.0 services and the web UI. Settings: LEUKOS_* variables."""
    import json
    import logging

    import uvicorn

    from leukos.registry.settings import RegistrySettings
    from leukos.service.app import create_app, settle_gc, warm_up
    from leukos.service.settings import ServiceSettings

    if examples is None and not os.environ.get("LEUKOS_EXAMPLES_DIR") and Path("examples").is_dir():
        examples = Path("examples")
    overrides = {"host": host, "port": port, "examples_dir": examples}
    if dev:
        overrides["auth_disabled"] = True
    # Options left out (None) leave LEUKOS_HOST / LEUKOS_PORT / LEUKOS_EXAMPLES_DIR to apply.
    settings = ServiceSettings.from_env(os.environ, **overrides)
    RegistrySettings.from_env(os.environ)  # a bad LEUKOS_DATABASE_URL is refused before anything starts
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    # Built before the "web service on" line: a setting that cannot be served with (JWKS, data folder,
    # key file, state file, audit file) is refused with one message, and nothing claims to be serving.
    service = create_app(settings)
    warm_up(service)  # the first patient's call as quick as the next ones
    shown_host = f"[{settings.host}]" if ":" in settings.host else settings.host  # an IPv6 address in a URL
    url = f"http://{shown_host}:{settings.port}/"
    if format == "json":
        typer.echo(json.dumps({"url": url, "auth": "disabled" if settings.auth_disabled else "on"}))
    else:
        typer.echo(f"leukos web service on {url} (API docs {url}docs, CDS Hooks {url}cds-services)")
    # access_log off: request lines would carry case ids / query strings into the application log.
    settle_gc()  # start-up objects out of the collector's generations; thresholds for serving
    uvicorn.run(service, host=settings.host, port=settings.port, access_log=False,
                log_level="info", server_header=False)
