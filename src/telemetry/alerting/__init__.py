"""Alerting: Prometheus-format rules over metrics, event rules over the stream,
Alertmanager-format notifications through a durable outbox, and silences.

``rimp serve --rules FILE`` runs it; ``rimp rules check FILE`` checks a file offline.
The pieces, from the file to the receiver: :mod:`~telemetry.alerting.rules` (the file),
:mod:`~telemetry.alerting.state` (pending/firing/resolved),
:mod:`~telemetry.alerting.eventwindows` (event rules' memory of the stream),
:mod:`~telemetry.alerting.notify` (grouping and timing),
:mod:`~telemetry.alerting.store` (what survives a restart),
:mod:`~telemetry.alerting.delivery` (the outbox's sender) and
:mod:`~telemetry.alerting.engine`, which runs them. It needs the ``server`` extra
(PromQL and YAML).
"""

from telemetry.alerting.engine import AlertEngine
from telemetry.alerting.rules import RulesError, RuleSet, load_rules, parse_rules
from telemetry.alerting.store import AlertStore

__all__ = ["AlertEngine", "AlertStore", "RuleSet", "RulesError", "load_rules", "parse_rules"]
