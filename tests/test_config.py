import pytest

from services.asr.config import AsrConfig

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
