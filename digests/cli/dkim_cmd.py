"""`clapper dkim keygen`: a DKIM key pair, and the DNS record that publishes its public half."""

from __future__ import annotations

from pathlib import Path

import typer

from digests.channels import dkim
from digests.cli.run_cmd import _render

dkim_app = typer.Typer(help="DKIM signing keys.", no_args_is_help=True)


@dkim_app.command("keygen")
def keygen(
    domain: str = typer.Option(
        ..., "--domain", help="The signing domain (DKIM_DOMAIN), e.g. news.example.org."
    ),
    selector: str = typer.Option(..., "--selector", help="The selector (DKIM_SELECTOR), e.g. clapper2026."),
    out: Path = typer.Option(..., "--out", help="Where to write the private key (mode 0600)."),
    bits: int = typer.Option(2048, "--bits", help="RSA key size."),
) -> None:
    """Write a new private key to OUT and print the DNS TXT record to publish."""
    if out.exists():
        typer.echo(f"{out} exists; refusing to overwrite a key that may be published.", err=True)
        raise typer.Exit(1)
    public = dkim.keygen(out, bits=bits)
    typer.echo(
        _render(
            "cli/dkim_keygen.txt.j2",
            out=out.resolve(),  # the setting must hold where the key is, wherever clapper runs from
            domain=domain,
            selector=selector,
            record_name=dkim.record_name(selector, domain),
            record=dkim.txt_record(public),
        ),
        nl=False,
    )


def register(app: typer.Typer) -> None:
    app.add_typer(dkim_app, name="dkim")
