"""HTTP: the REST API, workers over HTTP, the dashboard, /metrics and probes."""

from runq.http.app import build_app
from runq.http.server import DEFAULT_HTTP_PORT, HttpServer

__all__ = ["DEFAULT_HTTP_PORT", "HttpServer", "build_app"]
