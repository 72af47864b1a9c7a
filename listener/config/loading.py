"""Reading the configuration: find the file, parse TOML, interpolate secrets, validate, and
describe every problem in one line.

Rules:
- The file is found by ``find_config_path``: ``--config PATH``, else ``$LISTENER_CONFIG``, else
  ``./listener.toml``, else ``$XDG_CONFIG_HOME/listener/config.toml``, else
  ``/etc/listener/config.toml``.
- ``${NAME}`` in any string is replaced by the environment variable NAME, ``${file:PATH}`` by the
  stripped content of a file (systemd credentials), ``$${`` is a literal ``${``. Values that came
  from there are secrets: ``Settings.secrets`` holds them so that they can be masked.
- Unknown keys are errors with a did-you-mean. Every error is one line naming the file, the key
  path (``sources[2].interval``), the bad value and a hint.
- Checks that need more than the file (brand queries, apprise URLs, the sentiment model) are
  ``listener.checks.check``, run by the CLI and the daemon's start and reload.
"""

from __future__ import annotations

import difflib
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, get_args, get_origin

from pydantic import BaseModel, ValidationError

from listener.config.settings import Settings
from listener.config.sources import TAG_PREFIX
from listener.errors import ConfigError

_INTERPOLATION = re.compile(r"\$\$\{|\$\{([^}]*)\}")


def find_config_path(explicit: str | os.PathLike[str] | None, env: Mapping[str, str]) -> Path:
    """Return the config file to use, in the documented order of precedence."""
    if explicit:
        return Path(explicit)
    if env.get("LISTENER_CONFIG"):
        return Path(env["LISTENER_CONFIG"])
    candidates = [Path("listener.toml")]
    xdg = env.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    candidates.append(Path(xdg) / "listener" / "config.toml")
    candidates.append(Path("/etc/listener/config.toml"))
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    searched = ", ".join(str(c) for c in candidates)
    raise ConfigError(
        f"no configuration file found (looked in {searched}); "
        "hint: run `listener init` for a starter, pass --config PATH or set LISTENER_CONFIG "
        "(every key: `listener config example`)"
    )


