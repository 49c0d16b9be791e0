"""``python -m candlecast``: the same as the ``candlecast`` console script."""

from candlecast.cli import main

main()
