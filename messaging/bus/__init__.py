"""Fan-out between gateway processes. Redis only speeds delivery; Postgres is the truth."""
