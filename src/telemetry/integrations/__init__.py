"""One-line instrumentation of a Python service; each module imports its framework only
when used, and the core imports none of them.

- :mod:`telemetry.integrations.asgi`: ``TelemetryMiddleware`` for Starlette, FastAPI and
  any ASGI app;
- :mod:`telemetry.integrations.wsgi`: ``TelemetryMiddleware`` for Flask and any WSGI app;
- :mod:`telemetry.integrations.django`: ``TelemetryMiddleware`` for Django's ``MIDDLEWARE``;
- :mod:`telemetry.integrations.httpx` and :mod:`telemetry.integrations.requests`: outgoing
  HTTP requests;
- :mod:`telemetry.integrations.runtime`: process and runtime metrics, uncaught
  exceptions, event-loop lag (also ``TelemetryConfig(runtime_metrics=True,
  capture_exceptions=True)``).

Every metric and tag name follows OpenTelemetry's semantic conventions
(``docs/integrations.md`` lists them).
"""
