"""Soda data contracts as Dagster asset checks, scoped to the partitions a run materializes."""

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg

from ballast import contracts
from ballast.common.gates import gate_spec
from ballast.common.metadata import readable
from ballast.common.partitions import run_window
from ballast.resources import WarehouseResource, feature_windows
from ballast.settings import WAREHOUSE_POOL, Settings


def _metadata(outcome: contracts.CheckOutcome, window: tuple[str, str]) -> dict:
    metadata: dict = {"outcome": outcome.outcome, "window": f"{window[0]} to {window[1]}"}
    if outcome.value is not None:
        metadata["value"] = outcome.value
    metadata.update({k: v for k, v in outcome.metrics.items() if isinstance(v, int | float)})
    return readable(metadata)


@dataclass(frozen=True)
class Contract:
    """A blocking contract: a gate (ballast.common.gates) verified in the step that builds its asset."""

    settings: Settings
    contract_file: str
    asset_key: dg.AssetKey
    specs: tuple[dg.AssetCheckSpec, ...]

    def verify(self, run_tags: dict[str, str], warehouse: WarehouseResource) -> list[dg.AssetCheckResult]:
        return list(_verify(self.settings, self.contract_file, self.asset_key, run_tags, warehouse))


def blocking_contract(settings: Settings, contract_file: str, asset_key: dg.AssetKey) -> Contract:
    declared = contracts.contract_checks(settings.contracts_dir / contract_file)
    specs = tuple(gate_spec(c.name, asset_key, c.description) for c in declared)
    return Contract(settings, contract_file, asset_key, specs)


def _verify(
    settings: Settings,
    contract_file: str,
    asset_key: dg.AssetKey,
    run_tags: dict[str, str],
    warehouse: WarehouseResource,
) -> Iterator[dg.AssetCheckResult]:
    path: Path = settings.contracts_dir / contract_file
    window = run_window(run_tags)
    offered = {
        "start_date": window[0],
        "end_date": window[1],
        "currencies": ", ".join(f"'{c}'" for c in settings.currencies),
        "long_window_days": str(feature_windows().long),
    }
    declared_variables = contracts.contract_variables(path)
    variables = {k: v for k, v in offered.items() if k in declared_variables}
    with warehouse.connect(read_only=True) as con:
        try:
            outcomes = contracts.verify(path, con, variables)
        except contracts.ContractError as exc:
            raise dg.Failure(f"contract {contract_file} could not be verified: {exc}") from None
    for outcome in outcomes:
        yield dg.AssetCheckResult(
            asset_key=asset_key,
            check_name=outcome.name,
            passed=outcome.passed,
            severity=dg.AssetCheckSeverity.ERROR,
            description=outcome.description,
            metadata=_metadata(outcome, window),
        )


def contract_checks(settings: Settings, contract_file: str, asset_key: dg.AssetKey) -> dg.AssetChecksDefinition:
    """One asset check per check in the contract file, all verified in one Soda run in a step of its own.

    Its failures stop nothing; a blocking contract is a `blocking_contract` instead.
    """
    path: Path = settings.contracts_dir / contract_file
    declared = contracts.contract_checks(path)
    specs = [dg.AssetCheckSpec(c.name, asset=asset_key, description=c.description) for c in declared]

    @dg.multi_asset_check(
        specs=specs,
        name=f"{'_'.join(asset_key.path)}_contract",
        description=f"Soda data contract {contract_file} on {asset_key.to_user_string()}.",
        pool=WAREHOUSE_POOL,
    )
    def _contract(context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource):
        yield from _verify(settings, contract_file, asset_key, context.run.tags, warehouse)

    return _contract
