"""`ballast dev --automation` (BALLAST_AUTOMATION=on): every Ballast sensor and schedule defaults to RUNNING; without it, as before."""

from pathlib import Path

import pytest

from ballast.definitions import AUTOMATION_SENSOR, build_defs
from ballast.monitoring.sensors import ALERT_SENSOR, RETRAIN_SENSOR
from ballast.raw.sensors import LANDING_SCHEDULE, LANDING_SENSOR
from ballast.settings import AUTOMATION_ENV, Settings, SettingsError

RUNNING = "RUNNING"
STOPPED = "STOPPED"


def _statuses(tmp_path: Path, automation: str | None) -> dict[str, str]:
    env = {"BALLAST_HOME": str(tmp_path), **({AUTOMATION_ENV: automation} if automation else {})}
    repo = build_defs(Settings.from_env(env)).get_repository_def()
    found = {s.name: s.default_status.value for s in repo.sensor_defs}
    found |= {s.name: s.default_status.value for s in repo.schedule_defs}
    return found


@pytest.fixture(scope="module")
def statuses(tmp_path_factory: pytest.TempPathFactory) -> dict[str | None, dict[str, str]]:
    return {value: _statuses(tmp_path_factory.mktemp("automation"), value) for value in (None, "off", "on")}


def test_without_automation_the_sensors_that_start_runs_or_send_stay_stopped(statuses) -> None:
    default = statuses[None]
    assert statuses["off"] == default
    for name in (LANDING_SENSOR, LANDING_SCHEDULE, RETRAIN_SENSOR, ALERT_SENSOR, AUTOMATION_SENSOR):
        assert default[name] == STOPPED


def test_with_automation_every_ballast_sensor_and_schedule_runs(statuses) -> None:
    on = statuses["on"]
    assert on.keys() == statuses[None].keys()
    # Every sensor and schedule of the code location, whoever added it, except the
    # declarative automation sensor: it stays a choice made in the UI.
    assert {name for name, status in on.items() if status == STOPPED} == {AUTOMATION_SENSOR}
    switched = {name for name, status in statuses[None].items() if status != on[name]}
    assert {LANDING_SENSOR, LANDING_SCHEDULE, RETRAIN_SENSOR, ALERT_SENSOR} <= switched


def test_a_bad_automation_value_is_refused_by_name(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=f"{AUTOMATION_ENV}='yes please' must be on or off"):
        Settings.from_env({"BALLAST_HOME": str(tmp_path), AUTOMATION_ENV: "yes please"})
