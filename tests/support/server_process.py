"""Stopping a server the tests started: the launcher base lives in chot.localservices.process."""

from chot.localservices.process import ServerProcess

__all__ = ["ServerProcess"]
