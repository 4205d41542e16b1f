"""``python -m tradeloop`` runs the command line."""

from tradeloop.cli.app import run

run()
