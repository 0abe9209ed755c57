"""What registration and alias moves did, as typed values (they cross task boundaries)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class RegisteredVersion(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    version: str
    run_id: str


class AliasMove(BaseModel):
    """A move of the ``champion`` alias: to ``champion`` from ``replaced``; ``previous`` after it."""

    model_config = ConfigDict(frozen=True)

    model: str
    champion: str
    replaced: str | None
    previous: str | None
    reason: str

    def as_dict(self) -> dict[str, object]:
        return self.model_dump(mode="json")
