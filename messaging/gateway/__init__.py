"""The gateway: Starlette app, WebSocket sessions, HTTP API, health and metrics."""
