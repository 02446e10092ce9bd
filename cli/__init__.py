"""The ``memsnap`` command line: the typer app on top of the recorder and the analyzer.

One module per command family (``record`` and ``import``; the analysis commands; ``sql``/``query``/
``export-db``), the options they share declared once in :mod:`cli.options`, and one place that turns errors
into ``Error: <what> — <how to fix>`` (:mod:`cli.app`).  Analyzer modules, and with them duckdb, are
imported inside the analyzer commands only: ``memsnap record`` on a production host never loads them, and
works in the recorder-only install (``pip install memsnap``).

``memsnap --help`` (and ``-h``) alone is answered from its text rendered in advance (:mod:`cli.help_text`),
without importing typer, when the terminal gives it the width that text was rendered for; anything else
goes to the typer app, which is imported on first use (``cli.app``, ``cli.main``).
"""
import sys
import types


def main() -> None:
    from . import help_text

    if help_text.serve(sys.argv[1:]):
        return
    _app_module().main()


def _app_module():
    import importlib

    return importlib.import_module("cli.app")


class _Package(types.ModuleType):
    """``cli.app`` is the typer app (not the module cli/app.py), whatever was imported first."""

    @property
    def app(self):
        return _app_module().app

    @app.setter
    def app(self, value) -> None:
        pass  # the import system sets the submodule cli.app here once it is loaded: the app stays


sys.modules[__name__].__class__ = _Package

__all__ = ["app", "main"]
