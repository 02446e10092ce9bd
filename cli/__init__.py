"""The ``memsnap`` command line: the typer app on top of the recorder and the analyzer.

One module per command family (``record`` and ``import``; the analysis commands; ``sql``/``query``/
``export-db``), the options they share declared once in :mod:`cli.options`, and one place that turns errors
into ``Error: <what> — <how to fix>`` (:mod:`cli.app`).  Analyzer modules, and with them duckdb, are
imported inside the analyzer commands only: ``memsnap record`` on a production host never loads them, and
works in the recorder-only install (``pip install memsnap``).
"""
from .app import app, main

__all__ = ["app", "main"]
