"""shopseq.apps."""
