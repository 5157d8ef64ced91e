"""One module per CLI subcommand, each exposing `register(subparsers)`; `scanner.cli` lists them."""
