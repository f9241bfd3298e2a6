"""OpenLineage events from Dagster facts: a run, its materializations and its check evaluations (no instance access).

One Dagster run is one OpenLineage run (runId = the Dagster run id, job = the Dagster
job): START when the run started, one RUNNING event per asset with its new
materializations (the asset as output; its upstream assets as inputs), one RUNNING event
per asset with its new check evaluations (the asset as input with a
`dataQualityAssertions` facet), then one COMPLETE, FAIL or ABORT event.
"""

from __future__ import annotations

import datetime as dt
import enum
import json
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import attr
import dagster as dg
from openlineage.client.constants import __version__ as CLIENT_VERSION
from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent, RunState
from openlineage.client.facet_v2 import (
    DatasetFacet,
    InputDatasetFacet,
    JobFacet,
    OutputDatasetFacet,
    RunFacet,
    base_subset_dataset,
    column_lineage_dataset,
    data_quality_assertions_dataset,
    error_message_run,
    job_type_job,
    output_statistics_output_dataset,
    processing_engine_run,
    schema_dataset,
    tags_run,
)

from ballast.common.metadata import COLUMN_LINEAGE, COLUMN_SCHEMA, TABLE_NAME, plain_value

# Who wrote the events and their facets (a URI, as the spec asks).
PRODUCER = "urn:ballast:openlineage-export"
ROW_COUNT = "dagster/row_count"
# dbt writes "?" for a column whose type it does not know: no type is better than a wrong one.
UNKNOWN_TYPE = "?"


@dataclass(frozen=True)
class Naming:
    """Where an asset lives, as an OpenLineage dataset: warehouse tables by their table name, lake tables by
    their folder (OpenLineage's naming: namespace `file` or `s3://bucket`, name the path), the rest by asset key."""

    warehouse: Path
    namespace: str

    @property
    def warehouse_namespace(self) -> str:
        return f"duckdb://{self.warehouse}"

    def dataset(self, key: dg.AssetKey, spec: dg.AssetSpec | None) -> tuple[str, str]:
        table = plain_value((spec.metadata if spec else {}).get(TABLE_NAME))
        if table and "://" in str(table):
            uri = urlsplit(str(table))
            if uri.scheme == "file":
                return "file", uri.path
            return f"{uri.scheme}://{uri.netloc}", uri.path.lstrip("/")
        if table:
            return self.warehouse_namespace, str(table)
        return self.namespace, key.to_user_string()


@dataclass(frozen=True)
class RunFacts:
    run_id: str
    job_name: str
    started: float
    # The terminal state, when the run has finished: COMPLETE, FAIL or ABORT.
    ended: float | None = None
    state: RunState | None = None
    error: str | None = None


def _time(timestamp: float) -> str:
    return dt.datetime.fromtimestamp(timestamp, dt.UTC).isoformat()


def _run(facts: RunFacts, error: str | None = None) -> Run:
    facets: dict = {
        "processing_engine": processing_engine_run.ProcessingEngineRunFacet(
            version=dg.__version__, name="Dagster", openlineageAdapterVersion=CLIENT_VERSION, producer=PRODUCER
        )
    }
    if error:
        facets["errorMessage"] = error_message_run.ErrorMessageRunFacet(
            message=error, programmingLanguage="python", producer=PRODUCER
        )
    return Run(runId=facts.run_id, facets=facets)


def _job(facts: RunFacts, namespace: str) -> Job:
    facets: dict = {
        "jobType": job_type_job.JobTypeJobFacet(
            processingType="BATCH", integration="DAGSTER", jobType="JOB", producer=PRODUCER
        )
    }
    return Job(namespace=namespace, name=facts.job_name, facets=facets)


def _event(
    facts: RunFacts, naming: Naming, state: RunState, time: float, inputs=(), outputs=(), error=None
) -> RunEvent:
    return RunEvent(
        eventType=state,
        eventTime=_time(time),
        run=_run(facts, error),
        job=_job(facts, naming.namespace),
        inputs=list(inputs),
        outputs=list(outputs),
        producer=PRODUCER,
    )


def start_event(facts: RunFacts, naming: Naming) -> RunEvent:
    return _event(facts, naming, RunState.START, facts.started)


def terminal_event(facts: RunFacts, naming: Naming) -> RunEvent:
    """COMPLETE, FAIL (with the error) or ABORT: the run's last event."""
    if facts.state is None or facts.ended is None:
        raise ValueError(f"run {facts.run_id} has not finished")
    return _event(facts, naming, facts.state, facts.ended, error=facts.error)


