"""`--workers N`: N engine processes share each tunnel's listening port (SO_REUSEPORT).

The main process is the agent as with one worker (uvicorn, the runtime, its own Engine: worker 0,
the capture store, the channel layer). With N >= 2 it starts N-1 worker processes, each an Engine
on its own uvloop loop and nothing else: no web server, no database connection, no channel layer.

- `supervisor.py` (main process): starts, asks and restarts the workers; every tunnel start, stop
  and policy swap goes to each of them; their captures are stored by the main process's store.
- `worker_main.py` (a worker's entry point, `python -m agentapi.workers.worker_main`).
- `wire.py`: the framed request/reply channel between the two, and its messages.
- `metrics_merge.py`: per-tunnel metrics of every process merged into the API's one snapshot.
"""
