"""The page at /ui: a user's history, direct and reasoning recommendations side by side, a panel per arm."""
