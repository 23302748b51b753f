"""Web pages beyond the token-only email links: one module per job, each exporting `routes()`."""
