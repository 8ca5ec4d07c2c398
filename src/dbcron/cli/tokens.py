"""`manage-tasks token`: tokens for the daemon's HTTP API (see docs/http-api.md)."""

from __future__ import annotations

import click

from dbcron.cli.app import App, local, pass_app, print_json, table
from dbcron.vocabulary import TOKEN_SCOPES, TokenScope


@click.group()
def token() -> None:
    """Create, list and revoke tokens of the HTTP API."""


@token.command()
@click.argument("name")
@click.option("--scope", type=click.Choice(TOKEN_SCOPES), required=True,
              help="read: GET endpoints and the status page; write: also run-now, "
                   "enable, disable.")
@pass_app
def create(app: App, name: str, scope: TokenScope) -> None:
    """Create a token and print it once: only its hash is stored."""
    from dbcron.services.tokens import create as create_token

    secret = create_token(app.store, name, scope, app.now())
    click.echo(secret)
    click.echo(f"token '{name}' ({scope}) created; it is shown only now, store it safely",
               err=True)


@token.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@pass_app
def list_(app: App, as_json: bool) -> None:
    """List tokens (names, scopes, dates; never the tokens themselves)."""
    from dbcron.services.tokens import listing

    rows = listing(app.existing_store)
    if as_json:
        print_json([t.to_json() for t in rows])
        return
    if not rows:
        click.echo("no tokens; create one with 'manage-tasks token create NAME --scope read'")
        return
    table([[t.name, t.scope, local(t.created_at), local(t.revoked_at) if t.revoked_at
            else "active"] for t in rows], ["NAME", "SCOPE", "CREATED", "REVOKED"])


@token.command()
@click.argument("name")
@pass_app
def revoke(app: App, name: str) -> None:
    """Revoke a token: requests carrying it are refused from now on."""
    from dbcron.services.tokens import revoke as revoke_token

    revoke_token(app.existing_store, name, app.now())
    click.echo(f"token '{name}' revoked")


COMMANDS = [token]
