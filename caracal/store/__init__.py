"""Persistence adapter: SQLAlchemy Core over SQLite (embedded) or PostgreSQL (psycopg 3).

Nothing here connects at import time; `open_store` builds the engine on demand. Importing the
package itself loads nothing heavy, so light modules in it (the ledger scan worker) start fast.
"""
