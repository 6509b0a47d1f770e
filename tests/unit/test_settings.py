import math
from dataclasses import fields

import pytest

from streams.settings import Settings, settings_env


def test_from_env_parses_types_and_tuples() -> None:
    settings = Settings.from_env({"DRIFTREC_TOP_K": "5", "DRIFTREC_BEHAVIOUR_TOPICS": "views, purchases",
                                  "DRIFTREC_BATCH_WITHIN_S": "0.1", "KAFKA_BOOTSTRAP": "ignored-here"})
    assert settings.top_k == 5
    assert settings.behaviour_topics == ("views", "purchases")
    assert settings.batch_within_s == 0.1


def test_round_trip_through_environment() -> None:
    settings = Settings(top_k=7, behaviour_topics=("a", "b"))
    assert Settings.from_env(settings_env(settings)) == settings


def test_invalid_values_fail_clearly() -> None:
    with pytest.raises(ValueError, match="DRIFTREC_TOP_K='ten' is not a valid int"):
        Settings.from_env({"DRIFTREC_TOP_K": "ten"})
    with pytest.raises(ValueError, match="top_k must be positive"):
        Settings(top_k=0)


def test_every_setting_is_documented_and_the_reference_is_current() -> None:
    from pathlib import Path

    from streams.settings import settings_reference

    reference = settings_reference()
    assert reference.count("| `DRIFTREC_") == len(fields(Settings))
    assert all(spec.metadata.get("doc") for spec in fields(Settings))
    docs = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"
    assert reference in docs.read_text(), "docs/configuration.md is stale: regenerate with driftrec config --reference"


def test_role_is_validated_and_the_encoder_pool_has_its_own_group() -> None:
    with pytest.raises(ValueError, match="role must be one of all, core, encoder"):
        Settings.from_env({"DRIFTREC_ROLE": "gpu"})
    assert Settings(app_id="rec", role="encoder").faust_app_id == "rec-encoder"
    assert Settings(app_id="rec", role="core").faust_app_id == "rec"


WEIGHTING_TOML = """
learning_rate = 0.2
session_gap_ms = 600_000
covisit_half_life_ms = 5_184_000_000
covisit_span = 7
[strengths]
purchase = 8
skip = -2.5
"""


def test_the_weighting_config_file_sets_the_model_the_worker_builds(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from types import SimpleNamespace

    from streams.runtime import WorkerRuntime

    path = tmp_path / "weighting.toml"
    path.write_text(WEIGHTING_TOML)
    runtime = WorkerRuntime(Settings(weighting_config=str(path)))
    runtime.__dict__["encoder"] = SimpleNamespace(dim=4)
    config = runtime.model.config
    assert (config.learning_rate, config.session_gap_ms, config.recent_items) == (0.2, 600_000.0, 20)
    assert (config.strengths.purchase, config.strengths.skip, config.strengths.cart) == (8.0, -2.5, 3.0)
    covisitation = runtime.model.scorer.covisitation
    assert covisitation.span == 7 and covisitation.decay.tau == pytest.approx(5_184_000_000 / math.log(2))


@pytest.mark.parametrize(("text", "message"), [
    ("learnin_rate = 0.2", "unknown field learnin_rate"),
    ("[strengths]\nbuy = 2", "unknown field strengths.buy"),
    ("recent_items = 7.5", "recent_items must be an integer, got 7.5"),
    ("learning_rate = 'fast'", "learning_rate must be a number"),
    ("session_reset = 1.5", "session_reset must be between 0 and 1, got 1.5"),
    ("short_half_life_ms = 0", "short_half_life_ms must be positive"),
    ("covisit_span = 0", "covisit_span must be positive"),
    ("learning_rate = ", "weighting.toml: Invalid value"),
])
def test_a_bad_weighting_config_fails_at_start_naming_the_field(tmp_path, text: str, message: str) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "weighting.toml"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        Settings.from_env({"DRIFTREC_WEIGHTING_CONFIG": str(path)})


def test_a_missing_weighting_config_file_fails_at_start() -> None:
    with pytest.raises(ValueError, match=r"weighting config no-such\.toml: .*No such file"):
        Settings(weighting_config="no-such.toml")


def test_replay_with_a_bad_weighting_config_says_what_is_wrong_in_one_line(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    from streams.cli import main

    path = tmp_path / "weighting.toml"
    path.write_text("learnin_rate = 0.2")
    assert main(["replay", "--jsonl", "items.jsonl", "events.jsonl", "--config", str(path)]) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith(f"error: weighting config {path}: unknown field learnin_rate")


def test_the_session_timeout_stays_within_what_broker_and_faust_accept() -> None:
    from streams.app import app

    assert app.conf.broker_session_timeout == Settings().session_timeout_s == 15.0
    assert app.conf.broker_heartbeat_interval == 3.0
    with pytest.raises(ValueError, match="session_timeout_s must be between 6 and 90, got 5"):
        Settings(session_timeout_s=5)
