"""chot scanner package."""
