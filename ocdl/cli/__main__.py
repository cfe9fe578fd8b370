"""``python -m ocdl.cli`` runs the ``ocdl`` command (useful where the console script is absent)."""
from . import main

main()
