"""Soda data contracts as Dagster asset checks, scoped to the partitions a run materializes."""

from pathlib import Path

import dagster as dg

from ballast import contracts
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


def contract_checks(
    settings: Settings, contract_file: str, asset_key: dg.AssetKey, blocking: bool
) -> dg.AssetChecksDefinition:
    """One asset check per check in the contract file, all verified in one Soda run.

    Blocking contracts fail with ERROR severity and stop downstream assets in the run.
    """
    path: Path = settings.contracts_dir / contract_file
    declared = contracts.contract_checks(path)
    declared_variables = contracts.contract_variables(path)
    specs = [dg.AssetCheckSpec(c.name, asset=asset_key, description=c.description, blocking=blocking) for c in declared]

    @dg.multi_asset_check(
        specs=specs,
        name=f"{'_'.join(asset_key.path)}_contract",
        description=f"Soda data contract {contract_file} on {asset_key.to_user_string()}.",
        pool=WAREHOUSE_POOL,
    )
    def _contract(context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource):
        window = run_window(context.run.tags)
        offered = {
            "start_date": window[0],
            "end_date": window[1],
            "currencies": ", ".join(f"'{c}'" for c in settings.currencies),
            "long_window_days": str(feature_windows().long),
        }
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

    return _contract
