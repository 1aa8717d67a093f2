"""A Typer app holding one dpsynth command group, as ``dpsynth.cli`` mounts it, for CliRunner.

Import as ``from cli_app import cli_app`` (``tests/`` is on the path).
"""

from __future__ import annotations

from collections.abc import Callable

import typer


def cli_app(register: Callable[[typer.Typer], None]) -> typer.Typer:
    """An app with the commands ``register`` adds, under a group callback so that each stays
    a subcommand (``app audit ...``) exactly as in ``dpsynth``."""
    app = typer.Typer()
    register(app)

    @app.callback()
    def main() -> None:
        """Test app."""

    return app
