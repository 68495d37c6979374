"""PromQL over the storage protocol (for the Prometheus-compatible query API)."""
