"""Supplier settlement: balances, periods closed into numbered statements, supplier payouts."""
