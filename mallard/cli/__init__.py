"""The `mallard` command line."""
