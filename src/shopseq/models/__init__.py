"""shopseq.models."""
