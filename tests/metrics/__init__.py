"""Tests of vqc.metrics."""
