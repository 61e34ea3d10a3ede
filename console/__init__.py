"""The operator console: a separate ASGI process (`kolbridge console`) that shows, plays and corrects what
the database holds of every call, and the control plane's live calls — never inside the call workers."""
