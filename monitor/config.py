"""Load and validate the watchlist, strictly and all at once.

A watchlist is read once, at start (and on reload). Every problem is collected with
its file, line and key, so `monitor validate` reports them all in one pass and a
typo can never be silently ignored: unknown keys, duplicate ids and keys, bad URLs,
selectors, regexes, durations, cron expressions, unknown jurisdictions or routes,
apprise URLs apprise rejects, and unset `${ENV_VAR}`s are all errors.

The result is a `Watchlist` of resolved `Watch` values (defaults merged in), which
the rest of the program uses without ever seeing YAML again.
"""

from __future__ import annotations

import difflib
import ipaddress
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar
from urllib.parse import quote, urlsplit

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from monitor.errors import ConfigError, Problem
from monitor.model import ExtractRules, Format
from monitor.netpolicy import IPNetwork, NetworkPolicy
from monitor.text import user_regex

Path_ = tuple[str | int, ...]

_DURATION = re.compile(r"(\d+)\s*([smhdw])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMG]i?B|B)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "b": 1, "kb": 1000, "mb": 1000**2, "gb": 1000**3}
_SIZE_UNITS |= {"kib": 1024, "mib": 1024**2, "gib": 1024**3}
_ENV_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_WATCH_ID = r"^[a-z0-9][a-z0-9-]*$"
_JURISDICTION_ID = r"^[A-Za-z][A-Za-z0-9_-]*$"


def parse_duration(value: object) -> float:
    """Seconds from `90`, `30s`, `15m`, `6h`, `1d`, `1w` or combinations like `1h30m`."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 15m, 6h or 1d")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and re.fullmatch(r"(\s*\d+\s*[smhdw])+\s*", value):
        seconds = float(sum(int(n) * _UNITS[u] for n, u in _DURATION.findall(value)))
    else:
        raise ValueError(f"{value!r} is not a duration such as 30s, 15m, 6h or 1d")
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    return seconds


def parse_retention(value: object) -> float | None:
    """How long to keep something: `all` (None: forever) or a duration of a day or more."""
    if value == "all":
        return None
    try:
        seconds = parse_duration(value)
    except ValueError:
        raise ValueError(f"{value!r} is neither `all` nor a duration such as 90d or 52w") from None
    if seconds < 86400:
        raise ValueError(f"{value!r} is less than a day: write `all` or a duration such as 90d")
    return seconds


def parse_size(value: object) -> int:
    """Bytes from `1048576`, `500KB`, `10MB` or `1GiB`."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    match = _SIZE.match(str(value)) if isinstance(value, str) else None
    if not match:
        raise ValueError(f"{value!r} is not a size such as 500KB or 10MB")
    return int(float(match[1]) * _SIZE_UNITS[(match[2] or "").lower()])


def _check_cron(value: str) -> str:
    from apscheduler.triggers.cron import CronTrigger

    try:
        CronTrigger.from_crontab(value)
    except ValueError as exc:
        raise ValueError(f"invalid cron expression {value!r}: {exc}") from None
    return value


def _check_selector(value: str) -> str:
    from cssselect import GenericTranslator, SelectorError  # a watchlist with selectors

    try:
        GenericTranslator().css_to_xpath(value)
    except SelectorError as exc:
        raise ValueError(f"invalid CSS selector {value!r}: {exc}") from None
    return value


def _check_regex(value: str) -> str:
    try:
        user_regex(value)
    except ValueError as exc:
        raise ValueError(f"invalid regular expression {value!r}: {exc}") from None
    return value


def _check_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{value!r} is not an http(s) URL with a host")
    if any(c.isspace() for c in value):
        raise ValueError(f"{value!r} contains white space")
    return value


def _check_query(value: str) -> str:
    import jmespath  # a watchlist with a JSON query

    try:
        jmespath.compile(value)
    except jmespath.exceptions.JMESPathError as exc:
        raise ValueError(f"invalid JMESPath query {value!r}: {exc}") from None
    return value


def _cell_text(value: object) -> object:
    """`rows: {Year: [2020]}`: a number in YAML is the cell text it is written as."""
    return str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value


def _check_cidr(value: object) -> IPNetwork:
    """A CIDR block (`10.0.0.0/8`, `fd00::/8`) or one address (`100.100.100.200`)."""
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not a CIDR block such as 10.0.0.0/8")
    try:
        return ipaddress.ip_network(value.strip())
    except ValueError as exc:
        raise ValueError(f"{value!r} is not a CIDR block such as 10.0.0.0/8: {exc}") from None


def _one_or_many(value: object) -> object:
    """`routes: desk` means `routes: [desk]`: a lone text is a one-item list."""
    return [value] if isinstance(value, str) else value


_T = TypeVar("_T")
Listed = Annotated[list[_T], BeforeValidator(_one_or_many)]
"""A list key, which also takes a lone value: `jurisdictions: HK` is `[HK]`."""

Duration = Annotated[float, BeforeValidator(parse_duration)]
Retention = Annotated[float | None, BeforeValidator(parse_retention)]
Size = Annotated[int, BeforeValidator(parse_size)]
Cron = Annotated[str, BeforeValidator(_check_cron)]
Selector = Annotated[str, BeforeValidator(_check_selector)]
Regex = Annotated[str, BeforeValidator(_check_regex)]
Url = Annotated[str, BeforeValidator(_check_url)]
Cidr = Annotated[IPNetwork, PlainValidator(_check_cidr)]
JurisdictionId = Annotated[str, Field(pattern=_JURISDICTION_ID)]
Query = Annotated[str, BeforeValidator(_check_query)]
Column = Annotated[str, Field(min_length=1)]
CellText = Annotated[str, BeforeValidator(_cell_text), Field(min_length=1)]
DataFormat = Literal["auto", "html", "text", "markdown", "csv", "tsv", "json", "zip", "pdf"]
_TABULAR = ("auto", "csv", "tsv", "json", "zip")  # the formats that have rows
WatchKind = Literal[
    "transparency-report", "law-enforcement-guidelines", "privacy-policy", "terms", "policy", "help"
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)


class _Schedule(_Strict):
    interval: Duration | None = None
    cron: Cron | None = None

    @field_validator("interval")
    @classmethod
    def _positive(cls, value: float | None) -> float | None:
        if value is not None and value < 1:
            raise ValueError("the interval must be at least 1s")
        return value


BrowserMode = Literal["never", "auto", "always"]


class ExpectElement(_Strict):
    """An `expect` entry that is an element: `{css: "table.requests tr"}`."""

    css: Selector


def _expectation(value: object) -> str | ExpectElement:
    """One message for a malformed entry, instead of one per branch of a union."""
    if isinstance(value, str) and value.strip():
        return value
    if isinstance(value, dict) and set(value) == {"css"} and isinstance(value["css"], str):
        return ExpectElement(css=_check_selector(value["css"]))
    raise ValueError(f"{value!r} is neither a text nor {{css: SELECTOR}}")


Expectation = Annotated[str | ExpectElement, PlainValidator(_expectation)]


class NetworkSpec(_Strict):
    """`defaults.network`: address blocks every fetch may reach, and blocks none may."""

    allow: Listed[Cidr] = Field(default_factory=list)
    deny: Listed[Cidr] = Field(default_factory=list)

    def policy(self) -> NetworkPolicy:
        return NetworkPolicy(allow=tuple(self.allow), deny=tuple(self.deny))


MAX_CHANGES = 25  # changes quoted in one alert; the rest are counted, with the diff command


class KeepSpec(_Strict):
    """`defaults.keep`: how long `monitor prune` keeps versions and raw bodies. Never
    pruned: a watch's latest version, the versions alerts refer to, and their bodies."""

    versions: Retention = None  # None: all
    raw: Retention = None


class DefaultsSpec(_Schedule):
    """The `defaults:` section: values every watch inherits unless it says otherwise."""

    browser: BrowserMode = "auto"

    jitter: Duration = 0.0
    jurisdictions: Listed[JurisdictionId] = Field(default_factory=lambda: ["HK", "MO", "CN"])
    routes: Listed[str] = Field(default_factory=list)
    headers: dict[str, str] = Field(default_factory=dict)
    user_agent: str | None = None
    timeout: Duration = 60.0
    max_size: Size = 10 * 1000**2
    failures_before_alert: int = Field(default=3, ge=1)
    give_up_after: Duration = 2 * 86400.0
    max_changes: int = Field(default=MAX_CHANGES, ge=1, le=1000)
    network: NetworkSpec = Field(default_factory=NetworkSpec)

    keep: KeepSpec = Field(default_factory=KeepSpec)


AlertKind = Literal["change", "health"]
ALERT_KINDS: tuple[str, ...] = ("change", "health")


class RouteSpec(_Strict):
    """An entry of `routes:`: apprise URLs, optionally only for some alerts."""

    urls: Listed[str] = Field(min_length=1)
    kinds: Listed[AlertKind] | None = None
    jurisdictions: Listed[JurisdictionId] | None = None


FormKind = Literal[
    "name", "abbreviation", "adjective", "demonym", "inflected", "phrase", "ambiguous"
]


class JurisdictionSpec(_Strict):
    """An entry of `jurisdictions:`: extra terms for a known id, or a new jurisdiction;
    `drop` and `drop_kinds` switch off names of the catalog (`monitor explain` shows
    each name's kind)."""

    name: str | None = None
    terms: Listed[str] = Field(default_factory=list)
    drop: Listed[str] = Field(default_factory=list)
    drop_kinds: Listed[FormKind] = Field(default_factory=list)


class WatchSpec(_Schedule):
    """One entry of `watches:` as written in the file."""

    id: str = Field(pattern=_WATCH_ID, max_length=100)
    url: Url
    platform: str | None = Field(default=None, min_length=1)  # default: the site
    name: str | None = Field(default=None, min_length=1)  # default: host and path
    kind: WatchKind = "policy"
    select: Listed[Selector] = Field(default_factory=list)
    remove: Listed[Selector] = Field(default_factory=list)
    ignore: Listed[Regex] = Field(default_factory=list)
    about: JurisdictionId | None = None
    jurisdictions: Listed[JurisdictionId] | None = None
    routes: Listed[str] | None = None
    tags: Listed[str] = Field(default_factory=list)
    enabled: bool = True  # false: never scheduled, skipped by `check` unless named
    headers: dict[str, str] = Field(default_factory=dict)
    browser: BrowserMode | None = None
    wait_for: Selector | None = None
    expect: Listed[Expectation] = Field(default_factory=list)
    user_agent: str | None = None  # these three replace the defaults' for this watch
    timeout: Duration | None = None
    max_size: Size | None = None
    format: DataFormat = "auto"
    member: str | None = Field(default=None, min_length=1)
    query: Query | None = None
    key: Listed[Column] = Field(default_factory=list)
    rows: dict[Column, Listed[CellText]] = Field(default_factory=dict)

    @field_validator("member")
    @classmethod
    def _member_of_zip(cls, value: str | None, info: ValidationInfo) -> str | None:
        return _for_formats(value, info, ("auto", "zip"), "names a file inside a ZIP")

    @field_validator("query")
    @classmethod
    def _query_of_json(cls, value: str | None, info: ValidationInfo) -> str | None:
        return _for_formats(value, info, ("auto", "json", "zip"), "selects from JSON")

    @field_validator("key", "rows")
    @classmethod
    def _rows_of_data(cls, value: _T, info: ValidationInfo) -> _T:
        if isinstance(value, dict) and not all(value.values()):
            raise ValueError("each column needs at least one value to keep")
        return _for_formats(value, info, _TABULAR, "applies to rows of data (CSV, TSV, JSON)")


def _for_formats(value: _T, info: ValidationInfo, formats: Sequence[str], what: str) -> _T:
    """A data key is an error on a watch whose `format:` has no use for it."""
    declared = info.data.get("format", "auto")
    if value and declared not in formats:
        raise ValueError(f"{info.field_name} {what}; this watch's format is {declared}")
    return value


@dataclass(frozen=True)
class Schedule:
    """When a watch runs: every `interval` seconds, or on a cron expression."""

    interval: float | None = 6 * 3600.0
    cron: str | None = None
    jitter: float = 0.0


@dataclass(frozen=True)
class Watch:
    """A watch with every default resolved: all the pipeline needs to check a page."""

    id: str
    platform: str
    name: str
    url: str
    kind: str
    rules: ExtractRules
    jurisdictions: tuple[str, ...]
    routes: tuple[str, ...]
    schedule: Schedule
    headers: tuple[tuple[str, str], ...]
    timeout: float
    max_size: int
    failures_before_alert: int
    about: str | None = None
    max_changes: int = MAX_CHANGES
    tags: tuple[str, ...] = ()
    enabled: bool = True  # false: the daemon schedules no job, `check` skips it unless named
    browser: str = "auto"  # never | auto | always
    wait_for: str | None = None  # rendered when this element has text; else `select`'s
    hidden: tuple[str, ...] = ()  # the values of its URL's and headers' ${VAR}s

    @property
    def shown_url(self) -> str:
        """The URL as alerts, logs, the store and the command line show it."""
        return self.shown(self.url)

    def shown(self, text: str) -> str:
        """`text` (a URL, an error message) without this watch's secrets: the password
        of any URL in it and the value of every ${VAR} its URL and headers use."""
        return hide_secrets(text, self.hidden)

    # defaults.network over the built-in ranges
    network: NetworkPolicy = field(default_factory=NetworkPolicy)


@dataclass(frozen=True)
class Route:
    """A named set of destinations; `urls` are interpolated and may hold secrets."""

    name: str
    urls: tuple[str, ...]
    kinds: tuple[str, ...] = ALERT_KINDS
    jurisdictions: tuple[str, ...] | None = None  # None: alerts about any jurisdiction

    def accepts(self, kind: str, jurisdictions: Iterable[str]) -> bool:
        """Whether an alert of this kind, about these jurisdictions, goes to this route."""
        if kind not in self.kinds:
            return False
        return (
            self.jurisdictions is None
            or kind == "health"
            or bool(set(self.jurisdictions) & set(jurisdictions))
        )


@dataclass(frozen=True)
class Watchlist:
    """A validated watchlist. Route URLs are interpolated and may hold secrets."""

    source: str
    watches: tuple[Watch, ...]
    routes: Mapping[str, Route] = field(default_factory=dict)
    jurisdictions: Mapping[str, JurisdictionSpec] = field(default_factory=dict)
    defaults: DefaultsSpec = field(default_factory=DefaultsSpec)

    def watch(self, watch_id: str) -> Watch | None:
        """The watch with this id, or None: a reload may have removed it."""
        return next((w for w in self.watches if w.id == watch_id), None)


# --- reading YAML with line numbers ---------------------------------------------------

_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml is 10x faster


class _Collector:
    """Collects problems, locating each key path with the line map of the file."""

    def __init__(self, source: str, lines: Mapping[Path_, int]) -> None:
        self.source = source
        self.lines = lines
        self.problems: list[Problem] = []
        self.watch_ids: dict[int, str] = {}

    def add(self, path: Path_, message: str) -> None:
        self.problems.append(Problem(self.source, self.line(path), self.label(path), message))

    def label(self, path: Path_) -> str:
        """`watches[3] (meta-hk).select[0]`: the key path, naming the watch by its id."""
        key = _key(path)
        if len(path) >= 2 and path[0] == "watches" and isinstance(path[1], int):
            watch_id = self.watch_ids.get(path[1])
            head = f"watches[{path[1]}]"
            if watch_id and path[2:3] != ("id",):
                key = key.replace(head, f"{head} ({watch_id})", 1)
        return key

    def line(self, path: Path_) -> int | None:
        for end in range(len(path), -1, -1):
            if path[:end] in self.lines:
                return self.lines[path[:end]]
        return None

    def add_validation(self, base: Path_, error: ValidationError, model: type[BaseModel]) -> None:
        for item in error.errors():
            message = item["msg"].removeprefix("Value error, ")
            if item["type"] == "extra_forbidden":
                message = unknown_key(str(item["loc"][-1]), model)
            elif item["type"] == "missing":
                message = "required key is missing"
            elif item["type"] == "string_too_short" and item["input"] == "":
                message = "must not be empty"
            elif item["type"] == "string_pattern_mismatch":
                pattern = str((item.get("ctx") or {}).get("pattern"))
                message = _PATTERN_WORDS.get(pattern, message).format(item["input"])
            self.add(base + tuple(item["loc"]), message)


_PATTERN_WORDS = {
    _WATCH_ID: "{!r} is not a valid id: use lowercase letters, digits and dashes, "
    "starting with a letter or digit (e.g. meta-gov-requests-hk)",
    _JURISDICTION_ID: "{!r} is not a jurisdiction id: use letters, digits, `_` and `-`, "
    "starting with a letter (e.g. HK, or XJ for one you define)",
}


def unknown_key(key: str, model: type[BaseModel] | Iterable[str]) -> str:
    """`unknown key 'intervall' (did you mean 'interval'?)`, naming the nearest known key."""
    known = list(model.model_fields) if isinstance(model, type) else list(model)
    message = f"unknown key {key!r}"
    if model is WatchSpec and key in DefaultsSpec.model_fields:
        return f"{message} (it belongs in `defaults`)"
    if model is DefaultsSpec and key in WatchSpec.model_fields:
        return f"{message} (it belongs in a watch)"
    nearest = difflib.get_close_matches(key, known, n=1)
    if nearest:
        return f"{message} (did you mean {nearest[0]!r}?)"
    return f"{message} (known keys: {', '.join(known)})" if len(known) <= 6 else message


def _key(path: Path_) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


def _line_map(node: yaml.Node, path: Path_, lines: dict[Path_, int], dups: list[Path_]) -> None:
    """Record the line of every key and item; note duplicate mapping keys."""
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: set[object] = set()
        for key_node, value_node in node.value:
            key = key_node.value
            if key in seen:
                dups.append((*path, key))
            seen.add(key)
            lines[(*path, key)] = key_node.start_mark.line + 1
            _line_map(value_node, (*path, key), lines, dups)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _line_map(item, (*path, index), lines, dups)


def _parse_yaml(text: str, source: str) -> tuple[Any, dict[Path_, int], list[Path_]]:
    """Parse once (with libyaml when present), keeping the node tree for line numbers."""
    if len(text) > MAX_WATCHLIST_BYTES:
        raise ConfigError([Problem(source, None, "", _too_large())])
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is not None:
            _bounded(node, source)
        data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        reason = getattr(exc, "problem", None) or str(exc)
        raise ConfigError([Problem(source, line, "", f"invalid YAML: {reason}")]) from None
    finally:
        loader.dispose()
    lines: dict[Path_, int] = {}
    dups: list[Path_] = []
    if node is not None:
        _line_map(node, (), lines, dups)
    return data, lines, dups


MAX_WATCHLIST_BYTES = 4 * 1024**2  # a watchlist of thousands of watches is well under
MAX_VALUES = 200_000  # values of a watchlist with its aliases expanded


def _too_large() -> str:
    return f"the watchlist is larger than {MAX_WATCHLIST_BYTES // 1024**2} MiB"


def _bounded(root: yaml.Node, source: str) -> None:
    """Refuse a document whose aliases expand to more than MAX_VALUES values.

    An alias is a reference: nine levels of nine aliases are 383 bytes of YAML and
    387 million values once walked. Counting each node once, with the size of what
    it expands to remembered, takes as long as the file is long.
    """
    sizes: dict[int, int] = {}

    def size(node: yaml.Node) -> int:
        known = sizes.get(id(node))
        if known is not None:
            return known
        sizes[id(node)] = MAX_VALUES + 1  # a node that contains itself is too large
        total = 1
        if isinstance(node, yaml.MappingNode):
            total += sum(size(k) + size(v) for k, v in node.value)
        elif isinstance(node, yaml.SequenceNode):
            total += sum(size(item) for item in node.value)
        sizes[id(node)] = total = min(total, MAX_VALUES + 1)
        return total

    try:
        too_large = size(root) > MAX_VALUES
    except RecursionError:
        message = "the watchlist is nested too deeply"
        raise ConfigError([Problem(source, root.start_mark.line + 1, "", message)]) from None
    if too_large:
        message = (
            f"the watchlist expands to more than {MAX_VALUES:,} values: "
            "nested or recursive YAML aliases (&anchor / *alias) are refused"
        )
        raise ConfigError([Problem(source, root.start_mark.line + 1, "", message)])


# --- validation -----------------------------------------------------------------------

_SECTIONS = ("defaults", "routes", "jurisdictions", "watches")


def load(
    path: str | os.PathLike[str],
    *,
    env: Mapping[str, str] | None = None,
    known_jurisdictions: Iterable[str] | None = None,
    check_url: Callable[[str], bool] | None = None,
) -> Watchlist:
    """Read and validate a watchlist file; raise ConfigError listing every problem."""
    source = str(path)
    try:
        with Path(path).open("rb") as file:
            raw = file.read(MAX_WATCHLIST_BYTES + 1)
        if len(raw) > MAX_WATCHLIST_BYTES:
            raise ConfigError([Problem(source, None, "", _too_large())])
        text = raw.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(
            [Problem(source, None, "", f"cannot read the watchlist: {exc}")]
        ) from None
    return loads(
        text, source, env=env, known_jurisdictions=known_jurisdictions, check_url=check_url
    )


def loads(
    text: str,
    source: str = "<watchlist>",
    *,
    env: Mapping[str, str] | None = None,
    known_jurisdictions: Iterable[str] | None = None,
    check_url: Callable[[str], bool] | None = None,
) -> Watchlist:
    """Validate watchlist text; `source` names it in messages.

    `check_url` says whether the notification library accepts a route URL; the
    composition root (`monitor.app`) passes apprise's, tests may pass their own.
    """
    data, lines, dups = _parse_yaml(text, source)
    out = _Collector(source, lines)
    for dup in dups:
        out.add(dup, "duplicate key (the later value would silently win)")
    if not isinstance(data, dict):
        out.add((), "the watchlist must be a mapping with a `watches:` list")
        raise ConfigError(out.problems)
    for key in data:
        if key not in _SECTIONS:
            out.add((key,), unknown_key(str(key), _SECTIONS))
    env = os.environ if env is None else env
    known = set(known_jurisdictions) if known_jurisdictions is not None else _catalog_ids()
    builder = _Builder(out, env, known, check_url)
    watchlist = builder.build(data, source)
    if out.problems:
        raise ConfigError(sorted(out.problems, key=lambda p: p.line or 0))
    return watchlist


_CREDENTIALS = re.compile(r"(//[^/?#@:\s]*:)[^/?#@\s]+@")
SECRET_MIN = 4  # shorter values are hidden only as a URL's password: they would eat words


def hide_secrets(text: str, hidden: Iterable[str] = ()) -> str:
    """`text` with the password of every URL in it (`https://user:***@host/`) and
    each of the `hidden` values (raw or as percent-encoded in a URL) as `***`."""
    text = _CREDENTIALS.sub(r"\1***@", text)
    values = {v for h in hidden for v in (h, quote(h, safe=""), quote(h, safe=":[]"))}
    for value in sorted(values, key=len, reverse=True):
        if len(value) >= SECRET_MIN:
            text = text.replace(value, "***")
    return text


def masked_url(url: str) -> str:
    """A URL that apprise cannot read may hold a token anywhere: show its scheme only."""
    scheme = url.split("://", 1)[0] if "://" in url else ""
    return f"{scheme}://***" if re.fullmatch(r"[A-Za-z][\w+.-]*", scheme) else "***"


def _encoded(url: str, match: re.Match[str], value: str) -> str:
    """`value` percent-encoded for the part of `url` that `${VAR}` (`match`) stands in.

    apprise decodes %-escapes in every part, so the value arrives exactly as set: an `@`,
    `:`, `/`, `?`, `#`, `&` or `%` in a password or token cannot split the URL or turn
    into another character. A variable before `scheme://` (the whole URL, `${SLACK_URL}`)
    is used as it is.
    """
    head, tail = url[: match.start()], url[match.end() :]
    if "://" not in head:
        return value
    after_scheme = head.split("://", 1)[1]
    if "?" in after_scheme:
        # apprise's services decode a query value twice (once parsing the query, once
        # reading the option): a `%` is escaped once more so `p%41ss` stays `p%41ss`
        return quote(value.replace("%", "%25"), safe="")
    if any(c in after_scheme for c in "/#"):
        return quote(value, safe="")  # a path segment (a token), or a #channel
    authority_rest = re.split(r"[/?#]", tail, maxsplit=1)[0]
    if "@" in authority_rest:
        return quote(value, safe="")  # user or password
    return quote(value, safe=":[]")  # host, and maybe its port


def _catalog_ids() -> set[str]:
    from monitor.jurisdictions import ids

    return set(ids())


def _unknown_forms(jid: str, spec: JurisdictionSpec) -> list[str]:
    """The forms `drop` lists that are neither a catalog name of `jid` nor a term."""
    if not spec.drop:
        return []
    from monitor.jurisdictions import Jurisdiction, catalog, unknown_forms

    place = catalog().get(jid, Jurisdiction(jid, jid, ()))
    return unknown_forms(replace(place, names=(*place.names, *spec.terms)), spec.drop)


class _Builder:
    """Validates each section separately so one bad entry hides no other problem."""

    def __init__(
        self,
        out: _Collector,
        env: Mapping[str, str],
        known: set[str],
        check_url: Callable[[str], bool] | None,
    ) -> None:
        self.out = out
        self.env = env
        self.known = known
        self.check_url = check_url
        self.route_names: set[str] = set()
        self.hidden: dict[int, tuple[str, ...]] = {}  # watch index: its ${VAR} values
        self.default_hidden: tuple[str, ...] = ()  # the defaults' headers' ${VAR} values
        self.by_lower = {jid.lower(): jid for jid in sorted(known, reverse=True)}

    def build(self, data: dict[str, Any], source: str) -> Watchlist:
        jurisdictions = self.jurisdictions(data.get("jurisdictions"))
        self.known |= set(jurisdictions)
        self.by_lower = {jid.lower(): jid for jid in sorted(self.known, reverse=True)}
        defaults = self.defaults(data.get("defaults"))
        routes = self.routes(data.get("routes"))
        self.route_names = set(routes)
        watches = self.watches(data.get("watches"), defaults)
        self.check_refs(("defaults",), defaults.jurisdictions, defaults.routes, set(routes))
        return Watchlist(source, tuple(watches), routes, jurisdictions, defaults)

    def canon(self, jid: str) -> str:
        """The known id a jurisdiction reference means: `hk` is `HK`."""
        return jid if jid in self.known else self.by_lower.get(jid.lower(), jid)

    def one_schedule(self, base: Path_, raw: object) -> None:
        """`interval` and `cron` together, reported beside any other problem."""
        if isinstance(raw, dict) and raw.get("interval") is not None and raw.get("cron"):
            self.out.add((*base, "cron"), "give `interval` or `cron`, not both")

    def defaults(self, raw: object) -> DefaultsSpec:
        self.one_schedule(("defaults",), raw)
        if isinstance(raw, dict) and "url" not in raw:
            raw, self.default_hidden = self.secret_values(("defaults",), raw)
        try:
            spec = DefaultsSpec.model_validate(raw or {})
        except ValidationError as exc:
            self.out.add_validation(("defaults",), exc, DefaultsSpec)
            return DefaultsSpec()
        return spec.model_copy(
            update={"jurisdictions": [self.canon(j) for j in spec.jurisdictions]}
        )

    def routes(self, raw: object) -> dict[str, Route]:
        if not isinstance(raw, dict | None):
            self.out.add(("routes",), "must be a mapping of route name to a list of apprise URLs")
            return {}
        routes: dict[str, Route] = {}
        for name, value in (raw or {}).items():
            path: Path_ = ("routes", name)
            spec = self.route_spec(path, value)
            if spec is None:
                continue
            upath = (*path, "urls") if isinstance(value, dict) else path
            urls = tuple(self.route_url((*upath, i), u) for i, u in enumerate(spec.urls))
            self.check_refs(path, spec.jurisdictions or [], [], set())
            kinds = tuple(spec.kinds) if spec.kinds else ALERT_KINDS
            jurisdictions = (
                tuple(self.canon(j) for j in spec.jurisdictions) if spec.jurisdictions else None
            )
            routes[str(name)] = Route(str(name), urls, kinds, jurisdictions)
        return routes

    def route_spec(self, path: Path_, value: object) -> RouteSpec | None:
        if isinstance(value, str | list):
            value = {"urls": [value] if isinstance(value, str) else value}
        try:
            return RouteSpec.model_validate(value)
        except ValidationError as exc:
            self.out.add_validation(path, exc, RouteSpec)
            return None

    def route_url(self, path: Path_, raw: object) -> str:
        url = self.interpolate(path, str(raw))
        if url is not None and self.check_url is not None and not self.check_url(url):
            self.out.add(path, f"apprise does not accept this URL: {masked_url(url)}")
        return url or ""

    def interpolate(self, path: Path_, text: str) -> str | None:
        """A URL with its ${VAR}s replaced (each value encoded for its place), or None
        when one is not set."""
        if self.missing(path, text):
            return None
        return _ENV_VAR.sub(lambda m: _encoded(text, m, self.env[m[1]]), text)

    def missing(self, path: Path_, text: str) -> bool:
        """Report each ${VAR} of `text` that is not set; whether there was one."""
        missing = [name for name in _ENV_VAR.findall(text) if name not in self.env]
        for name in missing:
            self.out.add(path, f"environment variable {name} is not set")
        return bool(missing)

    def jurisdictions(self, raw: object) -> dict[str, JurisdictionSpec]:
        if not isinstance(raw, dict | None):
            self.out.add(("jurisdictions",), "must be a mapping of jurisdiction id to terms")
            return {}
        specs: dict[str, JurisdictionSpec] = {}
        for key, value in (raw or {}).items():
            path: Path_ = ("jurisdictions", key)
            try:
                spec = JurisdictionSpec.model_validate(value or {})
            except ValidationError as exc:
                self.out.add_validation(path, exc, JurisdictionSpec)
                continue
            jid = self.canon(str(key))
            if jid not in self.known and not spec.name:
                self.out.add(path, "a new jurisdiction needs a `name` (and `terms`)")
            if jid in specs:
                self.out.add(path, f"{jid!r} is already defined above (ids ignore case)")
            for form in _unknown_forms(jid, spec):
                self.out.add((*path, "drop"), f"{jid} has no name {form!r} to drop")
            specs[jid] = spec
        return specs

    def watches(self, raw: object, defaults: DefaultsSpec) -> list[Watch]:
        if not isinstance(raw, list) or not raw:
            self.out.add(("watches",), "must be a non-empty list of watches")
            return []
        duplicates = self.duplicate_ids(raw)
        watches: list[Watch] = []
        for index, item in enumerate(raw):
            spec = self.watch_spec(index, item)
            if spec is not None and index not in duplicates:
                watches.append(self.resolve(index, spec, defaults))
        return watches

    def duplicate_ids(self, raw: list[Any]) -> set[int]:
        """Indexes of watches whose id was already used (checked before validation)."""
        seen: dict[object, int] = {}
        duplicates: set[int] = set()
        for index, item in enumerate(raw):
            wid = item.get("id") if isinstance(item, dict) else None
            if not isinstance(wid, str):
                continue
            if wid in seen:
                duplicates.add(index)
                message = f"duplicate watch id {wid!r} (first used by watches[{seen[wid]}])"
                self.out.add(("watches", index, "id"), message)
            else:
                self.out.watch_ids[index] = wid
                seen[wid] = index
        return duplicates

    def secret_values(self, base: Path_, item: object) -> tuple[object, tuple[str, ...]]:
        """`item` with the ${VAR}s of its `url` and `headers` replaced, and their values."""
        if not isinstance(item, dict):
            return item, ()
        item, used = dict(item), []
        if isinstance(item.get("url"), str):
            used += [self.env.get(n, "") for n in _ENV_VAR.findall(item["url"])]
            item["url"] = self.interpolate((*base, "url"), item["url"]) or item["url"]
        if isinstance(item.get("headers"), dict):
            headers = {}
            for name, value in item["headers"].items():
                text = str(value)
                used += [self.env.get(n, "") for n in _ENV_VAR.findall(text)]
                missing = self.missing((*base, "headers", name), text)
                headers[name] = text if missing else _ENV_VAR.sub(lambda m: self.env[m[1]], text)
            item["headers"] = headers
        return item, tuple(v for v in used if v)

    def watch_spec(self, index: int, item: object) -> WatchSpec | None:
        self.one_schedule(("watches", index), item)
        item, self.hidden[index] = self.secret_values(("watches", index), item)
        try:
            return WatchSpec.model_validate(item)
        except ValidationError as exc:
            self.out.add_validation(("watches", index), exc, WatchSpec)
        if isinstance(item, dict):  # still report references of an otherwise broken watch
            refs = {k: item.get(k) for k in ("jurisdictions", "routes", "about")}
            if all(isinstance(v, list | str | None) for v in refs.values()):
                self.check_raw_refs(("watches", index), refs)
        return None

    def check_raw_refs(self, base: Path_, refs: dict[str, Any]) -> None:
        jurisdictions, routes = _names(refs["jurisdictions"]), _names(refs["routes"])
        self.check_refs(base, jurisdictions, routes, self.route_names)
        if isinstance(refs["about"], str) and self.canon(refs["about"]) not in self.known:
            self.out.add((*base, "about"), f"unknown jurisdiction {refs['about']!r}")

    def resolve(self, index: int, spec: WatchSpec, defaults: DefaultsSpec) -> Watch:
        jurisdictions = (
            spec.jurisdictions if spec.jurisdictions is not None else defaults.jurisdictions
        )
        routes = spec.routes if spec.routes is not None else defaults.routes
        base: Path_ = ("watches", index)
        self.check_raw_refs(
            base, {"jurisdictions": jurisdictions, "routes": routes, "about": spec.about}
        )
        schedule = _schedule(spec, defaults)
        return Watch(
            id=spec.id,
            platform=spec.platform or _site(spec.url),
            name=spec.name or _host_and_path(spec.url),
            url=spec.url,
            kind=spec.kind,
            rules=ExtractRules(
                tuple(spec.select),
                tuple(spec.remove),
                tuple(spec.ignore),
                expect_text=tuple(e for e in spec.expect if isinstance(e, str)),
                expect_css=tuple(e.css for e in spec.expect if isinstance(e, ExpectElement)),
                format=Format(spec.format),
                member=spec.member,
                query=spec.query,
                key=tuple(spec.key),
                rows=tuple((column, tuple(values)) for column, values in spec.rows.items()),
            ),
            jurisdictions=tuple(dict.fromkeys(self.canon(j) for j in jurisdictions)),
            routes=tuple(dict.fromkeys(routes)),
            schedule=schedule,
            headers=tuple(_headers(spec, defaults).items()),
            timeout=spec.timeout if spec.timeout is not None else defaults.timeout,
            max_size=spec.max_size if spec.max_size is not None else defaults.max_size,
            failures_before_alert=defaults.failures_before_alert,
            max_changes=defaults.max_changes,
            about=self.canon(spec.about) if spec.about else None,
            tags=tuple(spec.tags),
            enabled=spec.enabled,
            browser=spec.browser or defaults.browser,
            wait_for=spec.wait_for or (", ".join(spec.select) if spec.select else None),
            hidden=self.hidden.get(index, ()) + self.default_hidden,
            network=defaults.network.policy(),
        )

    def check_refs(
        self, base: Path_, jurisdictions: Sequence[str], routes: Sequence[str], names: set[str]
    ) -> None:
        for i, jid in enumerate(jurisdictions):
            if self.canon(jid) not in self.known:
                self.out.add((*base, "jurisdictions", i), f"unknown jurisdiction {jid!r}")
        for i, route in enumerate(routes):
            if route not in names:
                self.out.add((*base, "routes", i), f"unknown route {route!r}")


def _names(value: str | Sequence[object] | None) -> list[str]:
    """The names a raw list key gives, a lone name as one (never letter by letter)."""
    return [value] if isinstance(value, str) else [str(v) for v in value or []]


def _site(url: str) -> str:
    """A watch's default platform: the URL's host without `www.`."""
    return (urlsplit(url).hostname or url).removeprefix("www.")


def _host_and_path(url: str) -> str:
    """A watch's default name: `transparency.meta.com/reports/…/HK` (no query)."""
    return f"{_site(url)}{urlsplit(url).path}".rstrip("/")


def _headers(spec: WatchSpec, defaults: DefaultsSpec) -> dict[str, str]:
    """Request headers: the watch's over the defaults'; a `User-Agent` header over the
    `user_agent` of the same level, and the watch's level over the defaults'."""
    headers = {**defaults.headers, **spec.headers}
    if spec.user_agent and not _has_agent(spec.headers):
        headers = {k: v for k, v in headers.items() if k.lower() != "user-agent"}
        headers["User-Agent"] = spec.user_agent
    elif defaults.user_agent and not _has_agent(headers):
        headers["User-Agent"] = defaults.user_agent
    return headers


def _has_agent(headers: Mapping[str, str]) -> bool:
    return any(k.lower() == "user-agent" for k in headers)


def _schedule(spec: WatchSpec, defaults: DefaultsSpec) -> Schedule:
    """The watch's own interval or cron, else the defaults', else every 6 hours."""
    for source in (spec, defaults):
        if source.interval is not None or source.cron is not None:
            return Schedule(source.interval, source.cron, defaults.jitter)
    return Schedule(jitter=defaults.jitter)
