"""``python -m ocdl`` runs the ``ocdl`` command."""
from .cli import main

main()
