"""The Anti-fraud Provider Protocol: routes, the rules engine, the review queue."""
