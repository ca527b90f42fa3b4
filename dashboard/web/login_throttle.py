"""How long a login must wait after failed ones: growing delays, kept apart per account and address.

One lock for everything would let anyone who can reach the login page lock the administrator
out (and in the embedded profile every browser shares one address). So the delays are weighed
separately, and each grows exponentially up to its own cap:

- this account from this address: the guesser of one password is slowed hardest;
- any account from this address: spraying many accounts from one place is slowed, later;
- this account from many addresses: a spread-out guess is slowed a little (a low cap, so it
  cannot keep the owner out for long).

A correct password from another address meets none of the first two, which is the point.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from dashboard.store.base import LoginFailures


@dataclass(frozen=True)
class Step:
    """Delays start at `after` failures with `first_s` seconds, double each failure, end at `cap_s`."""

    after: int
    first_s: float
    cap_s: float

    def delay_s(self, failures: int) -> float:
        """Seconds to wait after the last of `failures` failures (0 below the threshold)."""
        if failures < self.after:
            return 0.0
        return min(self.cap_s, self.first_s * 2.0 ** min(failures - self.after, 40))


@dataclass(frozen=True)
class ThrottlePolicy:
    """The three steps; `max_failures` (web setting) is where the one-account-one-address one starts."""

    pair: Step
    address: Step
    account: Step

    @classmethod
    def for_max_failures(cls, max_failures: int) -> ThrottlePolicy:
        """The default policy: an address may fail three times as often across accounts before it
        slows, and five addresses must fail one account before that account slows (30 s at most)."""
        n = max(1, int(max_failures))
        return cls(pair=Step(n, 30.0, 15 * 60.0), address=Step(3 * n, 30.0, 5 * 60.0), account=Step(5, 5.0, 30.0))

    def wait_s(self, seen: LoginFailures, now: datetime) -> float:
        """Seconds from `now` until this login may be tried (0: try it now)."""
        waits = [
            _left(self.pair.delay_s(seen.pair), seen.pair_last, now),
            _left(self.address.delay_s(seen.address), seen.address_last, now),
            _left(self.account.delay_s(seen.account_addresses), seen.account_last, now),
        ]
        return max(waits)

    def starts_or_grows(self, seen: LoginFailures) -> str | None:
        """After a failure was counted: which step just began slowing (or went on for ten more
        failures), for the audit log; None when nothing new is worth telling the administrator."""
        # The account's count is of addresses: it moves only when this address failed it first.
        account = seen.account_addresses if seen.pair == 1 else -1
        for name, count, step in (("address", seen.address, self.address), ("account", account, self.account),
                                  ("pair", seen.pair, self.pair)):
            if count >= step.after and (count - step.after) % 10 == 0:
                return name
        return None


def _left(delay_s: float, last: datetime | None, now: datetime) -> float:
    if delay_s <= 0 or last is None:
        return 0.0
    return max(0.0, delay_s - (now - last).total_seconds())
