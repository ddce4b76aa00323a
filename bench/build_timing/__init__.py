"""Parts of the build benchmark (bench/builds.py): the stack it runs, the timed runs, the report."""
