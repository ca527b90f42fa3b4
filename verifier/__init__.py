"""chot verifier package."""