def schema_facet(spec: dg.AssetSpec | None, metadata: Mapping) -> schema_dataset.SchemaDatasetFacet | None:
    """The asset's columns from `dagster/column_schema`: the materialization's, else the definition's."""
    schema = plain_value(metadata.get(COLUMN_SCHEMA)) or plain_value((spec.metadata if spec else {}).get(COLUMN_SCHEMA))
    if not isinstance(schema, dg.TableSchema):
        return None
    fields = [
        schema_dataset.SchemaDatasetFacetFields(
            name=column.name,
            type=column.type if column.type and column.type != UNKNOWN_TYPE else None,
            description=(column.description or "").strip() or None,
            ordinal_position=position,
        )
        for position, column in enumerate(schema.columns, start=1)
    ]
    return schema_dataset.SchemaDatasetFacet(fields=fields, producer=PRODUCER)


def column_lineage_facet(
    spec: dg.AssetSpec | None, metadata: Mapping, naming: Naming, specs: Mapping[dg.AssetKey, dg.AssetSpec]
) -> column_lineage_dataset.ColumnLineageDatasetFacet | None:
    """Each column's input columns from `dagster/column_lineage`: the materialization's, else the definition's."""
    lineage = plain_value(metadata.get(COLUMN_LINEAGE)) or plain_value(
        (spec.metadata if spec else {}).get(COLUMN_LINEAGE)
    )
    if not isinstance(lineage, dg.TableColumnLineage) or not lineage.deps_by_column:
        return None
    fields = {}
    for column, deps in sorted(lineage.deps_by_column.items()):
        inputs = []
        for dep in deps:
            namespace, name = naming.dataset(dep.asset_key, specs.get(dep.asset_key))
            inputs.append(column_lineage_dataset.InputField(namespace=namespace, name=name, field=dep.column_name))
        fields[column] = column_lineage_dataset.Fields(inputFields=inputs)
    return column_lineage_dataset.ColumnLineageDatasetFacet(fields=fields, producer=PRODUCER)


def _upstream(key: dg.AssetKey, naming: Naming, specs: Mapping[dg.AssetKey, dg.AssetSpec]) -> list[InputDataset]:
    spec = specs.get(key)
    deps = sorted({d.asset_key for d in spec.deps}, key=lambda k: k.to_user_string()) if spec else []
    return [InputDataset(*naming.dataset(dep, specs.get(dep))) for dep in deps]


def materialization_event(
    facts: RunFacts,
    naming: Naming,
    materializations: Sequence[tuple[float, dg.AssetMaterialization]],
    specs: Mapping[dg.AssetKey, dg.AssetSpec],
) -> RunEvent:
    """One asset's materializations in the run (one per partition): the asset as output, its upstream assets as inputs."""
    key = materializations[0][1].asset_key
    spec = specs.get(key)
    latest = materializations[-1][1].metadata
    facets = {
        name: facet
        for name, facet in (
            ("schema", schema_facet(spec, latest)),
            ("columnLineage", column_lineage_facet(spec, latest, naming, specs)),
        )
        if facet is not None
    }
    output_facets: dict = {}
    rows = plain_value(latest.get(ROW_COUNT))
    # A single-run backfill repeats the window's count on every partition: only one materialization says it plainly.
    if len(materializations) == 1 and isinstance(rows, int):
        output_facets["outputStatistics"] = output_statistics_output_dataset.OutputStatisticsOutputDatasetFacet(
            rowCount=rows, producer=PRODUCER
        )
    partitions = sorted({m.partition for _, m in materializations if m.partition})
    if partitions:
        output_facets["subset"] = base_subset_dataset.OutputSubsetOutputDatasetFacet(
            outputCondition=base_subset_dataset.PartitionSubsetCondition(
                partitions=[
                    base_subset_dataset.Partition(dimensions={"partition": p}, identifier=p) for p in partitions
                ]
            ),
            producer=PRODUCER,
        )
    output = OutputDataset(*naming.dataset(key, spec), facets=facets, outputFacets=output_facets)
    time = max(t for t, _ in materializations)
    return _event(facts, naming, RunState.RUNNING, time, _upstream(key, naming, specs), [output])


def check_event(
    facts: RunFacts,
    naming: Naming,
    evaluations: Sequence[tuple[float, dg.AssetCheckEvaluation]],
    specs: Mapping[dg.AssetKey, dg.AssetSpec],
) -> RunEvent:
    """One asset's check evaluations in the run: the checked asset as input, with a dataQualityAssertions facet."""
    key = evaluations[0][1].asset_key
    assertions = []
    for _, evaluation in evaluations:
        metadata = {k: plain_value(v) for k, v in evaluation.metadata.items()}
        column = metadata.get("column")
        assertions.append(
            data_quality_assertions_dataset.Assertion(
                assertion=evaluation.check_name,
                success=bool(evaluation.passed),
                column=column if isinstance(column, str) else None,
                severity=evaluation.severity.value.lower(),
                name=evaluation.check_name,
                description=evaluation.description or None,
            )
        )
    facet = data_quality_assertions_dataset.DataQualityAssertionsDatasetFacet(assertions=assertions, producer=PRODUCER)
    checked = InputDataset(*naming.dataset(key, specs.get(key)), inputFacets={"dataQualityAssertions": facet})
    time = max(t for t, _ in evaluations)
    return _event(facts, naming, RunState.RUNNING, time, inputs=[checked])


