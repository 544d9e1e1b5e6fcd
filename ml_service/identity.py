"""Every model, matcher and refiner is identified by name and version; outputs are stored under `key`."""

from __future__ import annotations


class Versioned:
    name: str
    version: str

    @property
    def key(self) -> str:
        return f"{self.name}@{self.version}"
