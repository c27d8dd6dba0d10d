"""Settings precedence (flags > environment > csload.toml) and validation."""

import re
from pathlib import Path

import pytest

from csload.config import Limits, RetryPolicy, Settings, load_settings
from csload.errors import ConfigError, InsecureUrlError

ENV = {
    "CONTENTSQUARE_CLIENT_ID": "env-id",
    "CONTENTSQUARE_CLIENT_SECRET": "env-secret",
    "CONTENTSQUARE_PROJECT_ID": "7",
    "CONTENTSQUARE_AUTH_URL": "https://auth.example.com/",
}


def write_toml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "csload.toml"
    path.write_text(text)
    return path


def test_environment_is_read(tmp_path: Path) -> None:
    settings = load_settings(environ=ENV, config_file=write_toml(tmp_path, ""))
    assert settings.client_id == "env-id"
    assert settings.client_secret == "env-secret"
    assert settings.project_id == 7
    assert settings.auth_url == "https://auth.example.com"


def test_flags_win_over_environment_which_wins_over_file(tmp_path: Path) -> None:
    path = write_toml(tmp_path, 'client_id = "file-id"\nclient_secret = "file-secret"\n'
                                'project_id = 3\n')
    settings = load_settings(overrides={"client_id": "flag-id", "project_id": None},
                             environ={"CONTENTSQUARE_CLIENT_SECRET": "env-secret"},
                             config_file=path)
    assert settings.client_id == "flag-id"
    assert settings.client_secret == "env-secret"
    assert settings.project_id == 3
    assert settings.auth_url == "https://api.contentsquare.com"


def test_file_limits_and_retry_tables(tmp_path: Path) -> None:
    path = write_toml(tmp_path, 'client_id = "a"\nclient_secret = "b"\n'
                                "[limits]\napi_concurrency = 4\n[retry]\nmax_attempts = 2\n")
    settings = load_settings(environ={}, config_file=path)
    assert settings.limits.api_concurrency == 4
    assert settings.retry.max_attempts == 2


@pytest.mark.parametrize("missing", ["client_id", "client_secret"])
def test_missing_setting_names_it(tmp_path: Path, missing: str) -> None:
    env = {k: v for k, v in ENV.items() if k != f"CONTENTSQUARE_{missing.upper()}"}
    with pytest.raises(ConfigError) as info:
        load_settings(environ=env, config_file=write_toml(tmp_path, ""))
    message = str(info.value)
    assert f"missing setting: {missing}" in message
    assert f"CONTENTSQUARE_{missing.upper()}" in message
    assert "\n" not in message


def test_every_missing_setting_is_listed_at_once_with_where_to_give_it(tmp_path: Path) -> None:
    path = write_toml(tmp_path, "project_id = 3\n")
    with pytest.raises(ConfigError) as info:
        load_settings(environ={}, config_file=path)
    assert str(info.value) == (
        "missing settings: "
        f"client_id (set CONTENTSQUARE_CLIENT_ID, pass --client-id, or put client_id in {path})"
        " and client_secret (set CONTENTSQUARE_CLIENT_SECRET, pass --client-secret, or put "
        f"client_secret in {path})")
    with pytest.raises(ConfigError, match=r"^missing settings: client_id "
                                          r"\(CONTENTSQUARE_CLIENT_ID\) and client_secret "
                                          r"\(CONTENTSQUARE_CLIENT_SECRET\)$"):
        Settings(client_id="", client_secret="")


def test_explicit_missing_config_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_settings(environ=ENV, config_file=tmp_path / "nope.toml")


def test_invalid_toml_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_settings(environ=ENV, config_file=write_toml(tmp_path, "client_id = "))


def test_a_settings_file_with_a_byte_order_mark_or_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "csload.toml"
    path.write_bytes(b"\xef\xbb\xbf[limits]\napi_concurrency = 2\n")
    assert load_settings(environ=ENV, config_file=path).limits.api_concurrency == 2
    path.write_bytes("[limits]\napi_concurrency = 2\n".encode("utf-16"))
    with pytest.raises(ConfigError, match=r"csload.toml: the settings file is not UTF-8 text"):
        load_settings(environ=ENV, config_file=path)


