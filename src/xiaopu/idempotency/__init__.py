"""Idempotency-Key handling for POST endpoints (Stripe's semantics, IETF draft header)."""
