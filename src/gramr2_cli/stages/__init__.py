"""One module per subcommand: a config dataclass, pure helpers, and `run()` returning a `Summary`."""
