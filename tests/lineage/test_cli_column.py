"""`ballast lineage --column`: a column's path back to the landing columns, printed as a tree."""

from pathlib import Path

import pytest

from ballast.cli.main import main


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("BALLAST_HOME", str(tmp_path))
    return tmp_path


@pytest.mark.parametrize(
    "name",
    # Case does not matter, as in DuckDB's unquoted names.
    ["features.customer_daily_features.avg_amount_30d", "Features.Customer_Daily_Features.AVG_AMOUNT_30D"],
)
def test_a_dbt_column_prints_its_tree_to_landing(name: str, home: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["lineage", "--column", name]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == (
        "features.customer_daily_features.avg_amount_30d  <- dbt_project/models/features/customer_daily_features.sql"
    )
    assert (
        "├── clean.transactions.amount  <- dbt_project/models/clean/transactions.sql"
        " + ephemeral dbt_project/models/clean/transactions_validated.sql"
    ) in lines
    assert "│   └── raw.transactions.amount  <- platform/ballast/raw/assets.py" in lines
    assert "│       └── landing column amount" in lines


@pytest.mark.parametrize("name", ["churn_v1:home_country", "home_country"])
def test_a_served_feature_prints_its_tree_through_feast(name: str, home: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["lineage", "--column", name]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "churn_v1:home_country  <- Feast feature view customer_daily_features (feature_repo/churn_features.py)",
        "└── features.customer_daily_features_parquet.home_country  <- platform/ballast/features/assets.py",
        "    └── features.customer_daily_features.home_country"
        "  <- dbt_project/models/features/customer_daily_features.sql",
        "        └── clean.transactions.country  <- dbt_project/models/clean/transactions.sql"
        " + ephemeral dbt_project/models/clean/transactions_validated.sql",
        "            └── raw.transactions.country  <- platform/ballast/raw/assets.py",
        "                └── landing column country",
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--column", "features.nope.x"], "unknown table 'features.nope'; tables with column lineage: "),
        (["--column", "clean.transactions.nope"], "unknown column 'nope' of clean.transactions; its columns: "),
        (["--column", "churn_v2:home_country"], "unknown feature 'churn_v2:home_country'; the feature services serve"),
        ([], "give a model version or --column NAME (one of them)"),
    ],
)
def test_an_unknown_name_is_one_clear_line_and_exit_2(
    args: list[str], message: str, home: Path, capsys: pytest.CaptureFixture
) -> None:
    assert main(["lineage", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"ballast: error: {message}") and "\n" not in err and "Traceback" not in err
