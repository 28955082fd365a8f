"""hardprompt on a Ray cluster: actors that keep a model loaded do the work, the driver alone writes the output.

`pool` holds what any app needs (the connection, a fault-tolerant pool of actors); `invert_each` and
`reproduce` put an app's per-image work on it. Ray is the optional extra `hardprompt[ray]`.
"""
