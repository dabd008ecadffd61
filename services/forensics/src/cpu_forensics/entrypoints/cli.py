"""``cpu ledger ...``: the forensics service's operator commands (CONTRACT.md sections 1, 7).

``cpu ledger verify`` reads the forensics store directly (``FORENSICS_DATABASE_URL``, default
``sqlite+aiosqlite:///./var/forensics.db``), recomputes every leaf from the stored custody
records and the tree from the leaves, checks every stored signed tree head (and any checkpoint
given with ``--checkpoint``, e.g. ones a prosecutor's office kept from the event stream), and
names the first bad entry by ledger index and event id. Exit status: 0 intact, 1 anything
failed to verify, 2 the check could not run (no store, no keys).

It needs the store's field keys (``CPU_CRYPTO_*``, as the service has) to read the records,
and the ledger's verifier key: from ``--verifier-key`` (the published one; what an outside
checker should pin), else derived from the service's configured signing key. It never creates
a key: a verifier that made itself a new key would only report that nothing verifies.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

ledger_app = typer.Typer(help="The forensic custody ledger.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Add the ``ledger`` group to the root ``cpu`` command."""
    app.add_typer(ledger_app, name="ledger")


def _logs_to_stderr() -> None:
    # The command's answer is on stdout (``--json`` must parse); library warnings (dev keys
    # in use, ...) go to stderr.
    import structlog

    structlog.configure(logger_factory=structlog.PrintLoggerFactory(file=sys.stderr))


def _fail(message: str) -> typer.Exit:
    typer.echo(f"cpu ledger verify: {message}", err=True)
    return typer.Exit(2)


@ledger_app.command("verify")
def verify(
    database_url: str | None = typer.Option(
        None, help="The forensics store (default: FORENSICS_DATABASE_URL)."
    ),
    verifier_key: str | None = typer.Option(
        None,
        help="The ledger's verifier key (<name>+<key id>+<key>); default: from the "
        "configured signing key.",
    ),
    checkpoint: list[Path] = typer.Option(
        [], "--checkpoint", help="A file holding a signed checkpoint kept elsewhere (repeatable)."
    ),
    signatures: str = typer.Option(
        "all",
        help="'all': verify every stored head's signature (the default); 'newest': check "
        "every head's root, but verify only the newest head's signature (a large log).",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the full result as JSON."),
    batch: int = typer.Option(2000, min=1, help="Entries read per query."),
) -> None:
    """Check the custody ledger; exit 1 and name the first bad entry if it was tampered with."""
    from cpu_forensics.adapters.signing import LedgerKeyError, verifier_key_from_settings
    from cpu_forensics.config import ForensicsSettings
    from cpu_forensics.domain.ledger import NoteInvalid, parse_verifier_key
    from cpu_forensics.service_layer.verification import verify_store
    from cpu_shared.security.crypto import CryptoError, Keyring

    _logs_to_stderr()
    if signatures not in ("all", "newest"):
        raise _fail("--signatures is 'all' or 'newest'")
    settings = ForensicsSettings()
    url = database_url or settings.database_url
    try:
        vkey = verifier_key or verifier_key_from_settings(settings)
        origin = parse_verifier_key(vkey).name
    except (LedgerKeyError, NoteInvalid, OSError) as exc:
        raise _fail(f"no usable verifier key: {exc}") from None
    try:
        cipher = Keyring.load().field_cipher()
    except CryptoError as exc:
        raise _fail(f"cannot load the field keys: {exc}") from None
    extra = [path.read_text(encoding="utf-8") for path in checkpoint]
    progress = None if as_json else (lambda message: typer.echo(f"... {message}", err=True))
    try:
        outcome = verify_store(
            url,
            cipher,
            vkey,
            origin=origin,
            extra_checkpoints=extra,
            signatures=signatures,  # type: ignore[arg-type]
            batch=batch,
            progress=progress,
        )
    except Exception as exc:  # the store itself is unreachable or has no ledger tables
        raise _fail(f"cannot read the store: {type(exc).__name__}: {exc}") from None

    if as_json:
        from cpu_forensics.entrypoints.http import verification_public

        typer.echo(json.dumps(verification_public(outcome).model_dump(mode="json"), indent=2))
    else:
        typer.echo(outcome.summary())
        if not outcome.ok:
            if outcome.first_bad_index is not None:
                typer.echo(
                    f"FIRST BAD ENTRY: index {outcome.first_bad_index} "
                    f"event_id {outcome.first_bad_event_id or '(unknown)'}"
                    + ("" if outcome.first_bad_exact else " (or a later one)")
                )
            for problem in outcome.problems[:50]:
                where = f"[index {problem.index}] " if problem.index is not None else ""
                size = outcome.head_size(problem)
                head = f"[tree head of size {size}] " if size is not None else ""
                typer.echo(f"  {problem.code}: {where}{head}{problem.message}")
            if len(outcome.problems) > 50:
                typer.echo(f"  ... and {len(outcome.problems) - 50} more")
    sys.stdout.flush()
    raise typer.Exit(0 if outcome.ok else 1)
