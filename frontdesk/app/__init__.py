"""The top layer: the CLI, the roles, the supervisor that starts them, the HTTP server, sandbox mode."""
