"""The keys of csload.toml: an unknown or misplaced key or section is refused with the closest
valid key and its section (they used to be ignored silently); `staging_dir`'s precedence."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from csload.config import STAGING_DIR_ENV, load_settings, read_lake_options
from csload.errors import ConfigError

CREDENTIALS = 'client_id = "a"\nclient_secret = "b"\n'


def settings_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "csload.toml"
    path.write_text(CREDENTIALS + text)
    return path


def refusal(tmp_path: Path, text: str) -> str:
    path = settings_file(tmp_path, text)
    with pytest.raises(ConfigError) as raised:
        load_settings(environ={}, config_file=path)
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: ")
    return message[len(f"{path}: "):]


@pytest.mark.parametrize(("text", "expected"), [
    ("concurrency = 3", 'unknown key "concurrency" at the top level; did you mean [limits] '
                        "download_concurrency?"),
    ('lock_wait = "10m"', 'unknown key "lock_wait" at the top level; did you mean [limits] '
                          "lock_wait?"),
    ("[retry]\nmax_attempt = 3", 'unknown key "max_attempt" in [retry]; did you mean [retry] '
                                 "max_attempts?"),
    ("[limit]\nlock_wait = 3", "unknown section [limit]; did you mean [limits]?"),
    ("[limits]\nmax_attempts = 3", 'unknown key "max_attempts" in [limits]; did you mean '
                                   "[retry] max_attempts?"),
    ('[limits]\nstaging_dir = "/big"', 'unknown key "staging_dir" in [limits]; did you mean '
                                       "staging_dir (at the top level, before any [section])?"),
    ('client-secret = "b"', 'unknown key "client-secret" at the top level; did you mean '
                            "client_secret?"),
    ('[lake]\nregoin = "eu-west-1"', 'unknown key "regoin" in [lake]; did you mean [lake] '
                                     "region?"),
    ("[limits.retry]\nmax_attempts = 2", 'unknown key "retry" in [limits]; did you mean '
                                         "[retry]?"),
])
def test_an_unknown_or_misplaced_key_names_the_closest_valid_one(
        tmp_path: Path, text: str, expected: str) -> None:
    assert refusal(tmp_path, text) == expected


def test_a_key_like_nothing_known_lists_what_the_level_takes(tmp_path: Path) -> None:
    assert refusal(tmp_path, "xyzzy = 1") == (
        'unknown key "xyzzy" at the top level; the top level takes client_id, client_secret, '
        "project_id, auth_url, staging_dir and the sections [limits], [retry], [lake], "
        "[tables]")
    assert refusal(tmp_path, "[retry]\nxyzzy = 1").endswith(
        "[retry] takes max_attempts, base_delay, max_delay, max_retry_after")


def test_every_unknown_key_is_listed_at_once(tmp_path: Path) -> None:
    message = refusal(tmp_path, 'wait = "5m"\n[limits]\nread_timout = 9\n[limit]\nx = 1\n')

    assert message == (
        'unknown key "wait" at the top level (did you mean [limits] lock_wait?); '
        'unknown key "read_timout" in [limits] (did you mean [limits] read_timeout?); '
        "unknown section [limit] (did you mean [limits]?)")


def test_a_key_is_shown_quoted_without_its_control_characters(tmp_path: Path) -> None:
    message = refusal(tmp_path, '"evil\\u001b[31m" = 1')

    assert "\x1b" not in message
    assert message.startswith('unknown key "evil\\u001b[31m" at the top level')


def test_valid_files_load(tmp_path: Path) -> None:
    path = settings_file(tmp_path, 'project_id = 3\nstaging_dir = "stage"\n'
                                   '[limits]\ndownload_concurrency = 2\nlock_wait = "1m"\n'
                                   '[retry]\nmax_attempts = 2\n[tables]\n1121 = "pageviews"\n'
                                   '[lake]\nregion = "eu-west-1"\n')
    settings = load_settings(environ={}, config_file=path)

    assert settings.limits.download_concurrency == 2 and settings.limits.lock_wait == 60
    assert settings.retry.max_attempts == 2
    assert settings.tables == {1121: "pageviews"}
    assert settings.staging_dir == Path("stage")


def test_commands_that_read_only_the_lake_section_check_the_keys_too(tmp_path: Path) -> None:
    path = settings_file(tmp_path, '[lake]\nregion = "eu-west-1"\n')
    assert read_lake_options(path) == {"region": "eu-west-1"}
    path = settings_file(tmp_path, '[lakes]\nregion = "eu-west-1"\n')
    with pytest.raises(ConfigError, match=r"unknown section \[lakes\]; did you mean \[lake\]"):
        read_lake_options(path)


def test_staging_dir_flag_over_environment_over_file(tmp_path: Path) -> None:
    path = settings_file(tmp_path, 'staging_dir = "from-file"\n')
    env = {STAGING_DIR_ENV: "from-env"}

    assert load_settings(environ={}, config_file=path).staging_dir == Path("from-file")
    assert load_settings(environ=env, config_file=path).staging_dir == Path("from-env")
    assert load_settings(overrides={"staging_dir": Path("from-flag")}, environ=env,
                         config_file=path).staging_dir == Path("from-flag")
    assert load_settings(environ={}, config_file=settings_file(tmp_path, "")
                         ).staging_dir is None


@pytest.mark.parametrize("value", ['""', "3", "[]"])
def test_staging_dir_must_be_a_path(tmp_path: Path, value: str) -> None:
    path = settings_file(tmp_path, f"staging_dir = {value}\n")
    with pytest.raises(ConfigError, match="staging_dir must be the path of a folder"):
        load_settings(environ={}, config_file=path)


def test_the_readmes_settings_file_has_only_valid_keys(tmp_path: Path) -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```toml\n(.*?)```", readme, flags=re.DOTALL)
    assert blocks, "the README shows a csload.toml"
    for block in blocks:
        path = tmp_path / "csload.toml"
        path.write_text(block)
        settings = load_settings(environ={}, config_file=path)
        assert settings.client_id


@pytest.mark.parametrize("name", ["my views", "Views", "_csload", "views; drop table x"])
def test_a_tables_name_is_checked_where_the_file_gives_it(tmp_path: Path, name: str) -> None:
    """Said when the settings load, with the section and the job; it used to come later as a
    bare "invalid table name", without saying the settings file gave it."""
    message = refusal(tmp_path, f'[tables]\n1121 = "{name}"\n')
    assert message.startswith(f"[tables]: job 1121: invalid table name {name!r}"), message
