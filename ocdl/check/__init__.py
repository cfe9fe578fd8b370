"""Checking ocdl's solutions of small problems against casadi (IPOPT / bonmin).

:mod:`.casadi_export` builds the problem in casadi (casadi is imported lazily: it is optional,
``pip install 'ocdl[casadi]'``), :mod:`.residuals` computes Pontryagin residuals and
:mod:`.runner` runs both sides and compares them (``ocdl check``).
"""
from .runner import CheckReport, check, render

__all__ = ["CheckReport", "check", "render"]
