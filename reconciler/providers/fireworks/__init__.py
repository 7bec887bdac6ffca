"""Fireworks AI: ``entry`` (the catalog record), ``mapping`` (pure), ``client`` (HTTP)."""
