"""Controllers: each a pure decision module plus a thin reconcile loop around the store."""
