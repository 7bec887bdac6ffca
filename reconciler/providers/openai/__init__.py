"""OpenAI: ``entry`` (the catalog record), ``mapping`` (pure), ``client`` (HTTP)."""
