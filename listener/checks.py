"""Every check a configuration must pass before anything runs, beyond what loading the file
checks: brand queries parse, routes name apprise URLs it understands and brands that exist, the
sentiment model is where ``[sentiment]`` says (its files are there; loading it is the poller's).
One ``check`` for the CLI (every command, check-config included), the daemon's start and its
reload; every problem is reported in one ConfigError (the first as the message, the others as
``more``). Light on imports: apprise is loaded only when there are routes, the sentiment
modules only when a model directory is configured.
"""

from __future__ import annotations

from datetime import timedelta

from listener.alerting import lifecycle
from listener.config import Settings
from listener.errors import ConfigError
from listener.matching.query import Query, QuerySyntaxError, parse_query, terms_query

__all__ = ["BrandRule", "check", "compile_brands", "routes", "scorer"]

# (brand name, parsed query, muted authors, muted domains)
BrandRule = tuple[str, Query, tuple[str, ...], tuple[str, ...]]


def check(settings: Settings) -> None:
    """Everything a configuration must pass before it runs: brand queries, routes. Every
    problem is reported in one ConfigError (the first as message, the others as ``more``)."""
    problems: list[ConfigError] = []
    for step in (compile_brands, routes, scorer):
        try:
            step(settings)
        except ConfigError as exc:
            problems.append(exc)
    if problems:
        raise ConfigError.of(problems)


def routes(settings: Settings) -> list[lifecycle.Route]:
    """Configured routes, checked: every URL understood by apprise, every brand configured."""
    if settings.routes:  # apprise loads ~200 plugins (0.5 s): only when there are routes
        from listener.alerting.deliver import check_url
    known = {b.name.casefold() for b in settings.brands}
    out = []
    problems: list[ConfigError] = []
    for index, route in enumerate(settings.routes):
        for i, url in enumerate(route.urls):
            problem = check_url(url)
            if problem is not None:
                problems.append(
                    ConfigError(f"{settings.path}: routes[{index}].urls[{i}]: {problem}")
                )
        for brand in route.brands:
            if brand.casefold() not in known:
                problems.append(
                    ConfigError(
                        f"{settings.path}: routes[{index}].brands: {brand!r} is not a "
                        "configured brand; hint: use a name from [[brands]]"
                    )
                )
        window = route.quiet_hours
        quiet = lifecycle.QuietHours(window.start, window.end, window.zone) if window else None
        repeat = route.repeat_interval or settings.alerts.repeat_interval
        out.append(
            lifecycle.Route(
                name=route.name,
                urls=route.urls,
                min_severity=route.min_severity,
                brands=route.brands,
                detectors=route.detectors,
                format=route.format,
                quiet=quiet,
                critical_ignores_quiet_hours=route.critical_ignores_quiet_hours,
                max_per_hour=route.max_per_hour,
                repeat_interval=timedelta(seconds=repeat),
                digest=route.digest,
                digest_minute=route.digest_at.minute,
                digest_zone=route.digest_at.zone,
            )
        )
    if problems:
        raise ConfigError.of(problems)
    return out


def compile_brands(settings: Settings) -> list[BrandRule]:
    """Each brand's query, parsed (terms/exclude are compiled to a query). A query with a syntax
    error is a ConfigError naming the brand, with the query and a caret as its detail."""
    rules = []
    problems = []
    for index, brand in enumerate(settings.brands):
        key = "query" if brand.query is not None else "terms"
        text = brand.query if brand.query is not None else terms_query(brand.terms, brand.exclude)
        try:
            parsed = parse_query(text)
        except QuerySyntaxError as exc:
            problems.append(
                ConfigError(
                    f"{settings.path}: brands[{index}].{key}: {exc} (brand {brand.name!r}); "
                    "hint: see the query language in the README",
                    detail=exc.caret(),
                )
            )
            continue
        rules.append((brand.name, parsed, brand.mute_authors, brand.mute_domains))
    if problems:
        raise ConfigError.of(problems)
    return rules


def scorer(settings: Settings) -> None:
    """The sentiment model ``[sentiment]`` names is complete (its files exist; the ONNX backend's
    packages are installed). Nothing is loaded: that takes seconds and is the poller's job."""
    backend, path = settings.sentiment.backend, settings.sentiment.model_path
    if backend == "builtin" and path is None:
        return  # the shipped model
    from listener.enrichment import onnx
    from listener.enrichment.sentiment import MODEL_FILES

    try:
        if backend == "onnx":
            assert path is not None  # [sentiment] refuses onnx without model_path
            onnx.check_model_dir(path)
            onnx.check_backend()
        else:
            assert path is not None
            missing = [name for name in MODEL_FILES if not (path / name).is_file()]
            if missing:
                raise ValueError(
                    f"sentiment.model_path: sentiment model incomplete in {path}: missing "
                    f"{', '.join(missing)}; run scripts/train_sentiment.py --out DIR"
                )
    except ValueError as exc:
        raise ConfigError(f"{settings.path}: {exc}") from None
