"""The host launcher: the container stack through the Docker SDK, and terminals attached to it."""
