import pytest

from bot import config
from bot.config import NEEDS_RUN_HTTP, SETTINGS_BY_NAME, Secret, SettingsError, load_settings


def test_defaults_need_nothing() -> None:
    settings = load_settings({})
    assert settings.port == 3000 and settings.required_approvals == 1
    assert settings.slack_api_url == "https://slack.com/api/"
    assert settings.cc_api_url == "https://api.cc.email/v3"
    assert str(settings.db_path) == "deletetags.db"


def test_every_problem_is_listed_at_once_without_secret_values() -> None:
    env = {"SLACK_BOT_TOKEN": "not-a-token-hunter2", "REQUIRED_APPROVALS": "zero", "PORT": "70000",
           "APPROVER_IDS": "alice", "LOG_LEVEL": "LOUD"}
    with pytest.raises(SettingsError) as caught:
        load_settings(env, needs=NEEDS_RUN_HTTP)
    text = str(caught.value)
    for fragment in ("SLACK_SIGNING_SECRET is missing", "CC_CLIENT_ID is missing", "REQUIRED_APPROVALS is not valid",
                     "PORT is not valid", "APPROVER_IDS is not valid", "LOG_LEVEL is not valid",
                     "SLACK_BOT_TOKEN does not start with xoxb-"):
        assert fragment in text
    assert "hunter2" not in text
    assert len(caught.value.problems) == 7


def test_approvers_can_come_from_either_setting() -> None:
    env = {"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_SIGNING_SECRET": "s", "CC_CLIENT_ID": "c", "APPROVER_GROUP": "@leads"}
    settings = load_settings(env, needs=NEEDS_RUN_HTTP)
    assert settings.approver_group == "leads" and settings.approver_ids == ()
    with pytest.raises(SettingsError, match="APPROVER_IDS or APPROVER_GROUP is missing"):
        load_settings({**env, "APPROVER_GROUP": ""}, needs=NEEDS_RUN_HTTP)


def test_secrets_never_show() -> None:
    settings = load_settings({"SLACK_BOT_TOKEN": "xoxb-very-secret", "CC_CLIENT_SECRET": "shh-123"})
    assert "very-secret" not in repr(settings) and "shh-123" not in repr(settings)
    assert settings.slack_bot_token.reveal() == "xoxb-very-secret"
    assert set(settings.secrets()) == {"xoxb-very-secret", "shh-123"}
    assert repr(Secret("x")) == "Secret('********')"


def test_parsed_values() -> None:
    settings = load_settings({"APPROVER_IDS": "U01ABC, W02DEF", "APPROVAL_TTL_HOURS": "0.5",
                              "APPROVAL_CHANNEL": "#C0APPROVE", "LOG_FORMAT": "JSON", "MAX_FILE_MB": "2"})
    assert settings.approver_ids == ("U01ABC", "W02DEF")
    assert settings.approval_ttl_hours == 0.5 and settings.approval_channel == "C0APPROVE"
    assert settings.log_format == "json" and settings.max_file_bytes == 2_000_000


def test_poll_bounds_are_checked_together() -> None:
    with pytest.raises(SettingsError, match="POLL_MAX_SECONDS is smaller"):
        load_settings({"POLL_MIN_SECONDS": "10", "POLL_MAX_SECONDS": "5"})


TOKEN_URL_NAMES = ("SLACK_API_URL", "CC_API_URL", "CC_AUTH_URL")


@pytest.mark.parametrize("name", TOKEN_URL_NAMES)
def test_a_token_carrying_url_over_plain_http_elsewhere_is_refused(name: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings({name: "http://api.example.com/v3"})
    assert caught.value.problems == [
        f"{name} uses http:// on a host other than this machine, so tokens would travel unencrypted: it should be "
        f"an https:// URL such as {SETTINGS_BY_NAME[name].default} (http:// is accepted only on 127.0.0.1, ::1 or "
        "localhost)"
    ]
    assert getattr(load_settings({name: "https://10.0.0.5/v3"}), name.lower()) == "https://10.0.0.5/v3"


def test_every_plain_http_url_is_listed_with_the_other_problems() -> None:
    env = {name: "http://10.0.0.5:8080/api/" for name in TOKEN_URL_NAMES} | {"PORT": "70000"}
    with pytest.raises(SettingsError) as caught:
        load_settings(env)
    assert [p.split(" ", 1)[0] for p in caught.value.problems] == ["PORT", *TOKEN_URL_NAMES]


@pytest.mark.parametrize(("local", "lookalike"), [
    ("127.0.0.1:8080", "127.0.0.1.example.com"), ("127.3.4.5", "0.0.0.0"), ("[::1]:9000", "[::]"),
    ("localhost:3000", "localhost.example.com"), ("LOCALHOST", "10.0.0.1"),
])
def test_plain_http_is_accepted_on_loopback_only(local: str, lookalike: str) -> None:
    settings = load_settings({name: f"http://{local}/api/" for name in TOKEN_URL_NAMES})
    assert settings.slack_api_url == settings.cc_api_url == settings.cc_auth_url == f"http://{local}/api/"
    assert not config.is_loopback_host(lookalike.strip("[]"))
    with pytest.raises(SettingsError, match="SLACK_API_URL uses http://"):
        load_settings({"SLACK_API_URL": f"http://{lookalike}/api/"})


def test_files_per_message_is_a_whole_number() -> None:
    assert load_settings({}).max_files_per_message == 3
    assert load_settings({"MAX_FILES_PER_MESSAGE": "5"}).max_files_per_message == 5
    with pytest.raises(SettingsError, match="MAX_FILES_PER_MESSAGE is not valid"):
        load_settings({"MAX_FILES_PER_MESSAGE": "0"})
