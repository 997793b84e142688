"""shopseq.train."""
