"""Metric functions: pure, validated, one module per family."""
