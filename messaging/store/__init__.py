"""Postgres: the source of truth. asyncpg is imported here and nowhere else."""
