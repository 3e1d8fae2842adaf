"""Settings layering and refusals, the CLI's refusal, and the i18n catalogs.

Layers: defaults < TOML file (``[kiosk] idle_timeout`` too) < ``EPAY_*`` env < flags.
Catalogs: zh and en hold the same keys, every error code has a sentence in both, an
unknown code keeps its code visible, and no screen ever shows a raw catalog key.
"""

from __future__ import annotations

import html
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any, get_args

import pytest
from textual.pilot import Pilot

from epay_tui.api import errors, rules
from epay_tui.config import Settings, SettingsError, load_settings
from epay_tui.i18n import LANGUAGES, catalog, tr
from epay_tui.i18n.errors import describe
from epay_tui.screens.change_password import ChangePasswordScreen
from epay_tui.screens.help import HelpScreen
from epay_tui.screens.login import LoginScreen
from epay_tui.screens.menu import MenuScreen
from epay_tui.screens.profile import ProfileScreen
from epay_tui.screens.reset_password import ResetPasswordScreen
from tests.conftest import ZHANG, latest_captcha_answer
from tests.test_ui_accounts import SIZE, answer_for, screen_text, settle, start

CATALOGS = {lang: catalog(lang) for lang in LANGUAGES}

KIOSK_TOML = """\
server = "http://toml.example:8000/"
lang = "en"
timeout = 5.5

[kiosk]
idle_timeout = 300
staff_pin_hash = "scrypt$toml"
"""


