"""Which certificate format a scanned payload is, read from its first characters only.

`detect` never decodes: it lets `verify()` hand the payload to the right decoder, and name a
format it recognises but cannot verify yet (red `format_unsupported`) instead of calling it
"not a certificate", which an officer cannot tell from a forgery.
"""

from __future__ import annotations

DCC = "dcc"          # EU Digital COVID Certificate (HC1:), the unit's home format
SHC = "shc"          # SMART Health Card (shc:/ numeric QR)
VDS_NC = "vds-nc"    # ICAO Visible Digital Seal for non-constrained environments (JSON)
DIVOC = "divoc"      # DIVOC verifiable credential in a ZIP, raw or as B64: text
UNKNOWN = "unknown"

FORMATS = (DCC, SHC, VDS_NC, DIVOC)
SUPPORTED = frozenset({DCC, SHC})


def detect(payload: str) -> str:
    """The format code of a scanned payload (`UNKNOWN` when none matches)."""
    text = payload.lstrip()[:64] if isinstance(payload, str) else ""
    upper = text.upper()
    if upper.startswith("HC1:"):
        return DCC
    if upper.startswith("SHC:/"):
        return SHC
    if upper.startswith("B64:") or text.startswith("PK\x03\x04"):
        return DIVOC
    if text.startswith("{"):
        head = payload.lstrip()[:512].replace(" ", "").replace("\n", "")
        # ICAO VDS-NC: {"data": {"hdr": ..., "msg": ...}, "sig": ...}, keys in either order
        if '"data":{' in head and ('"hdr"' in head or '"sig"' in head) or head.startswith('{"sig":{'):
            return VDS_NC
    return UNKNOWN
