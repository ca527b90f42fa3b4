"""chot keys package."""
