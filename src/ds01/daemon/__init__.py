"""ds01d: the one privileged process. It alone reads the config, talks to the Docker engine, probes GPUs,
runs the lifecycle loop and writes state and events; every command is a client on its Unix socket."""
