"""Helpers every part of chot shares: typed TOML config, the version, local process plumbing.

This package sits below `verifier`, `keys`, `scanner` and `dashboard` and imports none of them
(tests/test_layers.py checks it), so each part can use it without reaching into the `chot`
command that assembles them.
"""

__version__ = "0.1.0"
