"""Coverage-guided fuzzing (atheris) of the scan path: payload -> verdict and image -> verdict."""
