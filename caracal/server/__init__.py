"""The runtime service (HTTP). For now it serves `/health`; authorisation endpoints come next."""
