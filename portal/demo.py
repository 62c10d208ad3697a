"""The demo personas that `make run`, the docs and the tests share."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Persona:
    email: str
    name: str
    role: str  # "staff" or "member"
    team: str | None = None
    subject: str = ""  # the subject the development sign-in provider issues

    @property
    def sub(self) -> str:
        return self.subject or self.email.split("@")[0] + "-" + (self.team or "platform")

    def claims(self, staff_group: str = "portal-staff") -> dict[str, object]:
        """The ID-token claims the development sign-in provider issues for this persona."""
        groups = [staff_group] if self.role == "staff" else [f"startup-{self.team}"]
        return {"sub": self.sub, "email": self.email, "email_verified": True,
                "name": self.name, "groups": groups}


TEAMS = {
    "acme-health": "Acme Health",
    "beta-bio": "Beta Bio",
    "gamma-ai": "Gamma AI",
}

PERSONAS = (
    Persona("staff@platform.example", "Sam Staff", "staff"),
    Persona("reviewer@platform.example", "Riya Reviewer", "staff"),
    Persona("analyst@acme-health.example", "Ada Analyst", "member", "acme-health"),
    Persona("analyst@beta-bio.example", "Ben Analyst", "member", "beta-bio"),
    Persona("founder@gamma-ai.example", "Gia Founder", "member", "gamma-ai"),
)
