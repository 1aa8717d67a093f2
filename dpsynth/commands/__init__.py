"""CLI command groups; each module exposes ``register(app)``, wired up by :func:`register_all`."""

from __future__ import annotations

import importlib

import typer

_GROUPS = (
    "dpsynth.commands.budget",
    "dpsynth.commands.audit",
    "dpsynth.commands.release",
    "dpsynth.commands.audit_generator",
    "dpsynth.commands.text",
    "dpsynth.commands.card",
    "dpsynth.commands.rounds",
    "dpsynth.commands.review",
)


def register_all(app: typer.Typer) -> None:
    """Attach every command group that is installed to ``app``."""
    for module_name in _GROUPS:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue
        module.register(app)
