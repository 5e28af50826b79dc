"""Typer command modules. Each imports only typer and the standard library at top level."""
