"""The contract between the units and the central: topics, messages, the roster, their words."""
