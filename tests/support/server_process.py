"""Stopping a server the tests started: the launcher base lives in testbed.process."""

from testbed.process import ServerProcess

__all__ = ["ServerProcess"]
