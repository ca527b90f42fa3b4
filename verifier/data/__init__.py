"""DCC JSON schema and value sets shipped with the verifier (see SOURCE.md)."""
