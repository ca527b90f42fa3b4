"""The contract between the units and the central, defined once and imported by both.

- `protocol.topics`: the MQTT topic prefix and every topic name built from it;
- `protocol.fields`: the field rules (results, outcomes, id and code patterns) every message obeys;
- `protocol.events`: the verdict and decision events (encoding on the unit, parsing on the central);
- `protocol.status`: a unit's retained status; `protocol.ack`: the central's end-to-end acks;
- `protocol.message`: what every message parser shares (`Rejected`, size cap, JSON, times);
- `protocol.roster`: the signed officer roster (`chot-roster/1`);
- `protocol.words`: the words both sides show for colours, reasons, outcomes and decision kinds.

It builds on `verifier` (the verdict's results, the policy's decision outcomes, the trust
bundle's signature helpers) and `common`; `scanner` and `dashboard` import it, never the reverse.
Pure: no disk, network or clock.
"""
