"""The templates of alert labels and annotations: the part of Go's ``text/template`` that
Prometheus rule files use.

``{{ $labels.service }}``, ``{{ $value }}``, ``{{ $value | humanize }}``,
``{{ printf "%.2f" $value }}``, ``{{ index $labels "le" }}``, ``{{ $externalURL }}`` and the
``.Labels``/``.Value`` forms, with trim markers (``{{-`` and ``-}}``) and Prometheus'
``humanize*``, ``toUpper``, ``toLower``, ``title``, ``reReplaceAll`` and ``stripPort``.
Control actions (``if``, ``range``, ``with``, ``define``) and the ``query`` function are
refused when the template is compiled, naming what is not supported, so a rule file that
loads never renders a template half-understood. A missing label renders as an empty
string, as in Prometheus.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

__all__ = ["Template", "TemplateError", "go_exponent", "go_value"]


class TemplateError(ValueError):
    """A template that cannot be compiled or rendered; the message says where and why."""


@dataclass(frozen=True)
class _Context:
    labels: Mapping[str, str]
    value: float
    external_labels: Mapping[str, str]
    external_url: str


_ACTION = re.compile(r"\{\{(-\s)?(.*?)(\s-)?\}\}", re.S)
_TOKEN = re.compile(
    r'\s*(?:(?P<str>"(?:[^"\\]|\\.)*"|`[^`]*`)|(?P<num>[-+]?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)'
    r"|(?P<pipe>\|)|(?P<word>[$.]?[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*|\.))"
)
_FIELDS = {
    "Labels": "$labels",
    "Value": "$value",
    "ExternalLabels": "$externalLabels",
    "ExternalURL": "$externalURL",
}
_CONTROL = {"if", "else", "end", "range", "with", "define", "template", "block", "break"}


def _shortest(value: float) -> tuple[str, str, int]:
    """(sign, the shortest round-tripping digits, the decimal exponent of the first)."""
    sign, digits, exponent = Decimal(repr(value)).normalize().as_tuple()
    assert isinstance(exponent, int)
    text = "".join(map(str, digits))
    return ("-" if sign else ""), text, len(text) - 1 + exponent


def go_exponent(value: float) -> str:
    """A float as Go's ``strconv.FormatFloat(v, 'e', -1, 64)`` writes it (``1.5e+02``):
    how Prometheus' API gives an alert's value."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == 0:
        return "-0e+00" if math.copysign(1, value) < 0 else "0e+00"
    prefix, text, x = _shortest(value)
    mantissa = text[0] + ("." + text[1:] if len(text) > 1 else "")
    return f"{prefix}{mantissa}e{'-' if x < 0 else '+'}{abs(x):02d}"


def go_value(value: float) -> str:
    """A float as Go's ``fmt`` prints it with ``%v``: shortest digits, an exponent from
    1e6 and below 1e-4 (``0.5``, ``100``, ``123456``, ``1e+06``: how Prometheus shows
    ``$value``)."""
    if value == 0:
        return "-0" if math.copysign(1, value) < 0 else "0"
    if not math.isfinite(value):
        return go_exponent(value)  # NaN, +Inf, -Inf: written alike
    prefix, text, x = _shortest(value)
    if x < -4 or x >= 6:
        return go_exponent(value)
    if x >= len(text) - 1:
        return prefix + text + "0" * (x - len(text) + 1)
    if x >= 0:
        return prefix + text[: x + 1] + "." + text[x + 1 :]
    return prefix + "0." + "0" * (-x - 1) + text


def _text(value: Any) -> str:
    if isinstance(value, float):
        return go_value(value)
    if isinstance(value, Mapping):
        return "map[" + " ".join(f"{k}:{v}" for k, v in sorted(value.items())) + "]"
    return str(value)


def _number(value: Any) -> float:
    if isinstance(value, int | float):
        return float(value)
    try:
        return float(value)
    except (TypeError, ValueError):
        raise TemplateError(f"cannot convert {value!r} to a number") from None


def _humanize(value: Any) -> str:
    v = _number(value)
    if v == 0 or math.isnan(v) or math.isinf(v):
        return f"{v:.4g}"
    prefix = ""
    if abs(v) >= 1:
        for p in "kMGTPEZY":
            if abs(v) < 1000:
                break
            prefix, v = p, v / 1000
    else:
        for p in "munpfazy":
            if abs(v) >= 1:
                break
            prefix, v = p, v * 1000
    return f"{v:.4g}{prefix}"


