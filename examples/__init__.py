"""Example applications that host the bridge."""
