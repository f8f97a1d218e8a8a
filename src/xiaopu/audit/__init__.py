"""The operators' audit log: who did what to which object, append-only and hash-chained."""
