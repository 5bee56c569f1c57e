"""Persistence adapter: SQLAlchemy Core over SQLite (embedded) or PostgreSQL (psycopg 3).

Nothing here connects at import time; `open_store` builds the engine on demand.
"""

from caracal.store.engine import Store, StoreLocation, open_store

__all__ = ["Store", "StoreLocation", "open_store"]
