"""The projector tests: real PostgreSQL, real ``cqrs-demo project`` processes."""

import pytest

pytest.register_assert_rewrite("tests.projector.support")
