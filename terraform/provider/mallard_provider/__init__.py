"""Terraform provider for the Mallard control plane, built on the `tf` framework."""

__version__ = "0.1.0"
