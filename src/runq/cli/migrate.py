"""``runq migrate``: bring a store's schema to this runq's newest version."""

from __future__ import annotations

import click

from runq.cli.common import handle_errors, run, store_url
from runq.store.open import StoreConfig, open_store
from runq.store.version import store_version


@click.command()
@click.option(
    "--store",
    default=None,
    help="Store URL (default: $RUNQ_STORE or sqlite:///runq.db).",
)
@handle_errors
def migrate(store: str | None) -> None:
    """Apply the store's pending schema migrations and say which version it is at.

    Brokers migrate on start unless `runq server --no-migrate`; with many brokers, run
    this once before starting them on a new version of runq."""
    url = store_url(store)

    async def main() -> None:
        before = await store_version(url)
        handle = open_store(StoreConfig(url=url))
        try:
            await handle.counts()  # the first operation opens the store and migrates it
        finally:
            await handle.close()
        after = await store_version(url)
        if after.current == before.current:
            click.echo(f"store is at schema version {after.current} (the newest); nothing to do")
        else:
            click.echo(
                f"migrated the store from schema version {before.current} to {after.current}"
                " (the newest)"
            )

    run(main())
