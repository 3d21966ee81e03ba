"""Pure rules: no database, network, mail or template imports (a test enforces it)."""
