"""`scheduler-daemon`: the process systemd's ExecStart runs, in the foreground."""

from __future__ import annotations

import os

import click


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--store", metavar="URL", help="Store URL (overrides DBCRON_STORE).")
@click.option("--state-dir", metavar="DIR", help="State directory (overrides DBCRON_STATE_DIR).")
@click.option("--metrics-address", metavar="HOST:PORT",
              help="Serve Prometheus metrics here, e.g. 127.0.0.1:9464 (DBCRON_METRICS_ADDRESS).")
@click.option("--http-address", metavar="HOST:PORT",
              help="Serve the HTTP API and status page here, e.g. 127.0.0.1:8765 "
                   "(DBCRON_HTTP_ADDRESS).")
@click.version_option(package_name="dbcron")
def main(store: str | None, state_dir: str | None, metrics_address: str | None,
         http_address: str | None) -> None:
    """Run scheduled tasks: SIGHUP reloads the store, SIGTERM drains and stops."""
    from dbcron.daemon.lifecycle import Daemon
    from dbcron.errors import DbcronError
    from dbcron.logs import configure_logging
    from dbcron.settings import load_environment, load_settings

    try:
        environ = dict(os.environ)  # before .env joins it, so `config` can tell them apart
        load_environment()
        settings = load_settings(environ, overrides={"store": store, "state_dir": state_dir,
                                            "metrics_address": metrics_address,
                                            "http_address": http_address})
    except DbcronError as exc:
        raise click.ClickException(str(exc)) from None
    configure_logging(os.environ, settings.log_level, settings.log_format)
    metrics = None
    if settings.metrics_address:
        from dbcron.daemon.metrics import Metrics

        metrics = Metrics()
    daemon = Daemon(settings, dict(os.environ), metrics=metrics)
    try:
        daemon.run()
    except DbcronError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        if metrics is not None:
            metrics.stop()
