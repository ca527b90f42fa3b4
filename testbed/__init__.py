"""Local launchers of the engines the national profile runs on: PostgreSQL (`postgres`), a NATS
cluster (`nats`) and nginx (`nginx`), each a real Debian program started as a child on loopback.

Used by `chot demo --national`, and by tests and benches (tests/support re-exports them and adds
the pytest fixtures). Not for production: there systemd starts these (firmware-config/).
"""
