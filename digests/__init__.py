"""Clapper's core: store, ingest, compose, deliver, schedule. Never imports bot/ or telegram.ext."""