def _humanize1024(value: Any) -> str:
    v = _number(value)
    if abs(v) <= 1 or math.isnan(v) or math.isinf(v):
        return f"{v:.4g}"
    prefix = ""
    for p in ("ki", "Mi", "Gi", "Ti", "Pi", "Ei", "Zi", "Yi"):
        if abs(v) < 1024:
            break
        prefix, v = p, v / 1024
    return f"{v:.4g}{prefix}"


def _humanize_duration(value: Any) -> str:
    v = _number(value)
    if math.isnan(v) or math.isinf(v):
        return f"{v:.4g}"
    if v == 0:
        return "0s"
    if abs(v) >= 1:
        sign = "-" if v < 0 else ""
        whole = int(abs(v))
        days, rest = divmod(whole, 86_400)
        hours, rest = divmod(rest, 3600)
        minutes, seconds = divmod(rest, 60)
        if days:
            return f"{sign}{days}d {hours}h {minutes}m {seconds}s"
        if hours:
            return f"{sign}{hours}h {minutes}m {seconds}s"
        if minutes:
            return f"{sign}{minutes}m {seconds}s"
        return f"{sign}{abs(v):.4g}s"
    prefix = ""
    for p in "munpfazy":
        if abs(v) >= 1:
            break
        prefix, v = p, v * 1000
    return f"{v:.4g}{prefix}s"


def _printf(fmt: Any, *args: Any) -> str:
    # Go's verbs map onto Python's %-formatting, except %v, which prints a value as Go does.
    pattern = str(fmt)
    values: list[Any] = []
    verbs = re.findall(r"%[-+ #0]*\d*(?:\.\d+)?([a-zA-Z%])", pattern)
    it = iter(args)
    for verb in verbs:
        if verb == "%":
            continue
        arg = next(it, None)
        if verb == "v":
            values.append(_text(arg))
        elif verb in "dxXo":
            values.append(int(_number(arg)))
        elif verb in "feEgG":
            values.append(_number(arg))
        else:
            values.append(_text(arg))
    py = re.sub(r"%([-+ #0]*\d*(?:\.\d+)?)v", r"%\1s", pattern)
    py = re.sub(r"%([-+ #0]*\d*(?:\.\d+)?)q", r'"%\1s"', py)
    try:
        return py % tuple(values)
    except (TypeError, ValueError) as exc:
        raise TemplateError(f"printf {pattern!r}: {exc}") from None


def _index(mapping: Any, key: Any) -> str:
    if not isinstance(mapping, Mapping):
        raise TemplateError("index: the first argument must be a map such as $labels")
    return str(mapping.get(str(key), ""))


def _strip_port(host: Any) -> str:
    text = str(host)
    if text.startswith("["):
        return text[1 : text.find("]")] if "]" in text else text
    return text.rsplit(":", 1)[0] if text.count(":") == 1 else text


def _re_replace_all(pattern: Any, replacement: Any, text: Any) -> str:
    try:
        # Go writes group references as $1 / ${1}; Python as \1.
        repl = re.sub(r"\$\{?(\d+)\}?", r"\\\1", str(replacement))
        return re.sub(str(pattern), repl, str(text))
    except re.error as exc:
        raise TemplateError(f"reReplaceAll: {exc}") from None


_FUNCTIONS: dict[str, Callable[..., str]] = {
    "humanize": _humanize,
    "humanize1024": _humanize1024,
    "humanizeDuration": _humanize_duration,
    "humanizePercentage": lambda v: f"{_number(v) * 100:.4g}%",
    "printf": _printf,
    "index": _index,
    "toUpper": lambda s: str(s).upper(),
    "toLower": lambda s: str(s).lower(),
    "title": lambda s: str(s).title(),
    "stripPort": _strip_port,
    "reReplaceAll": _re_replace_all,
}
_ARITY = {"printf": (1, 99), "index": (2, 2), "reReplaceAll": (3, 3)}


