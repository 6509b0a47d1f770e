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
