"""``python -m tracekit``: the same as the ``tracekit`` command."""

from .cli import main

main()
