"""DCC value sets (JSON), loaded by verifier.schema."""
