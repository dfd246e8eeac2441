"""vqc: visual quality control."""
