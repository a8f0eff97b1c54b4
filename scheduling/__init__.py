"""Beat: the scheduler, its leader lock, fire claims, the outbox and reconciliation (above runs)."""
