"""Payments: the Payment Provider Protocol's routes, use cases, state machine and storage."""
