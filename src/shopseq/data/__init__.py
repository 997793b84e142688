"""shopseq.data."""
