"""The ``custodes`` command: a thin layer over the packages (DESIGN.md §9)."""

from custodes.cli._app import app, main

__all__ = ["app", "main"]
