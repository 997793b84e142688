"""shopseq: predict what an online shopper does next from their behaviour sequence."""

__version__ = "0.1.0"
