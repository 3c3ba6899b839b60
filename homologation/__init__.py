"""QA's homologation suite (`homologation run`, README "Homologation") and the fakes of the
parties around the connector (`homologation.fakes`)."""