def load_config(
    path: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None
) -> Settings:
    """Find, read, interpolate and validate the configuration. Raises ConfigError."""
    env = os.environ if env is None else env
    file = find_config_path(path, env)
    try:
        raw = tomllib.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(
            f"{file}: file not found; hint: check --config and LISTENER_CONFIG"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{file}: cannot read: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{file}: invalid TOML: {exc}; hint: check quoting and brackets") from exc
    return validate_config(raw, file=file, env=env)


def validate_config(raw: dict[str, Any], *, file: Path, env: Mapping[str, str]) -> Settings:
    """Validate an already parsed TOML document. Every problem is reported at once: the
    ConfigError's message is the first, ``more`` the others (missing variables, bad values)."""
    secrets: set[str] = set()
    problems: list[tuple[str, ConfigError]] = []  # (key path, error)
    data = _interpolate(raw, "", file, env, secrets, problems)
    errors = [error for _, error in problems]
    unresolved = [where for where, _ in problems]
    settings: Settings | None = None
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        for where, message in _describe_all(exc, file, secrets):
            # a value that could not be interpolated is already reported; its knock-on errors
            # (an empty URL, or a table's check that it is missing) would only confuse
            if not any(_related(where, u) for u in unresolved):
                errors.append(ConfigError(message))
    if settings is not None:
        for table in ("brands", "sources", "routes"):
            seen: dict[str, int] = {}
            for index, entry in enumerate(getattr(settings, table)):
                first = seen.setdefault(entry.name.casefold(), index)
                if first != index:
                    errors.append(
                        ConfigError(
                            f"{file}: {table}[{index}].name: duplicate name {entry.name!r} "
                            f"(also {table}[{first}]); hint: names must be unique"
                        )
                    )
    if errors or settings is None:
        raise ConfigError.of(errors or [ConfigError(f"{file}: invalid configuration")])
    return settings.model_copy(update={"path": file, "secrets": frozenset(secrets)})


def _related(where: str, unresolved: str) -> bool:
    """Whether key path ``where`` is ``unresolved``, inside it, or a table that contains it."""
    if where == unresolved or not where:
        return True
    inner, outer = (where, unresolved) if len(where) > len(unresolved) else (unresolved, where)
    return inner.startswith((outer + ".", outer + "["))


def _interpolate(
    value: Any,
    where: str,
    file: Path,
    env: Mapping[str, str],
    secrets: set[str],
    problems: list[tuple[str, ConfigError]],
) -> Any:
    """``value`` with ${NAME} and ${file:/path} replaced; a reference that cannot be resolved is
    added to ``problems`` (and left empty) so that one run names every missing variable."""
    if isinstance(value, dict):
        return {
            k: _interpolate(v, f"{where}.{k}" if where else k, file, env, secrets, problems)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [
            _interpolate(v, f"{where}[{i}]", file, env, secrets, problems)
            for i, v in enumerate(value)
        ]
    if not isinstance(value, str) or "$" not in value:
        return value

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$${":
            return "${"
        name = match.group(1)
        if name.startswith("file:"):
            try:
                secret = Path(name[5:]).read_text(encoding="utf-8").strip()
            except OSError as exc:
                problems.append(
                    (
                        where,
                        ConfigError(
                            f"{file}: {where}: cannot read secret file {name[5:]!r} "
                            f"({exc.strerror}); hint: check the path and its permissions"
                        ),
                    )
                )
                return ""
        elif re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            if name not in env:
                problems.append(
                    (
                        where,
                        ConfigError(
                            f"{file}: {where}: environment variable {name} is not set; "
                            f"hint: export {name}=... or put it in the service's EnvironmentFile"
                        ),
                    )
                )
                return ""
            secret = env[name]
        else:
            problems.append(
                (
                    where,
                    ConfigError(
                        f"{file}: {where}: invalid reference ${{{name}}}; hint: use ${{NAME}} "
                        "for an environment variable or ${file:/path} for a file"
                    ),
                )
            )
            return ""
        if secret:
            secrets.add(secret)
        return secret

    return _INTERPOLATION.sub(replace, value)


def _describe_all(exc: ValidationError, file: Path, secrets: set[str]) -> list[tuple[str, str]]:
    """(key path, one line) for every validation error, each location once."""
    out: list[tuple[str, str]] = []
    seen: set[str] = set()
    for error in exc.errors():
        where = _key_path([part for part in error["loc"] if not _is_union_tag(part)])
        if where not in seen:
            seen.add(where)
            out.append((where, _describe(error, file, secrets)))
    return out


def _describe(error: Any, file: Path, secrets: set[str]) -> str:
    """One line for one validation error: file, key path, bad value, hint."""
    loc = [part for part in error["loc"] if not _is_union_tag(part)]
    where = _key_path(loc)
    if error["type"] == "extra_forbidden":
        key = str(loc[-1])
        known = _fields_at(loc[:-1])
        close = difflib.get_close_matches(key, known, n=1)
        hint = f"did you mean '{close[0]}'?" if close else f"known keys: {', '.join(known)}"
        return f"{file}: {where}: unknown key; hint: {hint}"
    message = str(error["msg"]).removeprefix("Value error, ")
    value = error.get("input")
    shown = "" if isinstance(value, dict) else f" (got {_show(value, secrets)})"
    if error["type"] == "missing":
        return f"{file}: {where}: required key is missing; hint: add {loc[-1]} = ..."
    if error["type"] == "literal_error":
        expected = re.findall(r"'([^']*)'", str(error.get("ctx", {}).get("expected", "")))
        close = difflib.get_close_matches(str(value), expected, n=1)
        hint = f"; hint: did you mean '{close[0]}'?" if close else ""
        return f"{file}: {where}: {message}{shown}{hint}"
    if error["type"] in ("tuple_type", "list_type"):
        message = 'expected a list, e.g. ["a", "b"]'
    hint = _HINTS.get(str(loc[-1]) if loc else "", "")
    return f"{file}: {where or '(top level)'}: {message}{shown}{'; hint: ' + hint if hint else ''}"


_HINTS = {
    "url": "write the full URL, e.g. https://example.org/feed.xml",
    "terms": 'write a list of strings: terms = ["Brand", "#brand"]',
    "brands": "each brand is a [[brands]] table with name and terms",
    "sources": "each source is a [[sources]] table with name, kind and url",
}


def _is_union_tag(part: int | str) -> bool:
    return isinstance(part, str) and ("[" in part or part.startswith(("function-", TAG_PREFIX)))


def _key_path(loc: list[int | str]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _show(value: object, secrets: set[str]) -> str:
    text = repr(value)
    for secret in secrets:
        text = text.replace(secret, "***")
    return text if len(text) <= 80 else text[:77] + "..."


def _fields_at(loc: list[int | str]) -> list[str]:
    """The field names of the model found by walking ``loc`` from Settings."""
    model: type[BaseModel] = Settings
    for part in loc:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part)
        if field is None:
            break
        inner = _model_in(field.annotation)
        if inner is None:
            break
        model = inner
    return [name for name in model.model_fields if name not in ("path", "secrets")]


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if get_origin(annotation) is not None:
        for arg in get_args(annotation):
            found = _model_in(arg)
            if found is not None:
                return found
    return None
