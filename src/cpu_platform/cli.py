"""`cpu`: the operator's command.

Subcommands that act on the platform talk to Kafka or to a service's own store; none reads
another service's data.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import typer

app = typer.Typer(help="Operate the CPU case platform.", no_args_is_help=True)
dlq_app = typer.Typer(help="Show and replay dead-lettered events.", no_args_is_help=True)
topics_app = typer.Typer(help="Kafka topics of the platform.", no_args_is_help=True)
app.add_typer(dlq_app, name="dlq")
app.add_typer(topics_app, name="topics")
keys_app = typer.Typer(help="Master keys of the personal-field encryption.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")


def bootstrap_servers() -> str:
    return os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")


@app.command()
def up(
    var_dir: Path = typer.Option(Path("var"), help="Where the SQLite stores and broker data live."),
) -> None:
    """Run a local broker and all five services until Ctrl-C."""
    from cpu_platform.devstack.up import run

    raise typer.Exit(run(var_dir))


@app.command()
def token(
    role: list[str] = typer.Option(..., "--role", help="A role (repeat for several)."),
    user: str = typer.Option(..., "--user", help="The user id the token names (its sub)."),
    team: list[str] = typer.Option([], "--team", help="A team (OVCS, HIT, FST, ICAC); repeatable."),
    province: list[str] = typer.Option([], "--province", help="A province code; repeatable."),
    ttl: int | None = typer.Option(
        None, help="Lifetime in seconds (default CPU_AUTH_TOKEN_TTL_SECONDS)."
    ),
) -> None:
    """Print a bearer token accepted by the local stack (signed with the dev key)."""
    from cpu_shared.security.auth import AuthSettings, mint_dev_token
    from cpu_shared.security.roles import parse_role

    unknown = [r for r in role if parse_role(r) is None]
    if unknown:
        raise typer.BadParameter(f"unknown role(s): {', '.join(unknown)}", param_hint="--role")
    typer.echo(mint_dev_token(AuthSettings(), user, role, teams=team, provinces=province, ttl=ttl))


@topics_app.command("create")
def topics_create() -> None:
    """Create every topic of the platform (and its dead-letter topic) if missing."""
    from cpu_platform.devstack.kafka import ensure_topics
    from cpu_shared.messaging.topics import all_topic_names, topic_configs

    names = all_topic_names()
    ensure_topics(bootstrap_servers(), names, configs=topic_configs())
    for name, partitions in names.items():
        typer.echo(f"{name}\t{partitions} partitions")


@dlq_app.command("list")
def dlq_list(
    topic: str | None = typer.Argument(
        None, help="A topic or its .dlq; all dead-letter topics if omitted."
    ),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per dead letter."),
) -> None:
    """Show dead letters: where each came from, which group failed it, and why."""
    from cpu_shared.messaging.dead_letters import dead_letter_topics, read_dead_letters
    from cpu_shared.messaging.topics import DLQ_SUFFIX, dead_letter_topic

    async def main() -> int:
        servers = bootstrap_servers()
        if topic is None:
            targets = await dead_letter_topics(servers)
        else:
            targets = [topic if topic.endswith(DLQ_SUFFIX) else dead_letter_topic(topic)]
        total = 0
        for target in targets:
            letters = await read_dead_letters(servers, target)
            total += len(letters)
            if as_json:
                for letter in letters:
                    typer.echo(json.dumps(letter.summary(), ensure_ascii=False))
                continue
            typer.echo(f"{target}: {len(letters)} dead letter(s)")
            for letter in letters:
                s = letter.summary()
                typer.echo(
                    f"  {s['dlq']}  from {s['original']}  group={s['consumer_group']}  "
                    f"{s['exception_type']}: {s['reason']}  (first failed {s['first_failed_at']})"
                )
        return total

    asyncio.run(main())


@dlq_app.command("redrive")
def dlq_redrive(topic: str = typer.Argument(..., help="A topic or its .dlq.")) -> None:
    """Replay dead letters onto their original topic; running it again replays nothing twice."""
    from cpu_shared.messaging.dead_letters import redrive
    from cpu_shared.messaging.topics import DLQ_SUFFIX, dead_letter_topic

    dlq = topic if topic.endswith(DLQ_SUFFIX) else dead_letter_topic(topic)
    republished, skipped = asyncio.run(redrive(bootstrap_servers(), dlq))
    typer.echo(f"{dlq}: {republished} replayed, {skipped} duplicate copies skipped")


SERVICE_NAMES = ("intake", "casework", "forensics", "icac", "reporting")


def service_asyncapi(service: str) -> dict[str, object]:
    """The AsyncAPI document of a service, built from the app that runs."""
    import importlib

    from cpu_shared.messaging.asyncapi import asyncapi_document

    module = importlib.import_module(f"cpu_{service}.app")
    settings_cls = getattr(
        importlib.import_module(f"cpu_{service}.config"), f"{service.capitalize()}Settings"
    )
    app = module.create_app(settings_cls(database_url="sqlite+aiosqlite:///:memory:"))
    return asyncapi_document(app.state.runtime.broker, service=service)


def asyncapi_path(service: str) -> Path:
    return Path(__file__).resolve().parents[2] / "services" / service / "asyncapi.json"


@app.command()
def asyncapi(
    check: bool = typer.Option(False, help="Fail if a committed document is stale."),
) -> None:
    """Write each service's AsyncAPI document to services/<name>/asyncapi.json."""
    stale = []
    for service in SERVICE_NAMES:
        text = json.dumps(service_asyncapi(service), indent=2, ensure_ascii=False) + "\n"
        path = asyncapi_path(service)
        current = path.read_text() if path.exists() else None
        if current == text:
            continue
        if check:
            stale.append(service)
        else:
            path.write_text(text)
            typer.echo(f"wrote {path}")
    if stale:
        typer.echo(f"stale AsyncAPI documents: {', '.join(stale)} (run: cpu asyncapi)", err=True)
        raise typer.Exit(1)


