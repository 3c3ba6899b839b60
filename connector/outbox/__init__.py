"""Durable outbound calls: rows written with the state change, delivered afterwards, retried."""
