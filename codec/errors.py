"""The toolkit's own error: raised for bad input, caught by the CLI and shown as one line."""


class CodecError(Exception):
    """A problem with the user's input (file, option, config), not a bug."""
