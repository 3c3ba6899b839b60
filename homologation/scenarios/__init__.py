"""The scenarios of the three protocols' homologation, one module per protocol."""
