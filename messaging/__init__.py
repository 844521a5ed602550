"""Real-time messaging core for Quebec schools and families."""

__version__ = "0.1.0"
