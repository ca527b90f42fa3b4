"""What the synthetic phone-screen frames allow: chot's stage against a reader told where the code is.

    .venv/bin/python -m bench.decode_ceiling --synthetic 100 [--json]

The reader and the run are testbed/decode_ceiling.py (tests/test_decode_ceiling.py checks them).
"""

from __future__ import annotations

import sys

from testbed.decode_ceiling import main

if __name__ == "__main__":
    sys.exit(main())
