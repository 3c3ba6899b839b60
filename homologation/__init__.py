"""QA's homologation tools: fakes of the parties around the connector, and (later) the suite."""
