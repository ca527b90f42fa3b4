"""chot: checkpoint verification of EU Digital COVID Certificates."""

from common import __version__

__all__ = ["__version__"]
