"""Outbox events and their delivery to subscribers' endpoints as Standard Webhooks."""
