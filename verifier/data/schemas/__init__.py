"""The combined DCC JSON schema of every published release, one file per version (see ../SOURCE.md)."""
