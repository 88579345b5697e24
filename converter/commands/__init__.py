"""The command-line tools, one module per command (sqz-convert, sqz-validate, sqz-bench,
sqz-train, sqz-compress, and the shapes dataset writer), over `common`: the shared options
parsing, consoles and the top-level handler that maps every error to its exit code
(converter.errors).
"""
