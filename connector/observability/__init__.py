"""What operators see of a running connector.

- `logs`: JSON (or text) log lines with the request id, card data masked before any handler
  sees a record;
- `middleware`: the request id, the HTTP metrics and the access log, for every request;
- `metrics`: the Prometheus metrics and the `/metrics` exposition, multi-process aware;
- `repository`: the queries behind the database gauges.
"""

from connector.observability.logs import REQUEST_ID, configure_logging

__all__ = ["REQUEST_ID", "configure_logging"]
