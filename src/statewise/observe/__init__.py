"""Watching a running store: alert evaluation, Prometheus metrics and OpenTelemetry traces."""
