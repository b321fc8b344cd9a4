"""``python -m statewise`` runs the command line."""

from statewise.cli import main

main()
