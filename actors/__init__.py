"""Per-call actor tree: a CallSupervisor and its five children, thin shells over pure cores."""
