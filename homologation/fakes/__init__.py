"""Fakes of the parties around the connector, served over real HTTP: a provider's core speaking
the acquirer API, and VTEX's Secure Proxy. Run one with `python -m homologation.fakes`."""
