"""The bundled provider simulator (``archiver sim``): Catapult v1 and Plivo on loopback."""

from __future__ import annotations

from archiver.sim.server import Simulator

__all__ = ["Simulator"]
