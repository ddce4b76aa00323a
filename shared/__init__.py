"""Code both planes import: generated protobuf stubs, errors, identity and crypto helpers."""

__version__ = "0.1.0"
