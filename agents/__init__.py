"""Agent recipes composed from fnrl's building blocks, and the `fnrl` command line."""
