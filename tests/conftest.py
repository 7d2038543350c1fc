"""Shared pytest set-up.  Each part keeps its fixtures in tests/fixtures/<part>.py, listed here."""

pytest_plugins: list[str] = [
    "tests.fixtures.storage",
    "tests.fixtures.nlu",
    "tests.fixtures.bot",
    "tests.fixtures.sandbox",
    "tests.fixtures.telegram_sandbox",
    "tests.fixtures.telegram_channel",
    "tests.fixtures.x_channel",
    "tests.fixtures.desk",
    "tests.fixtures.browser",
]
