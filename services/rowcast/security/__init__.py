"""Who may call what: identities (tokens, client certificates), the role policy, TLS files."""
