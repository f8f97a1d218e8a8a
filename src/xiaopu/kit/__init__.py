"""Domain-free helpers shared by every domain package."""
