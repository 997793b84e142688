"""shopseq.serve."""
