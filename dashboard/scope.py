"""What part of the country a dashboard user may see: everything, or sets of areas."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

# Scope entries are administrative codes (or names unique nationwide): district names repeat
# across provinces in Vietnam, so districts must be given by their national code.
_KINDS = ("province", "district", "checkpoint")


class ScopeError(ValueError):
    """A scope description could not be understood."""


@dataclass(frozen=True)
class Scope:
    """A user's visible area: `everything`, or the union of some provinces, districts, checkpoints."""

    everything: bool = False
    provinces: frozenset[str] = field(default_factory=frozenset)
    districts: frozenset[str] = field(default_factory=frozenset)
    checkpoints: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def all(cls) -> Scope:
        """The whole country (admins, the ministry)."""
        return cls(everything=True)

    @classmethod
    def none(cls) -> Scope:
        """Nothing at all: a user with no area sees empty pages, never someone else's data."""
        return cls()

    @classmethod
    def of(
        cls,
        provinces: Iterable[str] = (),
        districts: Iterable[str] = (),
        checkpoints: Iterable[str] = (),
    ) -> Scope:
        """A scope made of the given provinces, districts and checkpoints."""
        return cls(False, frozenset(provinces), frozenset(districts), frozenset(checkpoints))

    @classmethod
    def parse(cls, entries: Iterable[str]) -> Scope:
        """Read `all`, `province:<code>`, `district:<code>`, `checkpoint:<id>` entries (CLI, forms)."""
        found: dict[str, set[str]] = {k: set() for k in _KINDS}
        for raw in entries:
            entry = raw.strip()
            if entry == "all":
                return cls.all()
            kind, sep, value = entry.partition(":")
            if not sep or kind not in found or not value.strip():
                raise ScopeError(
                    f"scope entry {entry!r} is not 'all' or province:<code>, district:<code>, checkpoint:<id>"
                )
            found[kind].add(value.strip())
        return cls.of(found["province"], found["district"], found["checkpoint"])

    def entries(self) -> list[str]:
        """The scope as sorted `kind:value` strings (inverse of `parse`)."""
        if self.everything:
            return ["all"]
        return (
            [f"province:{p}" for p in sorted(self.provinces)]
            + [f"district:{d}" for d in sorted(self.districts)]
            + [f"checkpoint:{c}" for c in sorted(self.checkpoints)]
        )

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict, stored with the user."""
        return {
            "all": self.everything,
            "provinces": sorted(self.provinces),
            "districts": sorted(self.districts),
            "checkpoints": sorted(self.checkpoints),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Scope:
        """Inverse of `to_json`."""
        if data.get("all"):
            return cls.all()
        return cls.of(data.get("provinces", ()), data.get("districts", ()), data.get("checkpoints", ()))

    @property
    def is_empty(self) -> bool:
        """True when the scope lets nothing through."""
        return not (self.everything or self.provinces or self.districts or self.checkpoints)

    def allows(self, province: str | None, district: str | None, checkpoint: str | None) -> bool:
        """True if a checkpoint in this province and district lies inside the scope."""
        if self.everything:
            return True
        return (
            (province is not None and province in self.provinces)
            or (district is not None and district in self.districts)
            or (checkpoint is not None and checkpoint in self.checkpoints)
        )

    def sql(
        self,
        province_col: str = "province",
        district_col: str = "district",
        checkpoint_col: str = "checkpoint",
    ) -> tuple[str, list[str]]:
        """A WHERE fragment and its parameters that keep only rows inside the scope."""
        if self.everything:
            return "1 = 1", []
        parts: list[str] = []
        params: list[str] = []
        for column, values in (
            (province_col, self.provinces),
            (district_col, self.districts),
            (checkpoint_col, self.checkpoints),
        ):
            if values:
                parts.append(f"{column} IN ({', '.join('?' for _ in values)})")
                params.extend(sorted(values))
        if not parts:
            return "0 = 1", []
        return "(" + " OR ".join(parts) + ")", params
