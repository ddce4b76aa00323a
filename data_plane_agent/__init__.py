"""The data-plane agent: runs in the customer's network, dials out to the control plane over mTLS."""

from shared import __version__

__all__ = ["__version__"]
