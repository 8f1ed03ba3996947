"""prodng-agent: the verb table over HTTPS (mutual TLS) and a root-only unix socket."""
