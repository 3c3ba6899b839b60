"""Wire models of the VTEX protocols this service implements. No I/O lives here."""
