"""Nebius Token Factory: a host of the OpenAI-shaped driver."""
