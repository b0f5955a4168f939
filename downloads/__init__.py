"""Downloads through aria2c: the daemon `serve` supervises (daemon.py), the RPC side workers and
the scheduler use (aria2.py), the URL policy (policy.py) and seed 001's endpoints (api.py). The
`download` kind itself is tasks/processors/download.py."""
