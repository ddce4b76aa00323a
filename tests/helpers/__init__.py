"""Test helpers: real servers and processes on loopback, waited on with deadlines."""
