"""Fuzzing in the test command, bounded in time: the decoders every door runs on untrusted
bytes, and the doors themselves over HTTP. Any exception other than a refusal, and any 5xx,
is a failure. The same targets run for longer under atheris (fuzz/run.py)."""

from __future__ import annotations

import gzip
import json
import os
from typing import Any

import httpx
import pytest
from fuzz.targets import TARGETS
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

# JSON values, and records that are almost right: the shapes a decoder meets in the wild.
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
VALUES = st.recursive(
    SCALARS,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
FIELDS = st.sampled_from(
    ["source", "message", "type", "event_type", "metadata", "timestamp", "time_ns", "id",
     "name", "value", "unit", "tags"]
)  # fmt: skip
RECORDS = st.dictionaries(FIELDS, VALUES, max_size=8)
BODIES = st.one_of(
    st.binary(max_size=300),
    st.lists(RECORDS, max_size=5).map(lambda r: json.dumps(r).encode()),
    RECORDS.map(lambda r: json.dumps(r).encode()),
    st.lists(RECORDS, max_size=5).map(lambda r: "\n".join(map(json.dumps, r)).encode()),
    st.fixed_dictionaries({"events": st.lists(RECORDS, max_size=3),
                           "metrics": st.lists(RECORDS, max_size=3)}).map(
        lambda b: json.dumps(b).encode()
    ),
)  # fmt: skip
# RIMP_FUZZ_EXAMPLES=5000 ./dev test tests/protocols  runs a longer search than the default.
FUZZ = settings(
    max_examples=int(os.environ.get("RIMP_FUZZ_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


class TestDecoders:
    @pytest.mark.parametrize("name", sorted(TARGETS))
    def test_a_target_decodes_or_refuses_any_bytes(self, name: str) -> None:
        """Arbitrary and near-valid bodies: decoded, or refused with a RequestError."""
        target = TARGETS[name]

        @FUZZ
        @given(body=BODIES)
        def check(body: bytes) -> None:
            target(body)
            target(gzip.compress(body))

        check()


class TestDoors:
    @pytest.mark.parametrize("path", ["/api/v1/events", "/api/v1/metrics", "/api/v1/batch"])
    def test_no_body_makes_a_door_fail(self, client: httpx.Client, path: str) -> None:
        """Any body, JSON or NDJSON, plain or gzip, partial or not: a 2xx or 4xx, never a 5xx,
        and an error is always the JSON error format."""

        @FUZZ
        @given(
            body=BODIES,
            ndjson=st.booleans(),
            zipped=st.booleans(),
            partial=st.booleans(),
        )
        def check(body: bytes, ndjson: bool, zipped: bool, partial: bool) -> None:
            headers = {"Content-Type": "application/x-ndjson" if ndjson else "application/json"}
            if zipped:
                body = gzip.compress(body)
                headers["Content-Encoding"] = "gzip"
            r = client.post(path, params={"partial": str(partial).lower()}, content=body,
                            headers=headers)  # fmt: skip
            assert r.status_code < 500, (r.status_code, r.text)
            if r.status_code >= 400:
                assert set(r.json()) == {"error"}, r.text

        check()

    @pytest.mark.parametrize(
        "path",
        ["/api/v1/events", "/api/v1/events/counts", "/api/v1/metrics/cpu",
         "/api/v1/metrics/cpu/aggregate", "/api/v1/series"],
    )  # fmt: skip
    def test_no_query_makes_a_read_endpoint_fail(self, client: httpx.Client, path: str) -> None:
        """Any values of the documented query parameters: a 200 or a 400, never a 5xx."""
        names = ["since", "until", "limit", "bucket", "agg", "tags", "group_by", "type",
                 "source", "search", "name"]  # fmt: skip

        @FUZZ
        @given(params=st.dictionaries(st.sampled_from(names), st.text(max_size=30), max_size=4))
        def check(params: dict[str, Any]) -> None:
            r = client.get(path, params=params)
            assert r.status_code in (200, 400), (r.status_code, r.text, params)

        check()

    @pytest.mark.parametrize("path", ["/v1/logs", "/v1/metrics", "/v1/traces"])
    def test_no_body_makes_an_otlp_door_fail(self, client: httpx.Client, path: str) -> None:
        """Any body as protobuf or OTLP-JSON: 200 or a 4xx with a Status body, never a 5xx."""

        @FUZZ
        @given(body=BODIES, proto=st.booleans())
        def check(body: bytes, proto: bool) -> None:
            kind = "application/x-protobuf" if proto else "application/json"
            r = client.post(path, content=body, headers={"Content-Type": kind})
            assert r.status_code in (200, 400, 413), (r.status_code, r.text)

        check()
