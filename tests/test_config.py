import dataclasses

import pytest

from services.asr.config import AsrConfig
from voice_agent.config import ServerConfig, SettingGroup, setting

pytestmark = pytest.mark.unit  # no model, no service: make test-unit


def test_defaults_match_the_architecture() -> None:
    config = AsrConfig.from_env({})
    assert (config.port, config.metrics_port, config.language) == (50052, 9102, "en")


def test_flags_beat_environment_beat_defaults() -> None:
    env = {"VOICE_ASR_PORT": "6000", "VOICE_ASR_BEAM_SIZE": "3", "VOICE_ASR_WARMUP": "false"}
    config = AsrConfig.from_env(env, port=7000)
    assert (config.port, config.beam_size, config.warmup) == (7000, 3, False)


def test_flags_parse_and_help_names_the_environment_variable(capsys: pytest.CaptureFixture[str]) -> None:
    config = AsrConfig.from_args(["--port", "5000", "--no-warmup", "--encoder-window", "full"])
    assert (config.port, config.warmup, config.encoder_window) == (5000, False, "full")
    with pytest.raises(SystemExit):
        AsrConfig.from_args(["--help"])
    assert "[env VOICE_ASR_ENCODER_WINDOW; default: 'fit']" in " ".join(capsys.readouterr().out.split())


@pytest.mark.parametrize(
    "env",
    [
        {"VOICE_ASR_PORT": "not-a-number"},
        {"VOICE_ASR_PORT": "70000"},
        {"VOICE_ASR_ENCODER_WINDOW": "half"},
        {"VOICE_ASR_MAX_UTTERANCE_S": "45"},
        {"VOICE_ASR_WORKERS": "0"},
        {"VOICE_ASR_LOG_FORMAT": "xml"},
        {"VOICE_ASR_LOG_LEVEL": "chatty"},
    ],
)
def test_impossible_settings_are_refused(env: dict[str, str]) -> None:
    with pytest.raises(ValueError):
        AsrConfig.from_env(env)


# ---- grouped settings: the gateway keeps its settings in groups, read by flags and variables of their own names


def test_grouped_settings_keep_their_own_flags_and_variables() -> None:
    from gateway.config import GatewayConfig

    env = {"VOICE_GATEWAY_LATENCY_MODE": "baseline", "VOICE_GATEWAY_ASR_ADDRESS": "asr:1", "VOICE_GATEWAY_PORT": "6000"}
    config = GatewayConfig.from_env(env, max_text_chars=10, barge_in=False)
    assert (config.port, config.latency.latency_mode, config.backends.asr_address) == (6000, "baseline", "asr:1")
    assert (config.limits.max_text_chars, config.turn_taking.barge_in) == (10, False)
    parsed = GatewayConfig.from_args(["--no-echo-rejection", "--llm-model", "m", "--jwt-issuer", "me"])
    assert not parsed.turn_taking.echo_rejection and parsed.backends.llm_model == "m" and parsed.auth.jwt_issuer == "me"
    assert parsed.persona == GatewayConfig().persona  # the other groups keep their defaults


def test_every_grouped_setting_is_in_the_help_with_its_variable(capsys: pytest.CaptureFixture[str]) -> None:
    from gateway.config import GatewayConfig

    names = GatewayConfig.setting_names()
    assert len(names) == len(set(names)) and {"port", "http_port", "latency_mode", "llm_stop", "jwks_file"} <= set(
        names
    )
    with pytest.raises(SystemExit):
        GatewayConfig.from_args(["--help"])
    shown = " ".join(capsys.readouterr().out.split())
    for name in names:
        assert f"--{name.replace('_', '-')}" in shown and f"[env VOICE_GATEWAY_{name.upper()};" in shown, name
    assert "turn taking: Speech over the agent" in shown  # each group heads its section


@pytest.mark.parametrize(
    "env",
    [
        {"VOICE_GATEWAY_LATENCY_MODE": "turbo"},
        {"VOICE_GATEWAY_DECISION_INTERIM_MS": "50"},
        {"VOICE_GATEWAY_MAX_CHUNK_MS": "2000"},
        {"VOICE_GATEWAY_LLM_MAX_TOKENS": "0"},
        {"VOICE_GATEWAY_MIN_SILENCE_MS": "6000"},
        {"VOICE_GATEWAY_HTTP_PORT": "50051"},
    ],
)
def test_each_group_checks_its_settings(env: dict[str, str]) -> None:
    from gateway.config import GatewayConfig

    with pytest.raises(ValueError):
        GatewayConfig.from_env(env)


def test_a_setting_no_group_holds_is_refused_and_names_are_unique() -> None:
    from gateway.config import GatewayConfig

    with pytest.raises(TypeError, match="no setting"):
        GatewayConfig.from_env({}, latency_plan="fast")

    @dataclasses.dataclass
    class Twice(SettingGroup):
        port: int = setting(1, "A second port.")

    @dataclasses.dataclass
    class Clash(ServerConfig):
        twice: Twice = dataclasses.field(default_factory=Twice)

    with pytest.raises(TypeError, match="named twice"):
        Clash.setting_names()


def test_typed_text_over_the_limit_is_refused_alike_by_both_fronts() -> None:
    from gateway.config import LimitSettings

    limits = LimitSettings(max_text_chars=5)
    assert limits.typed_text_error("hello") is None
    assert limits.typed_text_error("hello!") == "typed text of 6 characters is over the limit of 5"
