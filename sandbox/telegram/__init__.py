"""The Telegram Bot API emulator: ``api`` is what Telegram serves, ``control`` is what only the sandbox adds,
``app`` mounts both."""
