"""Commands on API tokens: token create, token list, token revoke."""

from __future__ import annotations

from typing import Annotated

import typer

from retrainer.cli.app import ConfigOpt, JsonOpt, handle_errors, open_project
from retrainer.cli.render import print_json, render_token_created, render_tokens, token_json


@handle_errors
def create(
    name: Annotated[
        str,
        typer.Option(
            "--name", help="Who or what uses the token (e.g. checkout-service).", show_default=False
        ),
    ],
    scope: Annotated[
        list[str],
        typer.Option(
            "--scope",
            help="predict, feedback, read or admin (all of them); repeatable.",
            show_default=False,
        ),
    ],
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Make an API token and print its secret, once: only its sha256 is stored.

    The secret alone goes to stdout (TOKEN=$(retrainer token create ...)); what it is, and the warning, to stderr.
    """  # noqa: E501
    from retrainer.engine.tokens import create_token

    with open_project(config) as project:
        token, secret = create_token(project, name=name, scopes=scope, now=project.clock.now())
    if as_json:
        print_json({**token_json(token), "secret": secret, "warning": SECRET_WARNING})
        return
    render_token_created(token, secret, SECRET_WARNING)


SECRET_WARNING = "the secret is shown once and not stored (only its sha256): copy it now"


@handle_errors
def list_(config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """The API tokens, revoked ones too: id, name, scopes, dates. Never a secret."""
    from retrainer.engine.tokens import list_tokens

    with open_project(config) as project:
        tokens = list_tokens(project)
    if as_json:
        print_json([token_json(t) for t in tokens])
        return
    render_tokens(tokens)


@handle_errors
def revoke(
    token_id: Annotated[
        str, typer.Argument(metavar="ID", help="The token's id (retrainer token list).")
    ],
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Revoke an API token: refused from now on (by a running server within 5 s)."""
    from retrainer.cli.render import render_token_revoked
    from retrainer.engine.tokens import revoke_token

    with open_project(config) as project:
        now = project.clock.now()
        token = revoke_token(project, token_id, now=now)
    if as_json:
        print_json(token_json(token))
        return
    render_token_revoked(token, already=token.revoked_at != now)
