"""The shipped recipes: YAML files of this package (package data), each the settings of one of
the best measured runs of docs/RESULTS.md. :mod:`ocdl.run.recipes` reads them
(``ocdl recipes`` lists them, ``ocdl solve --recipe NAME`` runs one)."""
