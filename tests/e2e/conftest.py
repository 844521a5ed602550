"""End-to-end tests use the session's two gateways (`gateways`, `secret`, `school` in
tests/conftest.py); `import_school` is re-exported here for the tests that import it."""

from tests.servers import import_school

__all__ = ["import_school"]
