"""Custom Rasa components for the Frontdesk NLU project (imported by Rasa via config.yml)."""
