"""Frontdesk's shell: the one settings object and the `frontdesk` command line.

The parts live beside this package: `storage/` (the ticket store), `nlu/` (Rasa), `bot/` (runtime,
channels, router, outbox), `desk/` (the agents' web app) and `sandbox/` (local API emulators).
"""

__version__ = "0.1.0"
