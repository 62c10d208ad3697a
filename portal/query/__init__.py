"""Governed SQL: extract builder, preflight, worker pool, disclosure control."""
