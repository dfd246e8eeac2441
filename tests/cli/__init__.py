"""Tests of vqc.cli."""
