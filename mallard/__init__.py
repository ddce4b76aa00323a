"""Mallard: take a model from a notebook to production.

This package is the public SDK and the `mallard` command line. Later releases add the model
SDK (`mallard.Model`) and feature definitions (`mallard.FeatureSet`) here.
"""

from mallard.client import ApiError, ControlPlaneClient
from shared import __version__

__all__ = ["ApiError", "ControlPlaneClient", "__version__"]
