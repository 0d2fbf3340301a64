"""Who may call the daemon: route policy, bearer guard, client tokens."""
