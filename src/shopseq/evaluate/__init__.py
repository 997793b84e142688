"""shopseq.evaluate."""
