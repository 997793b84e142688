"""User-facing errors: the CLI prints their message on one line and exits with code 2."""


class ShopseqInputError(Exception):
    """Bad input from the user (missing file or column, unknown format, malformed config, ...).

    The message is a single line that names the file, row and/or column at fault.
    """
