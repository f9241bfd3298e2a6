"""How Ballast's sensors and schedules start: STOPPED (a laptop starts no run on its own) or, under `ballast dev --automation`, RUNNING.

Every sensor and schedule Ballast builds takes its default status from here, so one
setting (BALLAST_AUTOMATION, which `ballast dev --automation` sets) switches them all.
A status set in the UI overrides the default either way. Sensors that start no run and
only keep state in order (dead-run recovery, the OpenLineage export) are always RUNNING.
"""

import dagster as dg

from ballast.settings import Settings


def sensor_status(settings: Settings) -> dg.DefaultSensorStatus:
    return dg.DefaultSensorStatus.RUNNING if settings.automation else dg.DefaultSensorStatus.STOPPED


def schedule_status(settings: Settings) -> dg.DefaultScheduleStatus:
    return dg.DefaultScheduleStatus.RUNNING if settings.automation else dg.DefaultScheduleStatus.STOPPED