# The facets Ballast writes (and the client adds), by where they sit and their key.
FACET_CLASSES: dict[str, dict[str, type]] = {
    "run": {
        "processing_engine": processing_engine_run.ProcessingEngineRunFacet,
        "errorMessage": error_message_run.ErrorMessageRunFacet,
        "tags": tags_run.TagsRunFacet,
    },
    "job": {"jobType": job_type_job.JobTypeJobFacet},
    "dataset": {
        "schema": schema_dataset.SchemaDatasetFacet,
        "columnLineage": column_lineage_dataset.ColumnLineageDatasetFacet,
    },
    "input": {"dataQualityAssertions": data_quality_assertions_dataset.DataQualityAssertionsDatasetFacet},
    "output": {
        "outputStatistics": output_statistics_output_dataset.OutputStatisticsOutputDatasetFacet,
        "subset": base_subset_dataset.OutputSubsetOutputDatasetFacet,
    },
}
_FACETS_BY_BASE = {
    RunFacet: "run",
    JobFacet: "job",
    DatasetFacet: "dataset",
    InputDatasetFacet: "input",
    OutputDatasetFacet: "output",
}


class EventFormatError(ValueError):
    """A JSON event that does not match the OpenLineage spec as the client's model classes define it."""


def event_from_json(body: str | dict) -> RunEvent:
    """The RunEvent a JSON event describes, built strictly through the client's spec classes.

    Unknown or missing keys, wrong types, unknown facets, a `_schemaURL` other than the
    class's, and whatever the classes' own validators refuse (a runId that is not a UUID,
    an eventTime without a time) raise EventFormatError.
    """
    data = json.loads(body) if isinstance(body, str) else body
    try:
        return _structure(RunEvent, data, "event")
    except (TypeError, ValueError, KeyError) as exc:
        raise EventFormatError(str(exc)) from None


def _structure(cls: type, data, where: str):
    if not isinstance(data, dict):
        raise EventFormatError(f"{where}: expected an object for {cls.__name__}, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {a.name: a for a in attr.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise EventFormatError(f"{where}: {cls.__name__} has no field(s) {', '.join(unknown)}")
    kwargs, fixed = {}, {}
    for name, value in data.items():
        attribute = fields[name]
        converted = _convert(hints[name], value, f"{where}.{name}")
        if attribute.init:
            kwargs[attribute.alias] = converted
        else:
            fixed[name] = converted
    obj = cls(**kwargs)
    for name, value in fixed.items():
        if getattr(obj, name) != value:
            raise EventFormatError(f"{where}.{name}: {value!r} is not {cls.__name__}'s {getattr(obj, name)!r}")
    return obj


def _convert(hint, value, where: str):
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in args if a is not type(None)]
        if value is None:
            return None
        if len(options) == 1:
            return _convert(options[0], value, where)
        # A union of spec classes (subset conditions) is told apart by its "type" field.
        for option in options:
            default = next((a.default for a in attr.fields(option) if a.name == "type"), None)
            if isinstance(value, dict) and value.get("type") == default:
                return _structure(option, value, where)
        raise EventFormatError(f"{where}: {value!r} matches none of {[o.__name__ for o in options]}")
    if origin is list:
        if not isinstance(value, list):
            raise EventFormatError(f"{where}: expected a list")
        return [_convert(args[0], v, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise EventFormatError(f"{where}: expected an object")
        place = _FACETS_BY_BASE.get(args[1])
        if place is not None:
            classes = FACET_CLASSES[place]
            missing = sorted(set(value) - set(classes))
            if missing:
                raise EventFormatError(f"{where}: unknown {place} facet(s) {', '.join(missing)}")
            return {k: _structure(classes[k], v, f"{where}.{k}") for k, v in value.items()}
        return {k: _convert(args[1], v, f"{where}.{k}") for k, v in value.items()}
    if hint is typing.Any:
        return value
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return hint(value)
    if attr.has(hint):
        return _structure(hint, value, where)
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, hint) or (hint is int and isinstance(value, bool)):
        raise EventFormatError(f"{where}: expected {hint.__name__}, got {type(value).__name__}")
    return value
