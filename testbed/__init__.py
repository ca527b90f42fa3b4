"""The machinery that runs local engines and synthetic scenes, shared by the demo, tests and benches.

Launchers of real Debian programs started as children on loopback: Mosquitto (`mosquitto`),
PostgreSQL (`postgres`), a NATS cluster (`nats`), nginx (`nginx`), over one process base
(`process`). Synthetic inputs: a test ministry issuing real certificates (`ministry`), photos of
printed codes (`printed_scenes`), the decode benches' image sets (`decode_sets`) and hostile
inputs for fuzzing (`fuzz/`). Rigs that run the system under faults: `chaos` (the embedded
profile), `live_page`, `chaos_report`; `cluster_unit` runs unit links in child processes.

Imports the product (never `chot`, so the demo can use it) and no tests or benches; tests add
their pytest fixtures in tests/support/. Not for production: there systemd starts the engines
(firmware-config/).
"""
