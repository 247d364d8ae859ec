"""CLI command modules, one per command or command group; registered in doppel/cli.py."""