@pytest.mark.parametrize(("line", "problem"), [
    ("[limits]\napi_concurrency = 8.5", "api_concurrency must be a whole number, got 8.5"),
    ("[limits]\nmax_staged_runs = 2.5", "max_staged_runs must be a whole number, got 2.5"),
    ("[limits]\ndownload_concurrency = 2.5", "download_concurrency must be a whole number"),
    ('[limits]\ndownload_concurrency = "4"', "download_concurrency must be a whole number, "
                                             "got '4'"),
    ("[limits]\napi_concurrency = true", "api_concurrency must be a whole number, got True"),
    ('[limits]\nread_timeout = "2m"', "read_timeout must be a finite number, got '2m'"),
    ('[limits]\nbatch_linger = "x"', "batch_linger must be a finite number, got 'x'"),
    ('[limits]\nlake_vacuum = 1', "lake_vacuum must be true or false, got 1"),
    ('[retry]\nmax_attempts = "3"', "max_attempts must be a whole number, got '3'"),
    # TOML's inf and nan: an OverflowError or "deadline must not be NaN" as "a bug in csload",
    # or every read timing out.
    ("[limits]\nconnect_timeout = inf", "connect_timeout must be a finite number, got inf"),
    ("[limits]\nread_timeout = nan", "read_timeout must be a finite number, got nan"),
    ("[limits]\napi_timeout = nan", "api_timeout must be a positive number of seconds"),
    ("[limits]\nlock_wait = nan", "lock_wait: a duration is a number of seconds, at least 0"),
    ("limits = 5", "[limits] must be a table"),
    ("retry = 3", "[retry] must be a table"),
])
def test_a_setting_of_the_wrong_type_is_named(tmp_path: Path, line: str, problem: str) -> None:
    # Such values passed the settings' checks, then failed deep in a sync or a doctor run as
    # "a bug in csload", or as "'<' not supported between instances of 'str' and 'int'".
    with pytest.raises(ConfigError, match=re.escape(problem)):
        load_settings(environ=ENV, config_file=write_toml(tmp_path, line + "\n"))


def test_a_config_file_given_as_text_a_home_path_and_a_bad_lock_wait_variable(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    write_toml(tmp_path, 'staging_dir = "~/staging"\n')
    # A str raised AttributeError; "~" was a folder named "~".
    settings = load_settings(environ=ENV, config_file="~/csload.toml")
    assert settings.staging_dir == tmp_path / "staging"
    with pytest.raises(ConfigError, match=r"^CSLOAD_LOCK_WAIT \(environment\): expected a "
                                          r"duration.*got 'forever'$"):
        load_settings(environ={**ENV, "CSLOAD_LOCK_WAIT": "forever"},
                      config_file=tmp_path / "csload.toml")


def test_bad_project_id_names_where_it_came_from(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"project_id must be an integer, got 'abc' "
                                          r"\(environment CONTENTSQUARE_PROJECT_ID\)$"):
        load_settings(environ={**ENV, "CONTENTSQUARE_PROJECT_ID": "abc"},
                      config_file=write_toml(tmp_path, ""))
    path = write_toml(tmp_path, 'project_id = "x1"\n')
    with pytest.raises(ConfigError, match=rf"got 'x1' \({re.escape(str(path))}\)$"):
        load_settings(environ={k: v for k, v in ENV.items() if "PROJECT" not in k},
                      config_file=path)


def test_a_project_id_given_as_text_is_an_int() -> None:
    """`Settings(project_id=os.environ[...])`: kept as "42", it made a second sync refuse the
    target as another project's, "project 42, and these settings are for project 42"."""
    assert Settings(client_id="c", client_secret="s", project_id="42").project_id == 42  # type: ignore[arg-type]
    for bad in ("x1", True, 4.2):
        with pytest.raises(ConfigError, match=r"project_id must be an integer, got .* "
                                              r"\(Settings.project_id\)$"):
            Settings(client_id="c", client_secret="s", project_id=bad)  # type: ignore[arg-type]


def test_api_concurrency_never_above_the_api_limit() -> None:
    assert Limits().api_concurrency == 8
    Limits(api_concurrency=10)
    with pytest.raises(ConfigError, match="between 1 and 10"):
        Limits(api_concurrency=11)
    with pytest.raises(ConfigError):
        Limits(api_concurrency=0)


def test_retry_policy_validation() -> None:
    with pytest.raises(ConfigError):
        RetryPolicy(max_attempts=0)


@pytest.mark.parametrize("url", ["http://api.contentsquare.com", "http://10.0.0.1:8080"])
def test_plain_http_refused_off_loopback(url: str) -> None:
    with pytest.raises(InsecureUrlError, match="https"):
        Settings(client_id="a", client_secret="b", auth_url=url)


@pytest.mark.parametrize("url", ["http://127.0.0.1:8765", "http://localhost:1", "http://[::1]:9",
                                 "http://127.5.6.7", "https://api.contentsquare.com"])
def test_https_or_loopback_accepted(url: str) -> None:
    assert Settings(client_id="a", client_secret="b", auth_url=url).auth_url == url


def test_secret_never_in_repr() -> None:
    settings = Settings(client_id="a", client_secret="s3cr3t-value")
    assert "s3cr3t-value" not in repr(settings)
    assert "s3cr3t-value" not in str(settings)
