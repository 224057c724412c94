"""The part of JAAS login-module configs the broker reads: `Module required key="value" ...;`.

Kafka's PLAIN users are `user_<name>="<password>"` options of PlainLoginModule in
`listener.name.<l>.plain.sasl.jaas.config` (or `sasl.jaas.config`, a Moldau shorthand).
"""

from __future__ import annotations

import re

from moldau.security.listeners import SecurityConfigError

_HEADER = re.compile(r"\s*([\w.$]+)\s+(required|requisite|sufficient|optional)\s*")
_OPTION = re.compile(r'\s*([\w.\-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^\s;"]+)\s*')


def parse_jaas_options(text: str) -> dict[str, str]:
    """The options of the first login module in `text`, unquoted."""
    match = _HEADER.match(text)
    if match is None:
        raise SecurityConfigError(f"Invalid sasl.jaas.config {text[:60]!r}: expected '<LoginModule> required k=\"v\";'")
    options: dict[str, str] = {}
    position = match.end()
    while position < len(text) and text[position] != ";":
        option = _OPTION.match(text, position)
        if option is None:
            raise SecurityConfigError(f"Invalid sasl.jaas.config near {text[position:position + 40]!r}")
        value = option.group(2)
        if value.startswith('"'):
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        options[option.group(1)] = value
        position = option.end()
    if not text[position:].strip().startswith(";"):
        raise SecurityConfigError("Invalid sasl.jaas.config: the login module must end with ';'")
    return options


def plain_users(text: str | None) -> dict[str, str]:
    """PlainLoginModule's `user_<name>="<password>"` options as {name: password}."""
    if not text:
        return {}
    return {key[5:]: value for key, value in parse_jaas_options(text).items() if key.startswith("user_")}
