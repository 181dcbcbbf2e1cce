"""Settings: embedded defaults, and a README that lists every one of them."""

from __future__ import annotations

from pathlib import Path

from labelwise.settings import Settings

ROOT = Path(__file__).parent.parent


def test_embedded_defaults_live_under_home(tmp_path: Path) -> None:
    s = Settings(home=tmp_path)
    assert s.resolved_database_url() == f"sqlite:///{tmp_path / 'labelwise.sqlite'}"
    assert s.resolved_broker_url() == f"sqla+sqlite:///{tmp_path / 'broker.sqlite'}"


def test_urls_come_from_the_environment(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("LABELWISE_DATABASE_URL", "postgresql+psycopg://u@h/db")
    monkeypatch.setenv("LABELWISE_BROKER_URL", "redis://h:6379/0")
    s = Settings()
    assert (s.resolved_database_url(), s.resolved_broker_url()) == ("postgresql+psycopg://u@h/db", "redis://h:6379/0")


def test_readme_lists_every_setting() -> None:
    readme = (ROOT / "README.md").read_text()
    missing = [name for name in Settings.model_fields if f"`LABELWISE_{name.upper()}`" not in readme]
    assert not missing
