"""Benchmark: CertLogic policy decisions, chot's compiled paths against a peer evaluator.

One run, the same certificates and validation times for all, each decided by the built-in
policies' rules (vn-2021, workplace, eu-validity) in their order, first rule that holds wins:

- chot `Policy.decide`: the rules compiled to straight-line Python (verifier/fastpolicy.py),
  handing over to the exact evaluator outside its subset (what a unit runs);
- chot exact: verifier/certlogic.py's evaluator, each rule compiled once to closures;
- peer: panzi-json-logic 1.0's CertLogic (`json_logic.cert_logic.certLogic`), an independent
  pure-Python implementation that interprets the rule document on every call.

All three must reach the same decision on every case, or the run stops. Figures are CPU time
of this process (time.process_time: other load on a shared machine does not count), best of
several rounds, the three interleaved round by round.

    .venv/bin/python -m bench.certlogic [--json] [--rounds 7]

`--json` prints one object with the stable names: cases, rounds, decide_us, exact_us, peer_us,
peer_cost_over_decide, peer_cost_over_exact, exact_cost_over_decide, reasons (how many cases
ended on each reason: the mix measured), python, machine, command.
"""

from __future__ import annotations

import datetime as dt
import json
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

ROOT = Path(__file__).resolve().parent.parent

from keys import dcc  # noqa: E402
from keys.people import Person  # noqa: E402
from verifier.certlogic import truthiness  # noqa: E402
from verifier.policy import Policy, builtin_policies  # noqa: E402

UTC = dt.timezone.utc
REPRODUCE = ".venv/bin/python -m bench.certlogic"
PERSON = Person(family_name="Đỗ", given_name="Quang Huy", dob="1988-02-14", family_name_t="DO",
                given_name_t="QUANG<HUY")
NOWS = [dt.datetime(2021, 9, 10, 3, tzinfo=UTC), dt.datetime(2021, 10, 1, 8, tzinfo=UTC),
        dt.datetime(2022, 3, 1, 12, tzinfo=UTC)]


def certificates() -> list[dict[str, Any]]:
    """Vaccinations (partial, complete, boosters, recent), tests (negative, positive, old), recoveries."""
    out = [dcc.vaccination(PERSON, dn, sd, day, product)
           for dn, sd in ((1, 2), (2, 2), (3, 3), (1, 1))
           for day in ("2021-05-01", "2021-08-20", "2021-09-25")
           for product in ("pfizer", "janssen")]
    out += [dcc.covid_test(PERSON, sampled, result=result)
            for sampled in ("2021-09-09T10:00:00+07:00", "2021-09-30T08:00:00+07:00", "2022-02-27T20:00:00+07:00")
            for result in ("negative", "positive")]
    out += [dcc.recovery(PERSON, first) for first in ("2021-04-01", "2021-08-15", "2021-12-20")]
    return out


def exact_decider(policy: Policy) -> Callable[[dict[str, Any], dt.datetime], str]:
    """chot's exact CertLogic evaluator over the policy's rules (compiled once)."""
    rules = policy.outcomes + policy.refusals

    def decide(document: dict[str, Any], now: dt.datetime) -> str:
        data = {"payload": document, "external": {
            "validationClock": now.astimezone(UTC).isoformat(timespec="milliseconds"),
            "valueSets": policy.value_sets}}
        for rule in rules:
            if truthiness(rule.expression.evaluate(data)):  # type: ignore[union-attr]
                return rule.reason
        return policy.default.reason

    return decide


def peer_decider(policy: Policy) -> Callable[[dict[str, Any], dt.datetime], str]:
    """panzi-json-logic's CertLogic over the same rule documents, interpreted on each call."""
    from json_logic.cert_logic import certLogic

    rules = [(rule.when, rule.reason) for rule in policy.outcomes + policy.refusals]

    def decide(document: dict[str, Any], now: dt.datetime) -> str:
        data = {"payload": document, "external": {
            "validationClock": now.astimezone(UTC).isoformat(timespec="milliseconds"),
            "valueSets": policy.value_sets}}
        for when, reason in rules:
            if truthiness(certLogic(when, data)):
                return reason
        return policy.default.reason

    return decide


def seconds_per_decision(decide: Callable[[dict[str, Any], dt.datetime], str],
                         cases: list[tuple[dict[str, Any], dt.datetime]]) -> float:
    started = time.process_time()
    for document, now in cases:
        decide(document, now)
    return (time.process_time() - started) / len(cases)


def measure(rounds: int) -> tuple[int, dict[str, float], dict[str, int]]:
    """Best-of-rounds seconds per decision for each way, over every built-in policy."""
    cases = [(document, now) for document in certificates() for now in NOWS]
    policies = list(builtin_policies().values())
    ways: dict[str, list[Callable[[dict[str, Any], dt.datetime], str]]] = {
        "decide": [lambda d, n, p=p: p.decide(d, n).reason for p in policies],
        "exact": [exact_decider(p) for p in policies],
        "peer": [peer_decider(p) for p in policies],
    }
    reasons: dict[str, int] = {}
    for document, now in cases:  # all three agree, or the figures compare different work
        for index, policy in enumerate(policies):
            answers = {name: deciders[index](document, now) for name, deciders in ways.items()}
            if len(set(answers.values())) != 1:
                raise SystemExit(f"{policy.name}: the evaluators disagree at {now}: {answers}")
            reasons[answers["decide"]] = reasons.get(answers["decide"], 0) + 1
    best = {name: float("inf") for name in ways}
    for _ in range(rounds):
        for name, deciders in ways.items():
            per = sum(seconds_per_decision(decide, cases) for decide in deciders) / len(deciders)
            best[name] = min(best[name], per)
    return len(cases) * len(policies), best, reasons


@click.command()
@click.option("--rounds", default=7, show_default=True, type=click.IntRange(1, 100), help="Rounds; the best is kept.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object with stable names.")
def main(rounds: int, as_json: bool) -> None:
    """Measure chot's policy decisions (compiled and exact CertLogic) against panzi-json-logic."""
    count, best, reasons = measure(rounds)
    figures = {
        "cases": count,
        "rounds": rounds,
        "decide_us": round(best["decide"] * 1e6, 2),
        "exact_us": round(best["exact"] * 1e6, 2),
        "peer_us": round(best["peer"] * 1e6, 2),
        "peer_cost_over_decide": round(best["peer"] / best["decide"], 2),
        "peer_cost_over_exact": round(best["peer"] / best["exact"], 2),
        "exact_cost_over_decide": round(best["exact"] / best["decide"], 2),
        "reasons": dict(sorted(reasons.items())),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "command": REPRODUCE + (f" --rounds {rounds}" if rounds != 7 else ""),
    }
    if as_json:
        click.echo(json.dumps(figures))
        return
    click.echo(f"{'evaluator':<58}{'per second':>12}{'us/decision':>13}{'peer cost':>11}")
    rows = [("chot Policy.decide (rules compiled to Python, exact fallback)", best["decide"]),
            ("chot exact CertLogic evaluator (closures, compiled once)", best["exact"]),
            ("peer: panzi-json-logic 1.0 certLogic (interpreted)", best["peer"])]
    for label, seconds in rows:
        click.echo(f"{label:<58}{1 / seconds:>12.0f}{seconds * 1e6:>13.1f}{best['peer'] / seconds:>10.1f}x")
    click.echo(f"{count} decisions per round ({len(reasons)} distinct reasons, all three agree), best of {rounds} "
               f"rounds, CPU time, Python {figures['python']}, {figures['machine']}")
    click.echo(f"reproduce: {figures['command']}")


if __name__ == "__main__":
    main()
