"""Test kit: the test environment checks, the local venue server and the state-store crash writer.

Production code never imports this package (an import-linter contract enforces it).
"""
