"""Acquirers behind one port: `base.Acquirer`. `sandbox` is built in; more plug in here."""
