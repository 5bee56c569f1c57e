"""Flow: the full-screen Textual app. Screens call the service facade; no rule lives here."""
