"""Formats and generators more than one benchmark plugin uses, so that no plugin imports another
(import-linter's "benchmark plugins are independent" contract)."""
