"""The CVX vaccine codes SMART Health Cards use, mapped to the DCC vocabulary (see ../SOURCE.md)."""
