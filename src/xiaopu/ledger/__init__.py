"""The double-entry ledger: balanced, append-only postings and account balances."""
