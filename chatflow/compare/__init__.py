"""The classroom comparison: both implementations, four pairings, one report."""