def service_database_url(service: str) -> str:
    import importlib

    config = importlib.import_module(f"cpu_{service}.config")
    return getattr(config, f"{service.capitalize()}Settings")().database_url


def _stores(services: list[str], database_url: str | None) -> list[tuple[str, str]]:
    if database_url:
        return [("(given)", database_url)]
    unknown = set(services) - set(SERVICE_NAMES)
    if unknown:
        raise typer.BadParameter(f"unknown service(s): {', '.join(sorted(unknown))}")
    return [(s, service_database_url(s)) for s in (services or SERVICE_NAMES)]


@keys_app.command("generate")
def keys_generate() -> None:
    """Print a new random master key (base64, 32 bytes) for CPU_CRYPTO_MASTER_KEYS."""
    from cpu_shared.security.crypto import generate_key

    typer.echo(generate_key())


@keys_app.command("status")
def keys_status(
    service: list[str] = typer.Option([], "--service", help="Only these services."),
    database_url: str | None = typer.Option(None, help="One store, instead of the services'."),
) -> None:
    """Count the encrypted values under each master key, per store and column."""
    from cpu_shared.db import create_engine
    from cpu_shared.security.rotation import key_usage

    async def main() -> None:
        for name, url in _stores(service, database_url):
            engine = create_engine(url)
            try:
                usage = await key_usage(engine)
            finally:
                await engine.dispose()
            for enc, counts in usage.items():
                keys = ", ".join(f"{k}: {n}" for k, n in sorted(counts.items()))
                typer.echo(f"{name}\t{enc.table}.{enc.column}\t{keys}")

    asyncio.run(main())


@keys_app.command("rotate")
def keys_rotate(
    service: list[str] = typer.Option([], "--service", help="Only these services."),
    database_url: str | None = typer.Option(None, help="One store, instead of the services'."),
    batch_size: int = typer.Option(500, min=1, help="Rows per short transaction."),
) -> None:
    """Re-wrap every value under the active master key, while the services keep serving."""
    from cpu_shared.db import create_engine
    from cpu_shared.security.crypto import Keyring
    from cpu_shared.security.rotation import rotate_store

    cipher = Keyring.load().field_cipher()

    async def main() -> None:
        for name, url in _stores(service, database_url):
            engine = create_engine(url)
            try:
                done = await rotate_store(engine, cipher, batch_size=batch_size)
            finally:
                await engine.dispose()
            total = sum(done.values())
            typer.echo(
                f"{name}: {total} value(s) re-wrapped under {cipher.active_key_id} "
                f"in {len(done)} column(s)"
            )

    asyncio.run(main())


def register_service_commands() -> None:
    """Each service may add commands from ``cpu_<name>.entrypoints.cli.register(app)``."""
    import importlib

    for service in SERVICE_NAMES:
        try:
            module = importlib.import_module(f"cpu_{service}.entrypoints.cli")
        except ModuleNotFoundError as exc:
            if exc.name != f"cpu_{service}.entrypoints.cli":
                raise
            continue
        module.register(app)


register_service_commands()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
