"""The ticket store shared by the bot and the agents: models, migrations and every state change."""
