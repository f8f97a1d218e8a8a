"""Withdrawals and payout batches through a payout provider."""
