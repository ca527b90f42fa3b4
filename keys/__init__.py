"""chot keys: the ministry side: CSCA and DSCs (ca), encrypted key files (keystore), the ministry
directory (ministry), DCC JSON (dcc) for synthetic people (people), HC1 encoding (hc1), QR codes
(qr), issuing (issue), signed trust bundles (bundle), revocation (revoke) and `chot keys` (cli)."""
