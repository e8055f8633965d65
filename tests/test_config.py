"""The watchlist contract: what validates, and how each mistake is reported."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest

from monitor import config
from monitor.errors import ConfigError
from monitor.notify import redact

ROOT = Path(__file__).resolve().parent.parent
KNOWN = {"HK", "MO", "CN", "TW", "US", "GB", "EU", "FR"}


def load(text: str, **kwargs: object) -> config.Watchlist:
    return config.loads(
        textwrap.dedent(text),
        "w.yaml",
        env=kwargs.pop("env", {}),  # type: ignore[arg-type]
        known_jurisdictions=KNOWN,
        check_url=kwargs.pop("check_url", lambda url: url.startswith(("json://", "mailto://"))),  # type: ignore[arg-type]
    )


def problems(text: str, **kwargs: object) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load(text, **kwargs)
    return [str(p) for p in info.value.problems]


MINIMAL = """\
watches:
  - id: meta-hk
    platform: Meta
    name: Government requests — Hong Kong
    url: https://transparency.meta.com/reports/government-data-requests/country/HK/
"""


def test_minimal_watch_gets_the_documented_defaults() -> None:
    watch = load(MINIMAL).watches[0]
    assert watch.jurisdictions == ("HK", "MO", "CN")
    assert watch.routes == ()
    assert watch.schedule.interval == 6 * 3600
    assert watch.max_size == 10_000_000
    assert watch.timeout == 60
    assert watch.kind == "policy"
    assert watch.rules.select == ()


def test_watch_settings_override_defaults() -> None:
    wl = load(
        """\
        defaults:
          interval: 1h
          jitter: 2m
          jurisdictions: [HK]
          routes: [desk]
          headers: {Accept-Language: en}
          user_agent: research-bot/1.0
        routes:
          desk: ["json://127.0.0.1:9/hook"]
          ops: "mailto://u:${PASS}@mail.example.org"
        watches:
          - id: a
            platform: X
            name: A
            url: https://example.org/a
            cron: "0 */6 * * *"
            jurisdictions: [TW, MO]
            routes: [ops]
            headers: {Accept-Language: zh-HK}
            select: [main, "#content > p"]
            ignore: ['Last updated: .*']
            about: HK
            tags: [hk]
        """,
        env={"PASS": "s3cret"},
    )
    watch = wl.watches[0]
    assert watch.schedule.cron == "0 */6 * * *" and watch.schedule.interval is None
    assert watch.schedule.jitter == 120
    assert watch.jurisdictions == ("TW", "MO")
    assert watch.routes == ("ops",)
    assert dict(watch.headers) == {"Accept-Language": "zh-HK", "User-Agent": "research-bot/1.0"}
    assert watch.rules.select == ("main", "#content > p")
    assert wl.routes["ops"].urls == ("mailto://u:s3cret@mail.example.org",)
    assert wl.routes["desk"].accepts("change", ["CN"]) and wl.routes["desk"].accepts("health", [])


def test_routes_filter_by_kind_and_jurisdiction() -> None:
    wl = load(
        "routes:\n"
        '  hk-desk: {urls: ["json://127.0.0.1:9/hk"], jurisdictions: [HK], kinds: [change]}\n'
        '  ops: {urls: ["json://127.0.0.1:9/ops"], kinds: [health]}\n' + MINIMAL
    )
    hk, ops = wl.routes["hk-desk"], wl.routes["ops"]
    assert hk.accepts("change", ["HK", "CN"]) and not hk.accepts("change", ["CN"])
    assert not hk.accepts("health", [])
    assert ops.accepts("health", []) and not ops.accepts("change", ["HK"])


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("30s", 30), ("15m", 900), ("6h", 21600), ("1d", 86400), ("1h30m", 5400), (90, 90)],
)
def test_durations(value: object, seconds: float) -> None:
    assert config.parse_duration(value) == seconds


@pytest.mark.parametrize(
    ("value", "size"), [("10MB", 10**7), ("500KB", 500_000), ("1MiB", 2**20), (42, 42)]
)
def test_sizes(value: object, size: int) -> None:
    assert config.parse_size(value) == size


# Each class of mistake: (watchlist text, line of the problem, words the message must say)
MISTAKES = [
    pytest.param(MINIMAL + "    colour: red\n", 6, "unknown key", id="unknown-key"),
    pytest.param("watchez: []\n" + MINIMAL, 1, "unknown key", id="unknown-section"),
    pytest.param(MINIMAL + MINIMAL.split("\n", 1)[1], 6, "duplicate watch id", id="duplicate-id"),
    pytest.param(
        MINIMAL.replace("https://transparency", "htp://transparency"),
        5,
        "http(s) URL",
        id="bad-url",
    ),
    pytest.param(
        MINIMAL + "    select: ['main >> p']\n", 6, "invalid CSS selector", id="bad-selector"
    ),
    pytest.param(
        MINIMAL + "    ignore: ['Updated: (']\n", 6, "invalid regular expression", id="bad-regex"
    ),
    pytest.param(MINIMAL + "    interval: 6 hours\n", 6, "not a duration", id="bad-duration"),
    pytest.param(MINIMAL + "    cron: '99 * * * *'\n", 6, "invalid cron", id="bad-cron"),
    pytest.param(
        MINIMAL + "    interval: 1h\n    cron: '0 * * * *'\n", 7, "not both", id="interval-and-cron"
    ),
    pytest.param(
        MINIMAL + "    jurisdictions: [HK, XX]\n",
        6,
        "unknown jurisdiction 'XX'",
        id="unknown-jurisdiction",
    ),
    pytest.param(
        MINIMAL + "    about: Atlantis\n", 6, "unknown jurisdiction 'Atlantis'", id="unknown-about"
    ),
    pytest.param(MINIMAL + "    routes: [desk]\n", 6, "unknown route 'desk'", id="unknown-route"),
    pytest.param(
        MINIMAL.replace("    url: https", "    link: https"),
        2,
        "url: required key is missing",
        id="missing-key",
    ),
    pytest.param(
        MINIMAL.replace("id: meta-hk", "id: Meta HK"),
        2,
        "'Meta HK' is not a valid id: use lowercase letters, digits and dashes",
        id="bad-id",
    ),
    pytest.param(
        "routes:\n  desk: ['nope://x']\n" + MINIMAL,
        2,
        "apprise does not accept",
        id="apprise-rejects",
    ),
    pytest.param(
        "routes:\n  desk: ['json://${HOOK_HOST}/x']\n" + MINIMAL,
        2,
        "HOOK_HOST is not set",
        id="unset-env",
    ),
    pytest.param(
        "defaults:\n  interval: 1h\n  interval: 2h\n" + MINIMAL,
        3,
        "duplicate key",
        id="duplicate-key",
    ),
    pytest.param(
        "defaults:\n  failures_before_alert: 0\n" + MINIMAL,
        2,
        "greater than or equal to 1",
        id="bad-number",
    ),
    pytest.param("watches:\n  - id: [unclosed\n", 3, "invalid YAML", id="yaml-syntax"),
    pytest.param(
        "jurisdictions:\n  ZZ: {terms: [x]}\n" + MINIMAL,
        2,
        "needs a `name`",
        id="new-jurisdiction-without-name",
    ),
    pytest.param("watches: []\n", 1, "non-empty list", id="no-watches"),
    pytest.param(
        "routes:\n  r: {urls: ['json://h/x'], kinds: [sms]}\n" + MINIMAL,
        2,
        "'change' or 'health'",
        id="bad-route-kind",
    ),
    pytest.param("routes:\n  r: {urls: []}\n" + MINIMAL, 2, "at least 1 item", id="empty-route"),
    pytest.param(
        "routes:\n  r: {urls: ['json://h/x'], jurisdictions: [ZZ]}\n" + MINIMAL,
        2,
        "unknown jurisdiction 'ZZ'",
        id="route-unknown-jurisdiction",
    ),
]


@pytest.mark.parametrize(("text", "line", "words"), MISTAKES)
def test_each_mistake_is_reported_with_its_line(text: str, line: int, words: str) -> None:
    found = problems(text)
    assert any(p.startswith(f"w.yaml:{line}:") and words in p for p in found), found


def test_five_mistakes_are_all_reported_at_once() -> None:
    text = textwrap.dedent(
        """\
        defaults:
          interval: often
        watches:
          - id: a
            platform: A
            name: A
            url: ftp://example.org/a
          - id: b
            platform: B
            name: B
            url: https://example.org/b
            select: ['div[']
            jurisdictions: [HK, Narnia]
          - id: a
            platform: A
            name: A again
            url: https://example.org/a2
            colour: blue
        """
    )
    found = problems(text)
    lines = sorted(int(p.split(":")[1]) for p in found)
    assert lines == [2, 7, 12, 13, 14, 18], found


def test_new_jurisdictions_can_be_defined_and_used() -> None:
    wl = load(
        "jurisdictions:\n  XUAR: {name: Xinjiang, terms: [Xinjiang, Uyghur]}\n"
        + MINIMAL
        + "    jurisdictions: [XUAR]\n"
    )
    assert wl.watches[0].jurisdictions == ("XUAR",)
    assert wl.jurisdictions["XUAR"].terms == ["Xinjiang", "Uyghur"]


def test_secrets_are_redacted_in_messages() -> None:
    found = problems(
        "routes:\n  desk: ['nope://user:${TOKEN}@host/path?key=${TOKEN}']\n" + MINIMAL,
        env={"TOKEN": "hunter2"},
    )
    assert found and all("hunter2" not in p for p in found)


@pytest.mark.parametrize(
    "url",
    [
        "mailto://me:pw@mail.example.org?to=a@b.org",
        "slack://T0/B0/secret-token/#chan",
        "json://h:1/x?k=v",
    ],
)
def test_redact_hides_credentials_and_tokens(url: str) -> None:
    redacted = redact(url)
    assert "pw" not in redacted and "secret-token" not in redacted and "k=v" not in redacted
    assert redacted.split("://")[0] == url.split("://")[0]


def test_unreadable_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        config.load(tmp_path / "missing.yaml")


def test_default_watchlist_validates_with_the_real_catalog_and_apprise() -> None:
    wl = config.load(ROOT / "watchlist.yaml", env={})
    platforms = {w.platform for w in wl.watches}
    assert len(wl.watches) >= 25 and len(platforms) >= 12
    assert {"HK", "MO", "CN"} <= set(wl.defaults.jurisdictions)
    assert all(w.url.startswith("https://") for w in wl.watches)
    assert wl.routes == {}  # runs with no environment set


def test_packaged_watchlist_is_the_top_level_one() -> None:
    assert (ROOT / "watchlist.yaml").read_bytes() == (
        ROOT / "monitor/data/watchlist.yaml"
    ).read_bytes()


def test_browser_wait_for_and_expect() -> None:
    wl = load(
        """
        defaults:
          browser: never
        watches:
          - {id: a, platform: A, name: A, url: 'https://example.org/a'}
          - id: b
            platform: B
            name: B
            url: https://example.org/b
            browser: always
            select: [main, "#report"]
            expect: ["Hong Kong", {css: "table.requests tr"}]
          - {id: c, platform: C, name: C, url: 'https://example.org/c', wait_for: table}
        """
    )
    a, b, c = wl.watches
    assert (a.browser, a.wait_for, a.rules.expect_text) == ("never", None, ())
    assert (b.browser, b.wait_for) == ("always", "main, #report")  # `select` is waited for
    assert b.rules.expect_text == ("Hong Kong",)
    assert b.rules.expect_css == ("table.requests tr",)
    assert (c.browser, c.wait_for) == ("never", "table")


def test_browser_and_expect_mistakes_are_named() -> None:
    found = problems(
        """
        watches:
          - id: a
            platform: A
            name: A
            url: https://example.org/a
            browser: sometimes
            wait_for: "div["
            expect: ["", {xpath: "//x"}]
        """
    )
    assert any("(a).browser: Input should be 'never', 'auto' or 'always'" in p for p in found)
    assert any("(a).wait_for: invalid CSS selector 'div['" in p for p in found)
    assert any("(a).expect[0]: '' is neither a text nor {css: SELECTOR}" in p for p in found)
    assert any("(a).expect[1]: {'xpath': '//x'} is neither" in p for p in found)


# --- ${VAR} in route URLs --------------------------------------------------------------


def _env_example() -> dict[str, str]:
    lines = (ROOT / "monitor.env.example").read_text(encoding="utf-8").splitlines()
    pairs = (line.split("=", 1) for line in lines if line and not line.startswith("#"))
    return {key.strip(): value.strip() for key, value in pairs}


def _readme_example() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Configuration: the watchlist", 1)[1]
    return section.split("```yaml\n", 1)[1].split("```", 1)[0]


def test_readme_example_validates_with_the_shipped_env_example() -> None:
    from monitor import notify

    env = _env_example()
    assert "@" in env["SMTP_USER"]  # the case that used to break the route
    wl = config.loads(_readme_example(), "README.md", env=env, check_url=notify.validate)
    assert wl.routes["desk"].urls and wl.routes["hk-desk"].urls


def _service(url: str) -> object:
    import apprise

    service = apprise.Apprise.instantiate(url)
    assert service is not None, url
    return service


@pytest.mark.parametrize(
    "route",
    [
        "mailto://${USER}:${PASS}@mail.example.org?to=desk@example.org",
        "mailto://mail.example.org?user=${USER}&pass=${PASS}&to=desk@example.org",
    ],
    ids=["userinfo", "query"],
)
@pytest.mark.parametrize("password", ["p@ss/w#rd?x%41", "a:b&c=d+e f", "香港;,"])
def test_a_secret_reaches_apprise_verbatim(route: str, password: str) -> None:
    from monitor import notify

    wl = load(
        f"routes:\n  desk: [{route!r}]\n" + MINIMAL,
        env={"USER": "monitor@example.org", "PASS": password},
        check_url=notify.validate,
    )
    service: Any = _service(wl.routes["desk"].urls[0])
    assert (service.user, service.password) == ("monitor@example.org", password)
    assert service.host == "mail.example.org"


def test_a_secret_in_a_path_or_query_reaches_apprise_verbatim() -> None:
    token, value = "ab/c?d#e%41", "x&y=z%41"
    wl = load(
        "routes:\n"
        '  chat: ["mmost://chat.example.org/${TOKEN}"]\n'
        '  hook: ["json://${HOST}/hook/${TOKEN}?+X-Key=${VALUE}"]\n' + MINIMAL,
        env={"TOKEN": token, "VALUE": value, "HOST": "127.0.0.1:9"},
        check_url=lambda url: True,
    )
    chat: Any = _service(wl.routes["chat"].urls[0])
    assert chat.token == token
    hook: Any = _service(wl.routes["hook"].urls[0])
    assert (hook.host, hook.port) == ("127.0.0.1", 9)
    # a webhook's path is sent as a path: the token is one segment, decoded by the server
    assert [unquote(part) for part in hook.fullpath.split("/")] == ["", "hook", token]
    assert hook.headers == {"X-Key": value}


def test_a_variable_that_is_the_whole_url_is_used_as_is() -> None:
    url = "json://127.0.0.1:9/a%2Fb?x=1&y=2"
    wl = load("routes:\n  r: ['${HOOK_URL}']\n" + MINIMAL, env={"HOOK_URL": url})
    assert wl.routes["r"].urls == (url,)


# --- a lone value where a list belongs --------------------------------------------------


def test_a_lone_string_is_a_one_item_list_for_every_list_key() -> None:
    wl = load(
        """\
        defaults:
          jurisdictions: HK
          routes: desk
        routes:
          desk: {urls: "json://127.0.0.1:9/desk", kinds: change, jurisdictions: MO}
        jurisdictions:
          HK: {terms: national security law}
        watches:
          - id: a
            platform: A
            name: A
            url: https://example.org/a
          - id: b
            platform: B
            name: B
            url: https://example.org/b
            jurisdictions: TW
            routes: desk
            select: main
            remove: nav
            ignore: 'Updated: .*'
            tags: hk
            expect: Hong Kong
        """
    )
    a, b = wl.watches
    assert (a.jurisdictions, a.routes) == (("HK",), ("desk",))
    assert (b.jurisdictions, b.routes, b.tags) == (("TW",), ("desk",), ("hk",))
    assert (b.rules.select, b.rules.remove, b.rules.ignore) == (
        ("main",),
        ("nav",),
        ("Updated: .*",),
    )
    assert b.rules.expect_text == ("Hong Kong",)
    desk = wl.routes["desk"]
    assert (desk.urls, desk.kinds, desk.jurisdictions) == (
        ("json://127.0.0.1:9/desk",),
        ("change",),
        ("MO",),
    )
    assert wl.jurisdictions["HK"].terms == ["national security law"]


def test_a_lone_unknown_name_is_named_whole_not_letter_by_letter() -> None:
    found = problems(MINIMAL + "    routes: chat\n    jurisdictions: Narnia\n    colour: red\n")
    assert any("unknown route 'chat'" in p for p in found), found
    assert any("unknown jurisdiction 'Narnia'" in p for p in found), found
    assert not any("'c'" in p or "'N'" in p for p in found), found


# --- validate speaks the user's words --------------------------------------------------


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        (
            MINIMAL + "    intervall: 1h\n",
            6,
            "unknown key 'intervall' (did you mean 'interval'?)",
        ),
        ("defaults:\n  jurisdiction: [HK]\n" + MINIMAL, 2, "(did you mean 'jurisdictions'?)"),
        ("watchez: []\n" + MINIMAL, 1, "unknown key 'watchez' (did you mean 'watches'?)"),
        (
            "routes:\n  r: {url: ['json://h/x']}\n" + MINIMAL,
            2,
            "unknown key 'url' (did you mean 'urls'?)",
        ),
        (MINIMAL + "    jitter: 1m\n", 6, "unknown key 'jitter' (it belongs in `defaults`)"),
        (MINIMAL + "    colour: red\n", 6, "unknown key 'colour'"),
    ],
    ids=["watch", "defaults", "section", "route", "defaults-only", "no-suggestion"],
)
def test_an_unknown_key_suggests_the_nearest_known_one(text: str, line: int, words: str) -> None:
    found = problems(text)
    assert any(p.startswith(f"w.yaml:{line}:") and words in p for p in found), found


def test_the_id_pattern_is_explained_in_words() -> None:
    found = problems(MINIMAL.replace("id: meta-hk", "id: Meta_HK"))
    assert any("lowercase letters, digits and dashes" in p for p in found), found
    assert not any("pattern" in p for p in found), found


def test_jurisdiction_ids_in_lower_case_are_understood() -> None:
    wl = load(
        """        defaults:
          jurisdictions: [hk, mo]
        routes:
          hk-desk: {urls: ["json://127.0.0.1:9/hk"], jurisdictions: [hk]}
        jurisdictions:
          hk: {terms: [Article 23]}
          xuar: {name: Xinjiang, terms: [Uyghur]}
        watches:
          - {id: a, platform: A, name: A, url: 'https://example.org/a'}
          - id: b
            platform: B
            name: B
            url: https://example.org/b
            about: hk
            jurisdictions: [tw, Xuar]
        """
    )
    a, b = wl.watches
    assert a.jurisdictions == ("HK", "MO")
    assert (b.about, b.jurisdictions) == ("HK", ("TW", "xuar"))
    assert wl.routes["hk-desk"].jurisdictions == ("HK",)
    assert set(wl.jurisdictions) == {"HK", "xuar"}
    assert wl.defaults.jurisdictions == ["HK", "MO"]


def test_interval_and_cron_are_reported_with_other_problems() -> None:
    found = problems(
        "defaults:\n  interval: 1h\n  cron: '0 * * * *'\n"
        + MINIMAL
        + "    interval: 1h\n    cron: '0 * * * *'\n    colour: red\n"
    )
    assert sum("give `interval` or `cron`, not both" in p for p in found) == 2, found
    assert any("unknown key 'colour'" in p for p in found), found


def test_timeout_max_size_and_user_agent_can_be_set_per_watch() -> None:
    wl = load(
        """        defaults:
          timeout: 30s
          max_size: 1MB
          user_agent: research-bot/1.0
        watches:
          - {id: a, platform: A, name: A, url: 'https://example.org/a'}
          - id: b
            platform: B
            name: B
            url: https://example.org/b
            timeout: 2m
            max_size: 50MB
            user_agent: research-bot/2.0
        """
    )
    a, b = wl.watches
    assert (a.timeout, a.max_size, dict(a.headers)) == (
        30,
        10**6,
        {"User-Agent": "research-bot/1.0"},
    )
    assert (b.timeout, b.max_size, dict(b.headers)) == (
        120,
        50 * 10**6,
        {"User-Agent": "research-bot/2.0"},
    )


def test_a_route_may_name_a_jurisdiction_defined_in_the_file() -> None:
    wl = load(
        "routes:\n  xj-desk: {urls: ['json://127.0.0.1:9/xj'], jurisdictions: [XJ]}\n"
        "jurisdictions:\n  XJ: {name: Xinjiang, terms: [Uyghur]}\n" + MINIMAL
    )
    assert wl.routes["xj-desk"].jurisdictions == ("XJ",)


# --- a minimal watch is {id, url} -------------------------------------------------------


def test_a_watch_needs_only_an_id_and_a_url() -> None:
    wl = load(
        """\
        watches:
          - id: meta-hk
            url: https://transparency.meta.com/reports/government-data-requests/country/HK/
          - {id: apple, url: 'https://www.apple.com/hk/legal/privacy/?lang=zh'}
          - {id: root, url: 'https://Example.org'}
          - {id: own, url: 'https://example.org/a', platform: Example, name: A page}
        """
    )
    meta, apple, root, own = wl.watches
    assert (meta.platform, meta.name) == (
        "transparency.meta.com",
        "transparency.meta.com/reports/government-data-requests/country/HK",
    )
    assert (apple.platform, apple.name) == ("apple.com", "apple.com/hk/legal/privacy")
    assert (root.platform, root.name) == ("example.org", "example.org")
    assert (own.platform, own.name) == ("Example", "A page")


def test_an_empty_platform_or_name_is_still_a_mistake() -> None:
    found = problems(MINIMAL.replace("platform: Meta", "platform: ''"))
    assert any("(meta-hk).platform: must not be empty" in p for p in found)


def test_enabled_is_per_watch_and_defaults_to_true() -> None:
    watchlist = load(
        """\
        watches:
          - {id: live, url: 'https://example.org/a'}
          - {id: paused, url: 'https://example.org/b', enabled: false}
        """
    )
    assert [(w.id, w.enabled) for w in watchlist.watches] == [("live", True), ("paused", False)]
    [problem] = problems(
        """\
        defaults:
          enabled: false
        watches:
          - {id: live, url: 'https://example.org/a'}
        """
    )
    assert "defaults.enabled" in problem


def test_max_changes_bounds_an_alert_and_is_checked() -> None:
    assert load(MINIMAL).watches[0].max_changes == 25
    assert load("defaults: {max_changes: 5}\n" + MINIMAL).watches[0].max_changes == 5
    [problem] = problems("defaults: {max_changes: 0}\n" + MINIMAL)
    assert problem.startswith("w.yaml:1: defaults.max_changes:")
