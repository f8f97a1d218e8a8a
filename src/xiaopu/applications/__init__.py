"""Platform applications (the mobile app's backend): operators create them and their endpoints."""
