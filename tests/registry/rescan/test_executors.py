"""Executors: the local one is the reference; asking for a Ray address without Ray is a usage error."""

import pytest

from scanner.errors import UsageError
from scanner.registry.rescan.executors import LocalExecutor, make_executor


def test_local_executor_yields_every_job_with_its_result():
    with make_executor("local") as executor:
        assert isinstance(executor, LocalExecutor)
        assert list(executor.map_unordered(len, ["a", "bb", "ccc"])) == [("a", 1), ("bb", 2), ("ccc", 3)]


def test_a_ray_address_needs_the_ray_executor():
    with pytest.raises(UsageError, match="--ray-address"):
        make_executor("local", ray_address="auto")


def test_unknown_executor():
    with pytest.raises(ValueError):
        make_executor("spark")
