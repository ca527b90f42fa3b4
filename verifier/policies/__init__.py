"""The built-in checkpoint policies, as `chot-policy/1` JSON documents (read by verifier.policy)."""
