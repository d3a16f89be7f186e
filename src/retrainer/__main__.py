"""``python -m retrainer`` runs the command line."""

from retrainer.cli import main

main()
