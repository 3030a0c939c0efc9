"""What the tests and the benchmarks share, one concept a module.

- ``waiting``: the timeouts, and waiting on a condition with a deadline;
- ``memory``: what Python allocates meanwhile (tracemalloc);
- ``network``: 127.0.0.1, free ports, raw reads with a bound, a TCP echo server;
- ``frames``: the client's side of RFC 6455 by hand (handshake, frames, the one decoder);
- ``messages``: chat messages and the shape of the replies;
- ``servers``: ChatFlow's server in the test's process (the transport alone, or the whole server);
- ``clients``: a well-behaved websocket-client connection;
- ``scripted_server``: a chat server that misbehaves on cue;
- ``fault_proxy``: a seeded proxy that delays, drops and resets;
- ``processes``: ``run_server.py`` and ``run_client.py`` as processes;
- ``health``: the health endpoint asked over HTTP;
- ``metrics``: ``/metrics`` asked over HTTP and parsed with prometheus_client's parser;
- ``client_runs``: a load test in the background, and its printed summary read back;
- ``comparison_data``: a plausible comparison.json for the report's tests;
- ``browser``: a headless Chromium through Selenium, and when its tests skip or fail.
- ``compare_runs``: ``chatflow-compare`` with ChatFlow standing in as the other implementation.
- ``terminal``: a command on a terminal of its own (a detached tmux session), its screen read back.
- ``systemd``: the deployment's unit and settings file read as systemd reads them.

Nothing here imports pytest, so that the benchmarks can use it without the test extras.
"""
