"""chot dashboard package."""
