"""A provider-side VTEX connector: Payment Provider, Anti-fraud and Gift Card protocols."""

__version__ = "0.1.0"
__all__ = ["__version__"]
