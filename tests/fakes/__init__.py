"""Fakes at the network edges: a Telegram Bot API server, an SMTP server."""
