"""Bearer tokens with scopes (``ingest``, ``read``), from a file or ``RIMP_TOKENS``."""

from __future__ import annotations

import hmac
import ipaddress
import os
from pathlib import Path

__all__ = ["SCOPES", "TokenError", "Tokens", "is_loopback"]

SCOPES = ("ingest", "read")


class TokenError(ValueError):
    """A tokens file or variable cannot be parsed."""


class Tokens:
    """The configured tokens and their scopes; checks are constant-time.

    File format: one token per line, ``TOKEN SCOPE[,SCOPE]`` (``#`` starts a
    comment). ``RIMP_TOKENS``: ``TOKEN:SCOPE[,SCOPE];TOKEN:SCOPE...``.
    """

    def __init__(self, entries: dict[str, frozenset[str]]) -> None:
        self._entries = [(t.encode(), scopes) for t, scopes in entries.items()]

    @property
    def enabled(self) -> bool:
        """True when at least one token is configured."""
        return bool(self._entries)

    def scopes(self, token: str | None) -> frozenset[str] | None:
        """The scopes of ``token``, or None when it is unknown."""
        if token is None:
            return None
        given = token.encode()
        found = None
        for known, scopes in self._entries:  # compare with every token: no early exit
            if hmac.compare_digest(known, given):
                found = scopes
        return found

    @classmethod
    def load(cls, path: str | os.PathLike[str] | None, env: str | None) -> Tokens:
        """Tokens from a file and/or the ``RIMP_TOKENS`` text.

        Raises:
            TokenError: a line or entry is malformed, naming where.
        """
        entries: dict[str, frozenset[str]] = {}
        if path is not None:
            for n, line in enumerate(Path(path).read_text().splitlines(), 1):
                text = line.split("#", 1)[0].strip()
                if not text:
                    continue
                parts = text.split()
                if len(parts) != 2:
                    raise TokenError(f"{path}:{n}: expected 'TOKEN SCOPE[,SCOPE]'")
                entries[parts[0]] = _scopes(parts[1], f"{path}:{n}")
        if env:
            for item in env.split(";"):
                if not item.strip():
                    continue
                token, sep, scopes = item.strip().rpartition(":")
                if not sep or not token:
                    raise TokenError(f"RIMP_TOKENS: {item!r}: expected TOKEN:SCOPE[,SCOPE]")
                entries[token] = _scopes(scopes, "RIMP_TOKENS")
        return cls(entries)


def _scopes(text: str, where: str) -> frozenset[str]:
    scopes = frozenset(s for s in text.split(",") if s)
    unknown = scopes - set(SCOPES)
    if not scopes or unknown:
        raise TokenError(f"{where}: scopes must be among {', '.join(SCOPES)}, got {text!r}")
    return scopes


def is_loopback(host: str) -> bool:
    """True for localhost and loopback addresses."""
    if host in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
