"""Typer wiring only: parse options, call one library function. Heavy imports inside commands."""
