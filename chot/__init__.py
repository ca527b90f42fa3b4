"""chot: checkpoint verification of EU Digital COVID Certificates."""

__version__ = "0.1.0"
