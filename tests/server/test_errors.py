"""In-process tests of HTTP errors outside the API's handlers: they answer as JSON."""

from __future__ import annotations

import httpx


class TestHttpErrorsAsJson:
    """Errors raised by routing itself use the API's error format too."""

    def test_unknown_paths_and_methods_answer_in_the_error_format(
        self, client: httpx.Client
    ) -> None:
        """404 and 405 carry the API's JSON error body, not plain text."""
        missing = client.get("/api/v1/nothing-here")
        assert missing.status_code == 404
        assert missing.json()["error"]["code"] == "not_found"
        wrong = client.delete("/api/v1/events")
        assert wrong.status_code == 405
        assert wrong.json()["error"]["code"] == "method_not_allowed"
