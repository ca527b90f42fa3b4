"""DCC value sets (JSON), loaded by verifier.valuesets."""
