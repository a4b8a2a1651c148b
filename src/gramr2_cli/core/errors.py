"""The one exception type for anything a user can fix (bad input, bad config, missing model)."""

from __future__ import annotations


class GramrError(ValueError):
    """A user-fixable error. `cli.py` prints `error: <message>` (and `hint: <hint>`) and exits 1."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint


class ConfigError(GramrError):
    """Every problem found in a recipe at once (`config.load`, `gramr2 config check`); `cli.py` prints one
    `error:` line per problem."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = list(problems)
