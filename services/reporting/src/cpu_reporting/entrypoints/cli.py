"""``cpu reporting ...``: operator commands of the reporting service."""

from __future__ import annotations

import asyncio

import typer


def register(app: typer.Typer) -> None:
    reporting = typer.Typer(help="The reporting service's projections.", no_args_is_help=True)
    app.add_typer(reporting, name="reporting")

    @reporting.command("rebuild")
    def rebuild_command() -> None:
        """Recompute every figure from the event topics, from offset 0.

        Reads the four event topics without a consumer group up to their current end, then
        swaps the recomputed projection in atomically (REPORTING_DATABASE_URL,
        KAFKA_BOOTSTRAP_SERVERS). The service may keep running meanwhile.
        """
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        from cpu_reporting.config import ReportingSettings
        from cpu_reporting.service_layer.rebuild import rebuild

        settings = ReportingSettings()
        with Progress(
            TextColumn("[bold]rebuilding reporting[/]"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("events"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
        ) as bar:
            task = bar.add_task("events", total=None)

            def progress(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total)

            result = asyncio.run(rebuild(settings, progress))
        typer.echo(
            f"read {result.read} events in {result.seconds:.1f} s ({result.rate:,.0f} events/s): "
            f"{result.applied} applied, {result.ignored} of other types, "
            f"{sum(result.rejected.values())} refused; {result.aggregates} aggregates"
        )
        for reason, count in sorted(result.rejected.items()):
            typer.echo(f"  refused ({reason}): {count}")
