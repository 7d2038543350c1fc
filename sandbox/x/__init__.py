"""The X API v2 emulator: ``api`` is what X serves, ``control`` what only the sandbox adds, ``app`` mounts both."""