def _operand(token: str, kind: str) -> Callable[[_Context], Any]:
    if kind == "str":
        if token.startswith("`"):
            literal = token[1:-1]
        else:
            literal = token[1:-1].encode("latin-1", "backslashreplace").decode("unicode_escape")
        return lambda _c: literal
    if kind == "num":
        number = float(token)
        return lambda _c: number
    path = token.split(".")
    head, rest = path[0], path[1:]
    if head == "":  # .Labels.x / .Value / .ExternalURL
        head, rest = _FIELDS.get(rest[0] if rest else "", "?"), rest[1:]
    getters: dict[str, Callable[[_Context], Any]] = {
        "$labels": lambda c: c.labels,
        "$value": lambda c: c.value,
        "$externalLabels": lambda c: c.external_labels,
        "$externalURL": lambda c: c.external_url,
    }
    if head not in getters:
        raise TemplateError(f"undefined variable or field {token!r}")
    base = getters[head]
    if not rest:
        return base
    if head in ("$value", "$externalURL") or len(rest) > 1:
        raise TemplateError(f"{token!r}: no such field")
    key = rest[0]
    return lambda c: base(c).get(key, "")


def _command(words: list[tuple[str, str]], piped: bool) -> Callable[[_Context, Any], Any]:
    """One command of a pipeline; ``piped`` commands take the previous value last."""
    first, kind = words[0]
    if kind == "word" and first in _FUNCTIONS:
        fn = _FUNCTIONS[first]
        args = [_operand(t, k) for t, k in words[1:]]
        count = len(args) + (1 if piped else 0)
        lo, hi = _ARITY.get(first, (1, 1))
        if not lo <= count <= hi:
            raise TemplateError(f"wrong number of arguments for {first}: {count}")

        def call(c: _Context, prev: Any) -> Any:
            values = [a(c) for a in args]
            return fn(*values, prev) if piped else fn(*values)

        return call
    if kind == "word" and first[0] not in "$.":
        if first in _CONTROL:
            raise TemplateError(f"the {first!r} action is not supported in RIMP's templates")
        raise TemplateError(f'function "{first}" not defined')
    if len(words) > 1 or piped:
        raise TemplateError(f"can't give argument to non-function {first}")
    get = _operand(first, kind)
    return lambda c, _prev: get(c)


def _pipeline(source: str) -> Callable[[_Context], Any]:
    tokens: list[tuple[str, str]] = []
    pos = 0
    source = source.strip()
    while pos < len(source):
        found = _TOKEN.match(source, pos)
        if found is None or found.end() == pos:
            raise TemplateError(f"unexpected {source[pos:].strip()!r} in {{{{ {source} }}}}")
        kind = found.lastgroup or ""
        tokens.append((found.group(kind), kind))
        pos = found.end()
    if not tokens:
        raise TemplateError("missing value for command")
    commands: list[list[tuple[str, str]]] = [[]]
    for token in tokens:
        if token[1] == "pipe":
            commands.append([])
        else:
            commands[-1].append(token)
    if any(not c for c in commands):
        raise TemplateError(f"missing command in pipeline {{{{ {source} }}}}")
    steps = [_command(c, i > 0) for i, c in enumerate(commands)]

    def run(c: _Context) -> Any:
        value: Any = None
        for step in steps:
            value = step(c, value)
        return value

    return run


class Template:
    """A compiled label or annotation template.

    Raises:
        TemplateError: the text uses what is not supported, naming it.
    """

    def __init__(self, text: str) -> None:
        self.text = text
        self._parts: list[str | Callable[[_Context], Any]] = []
        pos = 0
        for found in _ACTION.finditer(text):
            literal = text[pos : found.start()]
            if found.group(1):
                literal = literal.rstrip()
            self._parts.append(literal)
            body = found.group(2)
            if body.strip().startswith("/*"):
                pos = found.end()
                continue
            self._parts.append(_pipeline(body))
            pos = found.end()
            if found.group(3):
                while pos < len(text) and text[pos].isspace():
                    pos += 1
        tail = text[pos:]
        if "{{" in tail:
            raise TemplateError("unclosed action: '{{' without '}}'")
        self._parts.append(tail)
        self.static = all(isinstance(p, str) for p in self._parts)

    def render(
        self,
        labels: Mapping[str, str],
        value: float,
        *,
        external_labels: Mapping[str, str] | None = None,
        external_url: str = "",
    ) -> str:
        """The text with every action replaced; a failing action renders as Prometheus
        does, ``<error expanding template: ...>``."""
        if self.static:
            return "".join(p for p in self._parts if isinstance(p, str))
        context = _Context(labels, value, external_labels or {}, external_url)
        try:
            return "".join(p if isinstance(p, str) else _text(p(context)) for p in self._parts)
        except TemplateError as exc:
            return f"<error expanding template: {exc}>"
