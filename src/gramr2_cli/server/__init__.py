"""The HTTP reward server (`gramr2 serve`): request checks, micro-batching, the app."""