def write(tmp_path: Path, text: str, name: str = "config.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# ---------------------------------------------------------------------------- layering
def test_defaults_when_nothing_is_given(tmp_path):
    settings = load_settings({}, env={})
    assert settings == Settings()
    assert (settings.server, settings.lang, settings.kiosk, settings.helpdesk) == (
        None,
        "zh",
        False,
        False,
    )
    assert (settings.idle_timeout, settings.timeout, settings.staff_pin_hash) == (120, 10.0, None)


def test_toml_file_over_defaults_including_the_kiosk_table(tmp_path):
    settings = load_settings({}, env={}, config_path=write(tmp_path, KIOSK_TOML))
    assert settings.server == "http://toml.example:8000"  # trailing slash dropped
    assert settings.lang == "en"
    assert settings.timeout == 5.5
    assert settings.idle_timeout == 300
    assert settings.staff_pin_hash == "scrypt$toml"
    assert settings.kiosk is False and settings.helpdesk is False  # untouched defaults


def test_the_default_config_file_is_read_when_no_path_is_given(tmp_path, monkeypatch):
    home = tmp_path / "xdg_config_home"  # the conftest points XDG_CONFIG_HOME here
    assert os.environ["XDG_CONFIG_HOME"] == str(home)
    (home / "epay-tui").mkdir(parents=True)
    write(home / "epay-tui", "[kiosk]\nidle_timeout = 45\n")
    assert load_settings({}, env={}).idle_timeout == 45


def test_env_over_toml(tmp_path):
    env = {
        "EPAY_LANG": "zh",
        "EPAY_IDLE_TIMEOUT": "200",
        "EPAY_KIOSK": "true",
        "EPAY_SERVER": "https://env.example",
        "UNRELATED": "x",
    }
    settings = load_settings({}, env=env, config_path=write(tmp_path, KIOSK_TOML))
    assert settings.lang == "zh"
    assert settings.idle_timeout == 200
    assert settings.kiosk is True
    assert settings.server == "https://env.example"
    assert settings.timeout == 5.5  # from the file: env did not set it
    assert settings.staff_pin_hash == "scrypt$toml"


def test_flags_over_env_and_unset_flags_do_not_count(tmp_path):
    env = {"EPAY_LANG": "en", "EPAY_IDLE_TIMEOUT": "200", "EPAY_SERVER": "https://env.example"}
    flags = {
        "lang": "zh",
        "idle_timeout": 90,
        "server": None,  # not given on the command line
        "kiosk": None,
        "helpdesk": True,
    }
    settings = load_settings(flags, env=env, config_path=write(tmp_path, KIOSK_TOML))
    assert settings.lang == "zh"
    assert settings.idle_timeout == 90
    assert settings.server == "https://env.example"
    assert settings.helpdesk is True
    assert settings.kiosk is False


def test_the_real_environment_is_read_when_no_env_is_passed(tmp_path, monkeypatch):
    monkeypatch.setenv("EPAY_IDLE_TIMEOUT", "33")
    monkeypatch.setenv("EPAY_LANG", "en")
    settings = load_settings({}, config_path=write(tmp_path, KIOSK_TOML))
    assert (settings.idle_timeout, settings.lang) == (33, "en")


@pytest.mark.parametrize(
    ("value", "expected"),
    [("1", True), ("yes", True), ("on", True), ("0", False), ("false", False), ("off", False)],
)
def test_env_booleans(value, expected):
    assert load_settings({}, env={"EPAY_KIOSK": value}).kiosk is expected


# ---------------------------------------------------------------------------- refusals
@pytest.mark.parametrize(
    ("env", "words"),
    [
        ({"EPAY_IDLE_TIMEOUT": "soon"}, ["idle_timeout", "soon"]),
        ({"EPAY_IDLE_TIMEOUT": "5"}, ["idle_timeout", "10", "3600"]),
        ({"EPAY_IDLE_TIMEOUT": "7200"}, ["idle_timeout", "3600"]),
        ({"EPAY_LANG": "fr"}, ["lang", "fr"]),
        ({"EPAY_SERVER": "ftp://x"}, ["server", "ftp://x"]),
        ({"EPAY_KIOSK": "maybe"}, ["kiosk", "maybe"]),
        ({"EPAY_TIMEOUT": "0"}, ["timeout"]),
        ({"EPAY_TIMEOUT": "fast"}, ["timeout", "fast"]),
    ],
)
def test_bad_env_values_are_refused_with_a_clear_message(env, words):
    with pytest.raises(SettingsError) as caught:
        load_settings({}, env=env)
    text = str(caught.value)
    for word in words:
        assert word in text, text


@pytest.mark.parametrize(
    ("toml", "words"),
    [
        ("[kiosk]\nidle_timeout = 5\n", ["idle_timeout", "5"]),
        ('[kiosk]\nidle_timeout = "two minutes"\n', ["idle_timeout", "two minutes"]),
        ('lang = "de"\n', ["lang", "de"]),
        ("server = 42\n", ["server"]),
        ('servr = "http://typo"\n', ["servr"]),
        ("lang = \n", ["cannot read", "config.toml"]),
    ],
)
def test_bad_toml_values_are_refused_with_a_clear_message(tmp_path, toml, words):
    with pytest.raises(SettingsError) as caught:
        load_settings({}, env={}, config_path=write(tmp_path, toml))
    text = str(caught.value)
    for word in words:
        assert word in text, text


def test_bad_flag_value_is_refused():
    with pytest.raises(SettingsError, match="idle_timeout"):
        load_settings({"idle_timeout": 3}, env={})


def test_an_explicit_config_that_does_not_exist_is_an_error(tmp_path):
    missing = tmp_path / "nowhere" / "epay.toml"
    with pytest.raises(SettingsError) as caught:
        load_settings({}, env={}, config_path=missing)
    assert "not found" in str(caught.value)
    assert str(missing) in str(caught.value)


def test_a_missing_default_config_is_fine():
    assert load_settings({}, env={}) == Settings()


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    command = Path(sys.executable).with_name("epay-tui")
    return subprocess.run(
        [str(command), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        stdin=subprocess.DEVNULL,
    )


def test_cli_refuses_a_non_http_server_with_exit_2_and_a_message():
    done = cli("--server", "ftp://x")
    assert done.returncode == 2
    assert "ftp://x" in done.stderr
    assert "http" in done.stderr
    assert "Traceback" not in done.stderr
    assert done.stdout == ""


def test_cli_refuses_a_missing_config_file(tmp_path):
    missing = tmp_path / "absent.toml"
    done = cli("--config", str(missing), "--server", "http://127.0.0.1:9")
    assert done.returncode == 2
    assert "not found" in done.stderr and str(missing) in done.stderr
    assert "Traceback" not in done.stderr


# ---------------------------------------------------------------------------- catalogs
def test_both_catalogs_have_the_same_keys():
    zh, en = set(CATALOGS["zh"]), set(CATALOGS["en"])
    assert zh - en == set()
    assert en - zh == set()


def test_no_catalog_entry_is_empty_and_placeholders_match():
    for key, zh_text in CATALOGS["zh"].items():
        en_text = CATALOGS["en"][key]
        assert zh_text.strip() and en_text.strip(), key
        assert set(re.findall(r"{(\w+)}", zh_text)) == set(re.findall(r"{(\w+)}", en_text)), key


def test_every_key_the_bar_draws_has_its_word_in_both_languages():
    """The key bar's word for a binding is ``key.<id>``: every shown binding of every
    screen and of the app has one (a missing word would show the raw key)."""
    from textual.binding import Binding

    from epay_tui.app import SCREENS_BY_NAME, EpayApp, screen_class

    owners = [EpayApp, *(screen_class(name) for name in SCREENS_BY_NAME)]
    drawn = {
        f"key.{binding.id}"
        for owner in owners
        for binding in Binding.make_bindings(owner.BINDINGS)
        if binding.show and binding.id
    }
    assert len(drawn) > 25
    for lang in ("zh", "en"):
        assert drawn - set(CATALOGS[lang]) == set(), lang


@pytest.mark.parametrize("code", sorted(errors.ERRORS_BY_CODE))
def test_every_error_code_has_a_sentence_in_both_languages(code):
    for lang in ("zh", "en"):
        assert f"error.{code}" in CATALOGS[lang], f"{lang} has no error.{code}"


@pytest.mark.parametrize("code", sorted(errors.ERRORS_BY_CODE))
def test_describe_never_gives_a_missing_key(code):
    key, values = describe(errors.ERRORS_BY_CODE[code]())
    for lang in ("zh", "en"):
        assert key in CATALOGS[lang]
        assert tr(lang, key, **values).strip()


def test_rule_and_problem_names_exist_in_both_languages():
    names = [f"rule.{r}" for r in rules.PASSWORD_REASONS]
    names += [f"problem.{p}" for p in get_args(rules.ProfileProblem)]
    for lang in ("zh", "en"):
        assert [n for n in names if n not in CATALOGS[lang]] == []


def test_describe_an_unknown_code_keeps_the_code():
    exc = errors.error_from_body(418, {"error": {"code": "TEAPOT", "details": {}}})
    key, values = describe(exc)
    assert (key, values) == ("error.UNKNOWN", {"code": "TEAPOT"})
    assert "TEAPOT" in tr("zh", key, **values)
    assert "TEAPOT" in tr("en", key, **values)


def test_describe_transport_failures_as_busy():
    for exc in (errors.BackendUnreachable(), errors.BackendTimeout(), errors.BadResponse()):
        assert describe(exc) == ("app.busy", {})
    assert tr("zh", "app.busy").startswith("网络繁忙")


def test_describe_fills_the_values_of_its_sentence():
    key, values = describe(errors.BadCredentials(attempts_left=3))
    assert tr("zh", key, **values) == "学号或密码不正确，还可尝试 3 次"
    key, values = describe(errors.AccountLocked(locked_until="2026-11-26T10:15:00+08:00"))
    assert "10:15" in tr("zh", key, **values) and "10:15" in tr("en", key, **values)
    key, values = describe(errors.WeakPassword(reasons=["TOO_SHORT", "COMMON"]))
    zh = tr("zh", key, **{k: v("zh") if callable(v) else v for k, v in values.items()})
    en = tr("en", key, **{k: v("en") if callable(v) else v for k, v in values.items()})
    assert "8-32位" in zh and "非常见密码" in zh
    assert "8-32 characters" in en and "not a common password" in en


# ---------------------------------------------------------------------------- raw keys
KEYS = sorted(CATALOGS["zh"])


def screenshot_text(app: Any) -> str:
    """The words of the exported screenshot (SVG), tags stripped."""
    svg = app.export_screenshot()
    parts = re.findall(r"<text[^>]*>(.*?)</text>", svg, flags=re.DOTALL)
    return html.unescape("".join(parts)).replace("\xa0", " ")


def raw_keys_in(app: Any) -> list[str]:
    seen = screen_text(app) + "\n" + screenshot_text(app)
    found = [key for key in KEYS if key in seen]
    found += re.findall(r"{\w+}", seen)  # an unfilled placeholder
    return found


async def tour(pilot: Pilot, server: Any, lang: str) -> list[str]:
    """Visit every account screen; return the screens seen, asserting each is clean."""
    app = pilot.app
    seen: list[str] = []

    def look(kind: type, words: str) -> None:
        assert isinstance(app.screen, kind), app.screen
        text = screen_text(app)
        assert words in text, (kind.__name__, text)
        assert raw_keys_in(app) == [], (kind.__name__, lang)
        seen.append(kind.__name__)

    en = lang == "en"
    await start(pilot)
    look(LoginScreen, "Student payment login" if en else "学生缴费登录")
    await pilot.press("f1")
    look(HelpScreen, "Ctrl+R" if en else "换一张")
    await pilot.press("escape")

    await pilot.press(*ZHANG[0], "tab", "tab", "tab", "tab", "enter")
    await settle(pilot)
    look(ResetPasswordScreen, "Step 1" if en else "第一步")
    await pilot.press(*"张伟", "enter", *"320402200603152018", "enter")
    await pilot.press(*latest_captcha_answer(server), "enter")
    await settle(pilot)
    look(ResetPasswordScreen, "SMS 138****0001" if en else "短信 138****0001")
    await pilot.press("tab", "enter")
    await settle(pilot)
    look(ResetPasswordScreen, "Step 3" if en else "第三步")
    await pilot.press("escape")
    await settle(pilot)

    # back on login (focus where it was, on 忘记密码), its captcha still the one shown
    assert isinstance(app.screen, LoginScreen)
    assert app.focused is not None and app.focused.id == "forgot"
    await pilot.press("shift+tab", "shift+tab", "shift+tab", *ZHANG[1], "tab")
    await pilot.press(*answer_for(server, app.screen.captcha_id), "enter")
    await settle(pilot)
    look(ChangePasswordScreen, "First login" if en else "首次登录")
    await pilot.press(*"qzk7", "tab", *"qzk7", "enter")  # refused: too short
    await settle(pilot)
    look(ChangePasswordScreen, "8-32 characters" if en else "8-32位")
    await pilot.press(*"3915Zhang", "tab", *"3915Zhang", "enter")
    await settle(pilot)
    look(MenuScreen, "Profile" if en else "个人信息")
    await pilot.press("3")
    await settle(pilot)
    look(ProfileScreen, "Phone" if en else "手机号")
    await pilot.press("escape", "4")
    await settle(pilot)
    look(ChangePasswordScreen, "Current password" if en else "原密码")
    await pilot.press("f1")
    look(HelpScreen, "checklist" if en else "清单")
    await pilot.press("escape", "escape")
    look(MenuScreen, "Log out" if en else "退出登录")
    await pilot.press("5")
    await settle(pilot)
    look(LoginScreen, "Logged out" if en else "已退出登录")
    return seen


@pytest.mark.parametrize("lang", ["zh", "en"])
async def test_no_screen_shows_a_raw_catalog_key(make_ui_app, ui_server, lang):
    app = make_ui_app(lang=lang)
    async with app.run_test(size=SIZE) as pilot:
        seen = await tour(pilot, ui_server, lang)
    assert set(seen) == {
        "LoginScreen",
        "HelpScreen",
        "ResetPasswordScreen",
        "ChangePasswordScreen",
        "MenuScreen",
        "ProfileScreen",
    }


def test_the_raw_key_probe_would_see_a_key():
    """The probe itself: a catalog key and a placeholder in the text are both caught."""
    text = "学生缴费登录 login.title {seconds}"
    assert [k for k in KEYS if k in text] == ["login.title"]
    assert re.findall(r"{\w+}", text) == ["{seconds}"]


def test_the_other_languages_catalog_is_loaded_when_first_asked_for():
    """Start-up in Chinese does without the English catalog (and the reverse)."""
    import subprocess
    import sys

    probe = (
        "import sys; from epay_tui.i18n import tr; tr('zh', 'app.busy');"
        " print('epay_tui.i18n.en' in sys.modules);"
        " tr('en', 'app.busy'); print('epay_tui.i18n.en' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert done.stdout.split() == ["False", "True"], done.stderr
