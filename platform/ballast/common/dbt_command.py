"""The dbt command Ballast's dbt steps run: dbt itself, except that `--version` answers from the installed package.

dagster-dbt runs `<dbt executable> --version` once per run, before the first dbt step, to
learn dbt's major version. dbt's own `--version` starts all of dbt and asks PyPI for the
latest release: seconds of start-up and a network call on every run, for one number that
the installed package metadata already holds.
"""

import sys
from importlib import metadata


def version_line() -> str:
    """What dagster-dbt parses (the first x.y.z), in the shape of dbt's own answer."""
    return f"Core:\n  - installed: {metadata.version('dbt-core')}"


def main() -> None:
    if sys.argv[1:] == ["--version"]:
        print(version_line())
        return
    from dbt.cli.main import cli  # dbt's own entry point; imported only when dbt runs

    cli()
